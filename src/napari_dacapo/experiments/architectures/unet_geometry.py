"""Shape arithmetic of the CNNectome UNet, in plain Python (no torch, no forward pass).

Every operation of the network acts on each spatial axis on its own, so the geometry is
worked out per axis:

* a convolution pass shrinks an axis by ``sum(k - 1)`` over its kernels in ``valid``
  padding and keeps it in ``same`` padding;
* max-pooling divides it by the level's factor and needs it to be divisible;
* on the way up, after upsampling, ``valid`` mode crops to the largest size ``n * F + c``
  (``F`` the product of the factors at and below that level, ``c`` the shrink of the
  following convolutions), as CNNectome does: the output size becomes a multiple of the
  total downsampling, so tiles stepped by the output shape join seamlessly;
* the extra ``upsample_factors`` at the end multiply the axis, then their convolutions
  shrink it.

Walking the encoder backwards shows that the valid input sizes of one axis are exactly
``period * m + offset`` for every whole ``m >= m_min`` (``m`` is the size at the bottom
level), which is how the nearest valid shapes below and above any shape are found exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import cached_property, reduce

from funlib.geometry import Coordinate

__all__ = ["InputShapeError", "UNetGeometry"]

PADDINGS = ("valid", "same")


class InputShapeError(ValueError):
    """An input shape the UNet cannot take.

    Attributes
    ----------
    shape : Coordinate
        The refused spatial shape.
    below, above : Coordinate or None
        The nearest valid shapes, per axis not larger / not smaller than ``shape``. ``below``
        is None when some axis is already smaller than the smallest valid size.
    problem : str
        What does not fit and the nearest valid shapes, phrased to follow the shape, e.g.
        ``"does not fit downsample_factors [(2, 2)] with valid padding (...); nearest valid
        shapes: (92, 92) and (108, 108)"``.
    """

    def __init__(
        self, shape: Coordinate, below: Coordinate | None, above: Coordinate, problem: str
    ) -> None:
        super().__init__(f"input_shape {tuple(shape)} {problem}")
        self.shape, self.below, self.above, self.problem = shape, below, above, problem


class _Misfit(Exception):
    """Internal: one axis cannot pass the network (the message says where)."""


@dataclasses.dataclass(frozen=True)
class UNetGeometry:
    """The shape rules of one CNNectome UNet, independent of its input shape.

    Build it with :meth:`create`, which fills in DaCapo's defaults (two 3-wide convolutions
    per level). Both :class:`~.cnnectome_unet.CNNectomeUNet` and its config use this class,
    so the analytic output shape, the crops done in the forward pass and the config check
    come from the same arithmetic. A GUI can use it to offer valid input shapes before a
    config exists.

    Attributes
    ----------
    dims : int
        Number of spatial axes (2 or 3).
    downsample_factors : tuple of Coordinate
        Max-pooling factor between each level and the one below it.
    kernel_size_down, kernel_size_up : tuple of tuple of Coordinate
        Kernel sizes of the convolutions of each level on the way down
        (``len(downsample_factors) + 1`` levels, top first) and on the way up
        (``len(downsample_factors)`` levels, top first).
    padding : str
        ``"valid"`` (convolutions shrink the maps) or ``"same"`` (they keep the size).
    upsample_factors : tuple of Coordinate
        Extra upsampling after the UNet; each is followed by a convolution pass with the
        kernel sizes of the top level's last pass (:attr:`tail_kernel_sizes`).
    """

    dims: int
    downsample_factors: tuple[Coordinate, ...]
    kernel_size_down: tuple[tuple[Coordinate, ...], ...]
    kernel_size_up: tuple[tuple[Coordinate, ...], ...]
    padding: str = "valid"
    upsample_factors: tuple[Coordinate, ...] = ()

    @classmethod
    def create(
        cls,
        dims: int,
        downsample_factors: Sequence[Sequence[int]],
        kernel_size_down: Sequence[Sequence[Sequence[int]]] | None = None,
        kernel_size_up: Sequence[Sequence[Sequence[int]]] | None = None,
        padding: str = "valid",
        upsample_factors: Sequence[Sequence[int]] | None = None,
    ) -> UNetGeometry:
        """The geometry for these settings, with missing kernel sizes set to DaCapo's
        default of two convolutions of size 3 per level.

        The settings are taken as consistent (one kernel list per level, one value per
        axis); :class:`~.cnnectome_unet_config.CNNectomeUNetConfig` checks that, naming the
        field at fault.

        Parameters
        ----------
        dims : int
            Number of spatial axes.
        downsample_factors, kernel_size_down, kernel_size_up, padding, upsample_factors
            As in :class:`~.cnnectome_unet_config.CNNectomeUNetConfig`.
        """
        if padding not in PADDINGS:
            raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}.")
        default = (Coordinate((3,) * dims),) * 2
        levels = len(downsample_factors) + 1

        def kernels(given: Sequence[Sequence[Sequence[int]]] | None, n: int) -> tuple:
            if given is None:
                return (default,) * n
            return tuple(tuple(Coordinate(k) for k in level) for level in given)

        return cls(
            dims=dims,
            downsample_factors=tuple(Coordinate(f) for f in downsample_factors),
            kernel_size_down=kernels(kernel_size_down, levels),
            kernel_size_up=kernels(kernel_size_up, levels - 1),
            padding=padding,
            upsample_factors=tuple(Coordinate(f) for f in upsample_factors or ()),
        )

    # -- derived quantities ---------------------------------------------------------------

    @property
    def levels(self) -> int:
        """Number of resolution levels (one more than the number of downsamplings)."""
        return len(self.downsample_factors) + 1

    @property
    def tail_kernel_sizes(self) -> tuple[Coordinate, ...]:
        """Kernels of the convolution pass after each extra upsampling: those of the top
        level's last pass, so that anisotropic networks (e.g. ``(1, 3, 3)``) stay so."""
        return self.kernel_size_up[0] if self.kernel_size_up else self.kernel_size_down[0]

    @property
    def period(self) -> Coordinate:
        """Product of all downsample factors: valid input sizes are this far apart."""
        return _product(self.downsample_factors, self.dims)

    @property
    def upsample_product(self) -> Coordinate:
        """Product of the extra ``upsample_factors``: the output voxel size is the input
        voxel size divided by it."""
        return _product(self.upsample_factors, self.dims)

    def crop_factor(self, level: int) -> Coordinate:
        """Product of the downsample factors at and below decoder ``level``."""
        return _product(self.downsample_factors[level:], self.dims)

    def _shrink(self, kernels: Sequence[Coordinate], axis: int) -> int:
        """How much a convolution pass shrinks ``axis`` (zero in same padding)."""
        if self.padding == "same":
            return 0
        return sum(k[axis] - 1 for k in kernels)

    # -- per-axis arithmetic --------------------------------------------------------------

    def decoder_crop(self, level: int, axis: int, size: int) -> int:
        """Size to which an upsampled map at decoder ``level`` is cropped along ``axis``
        (valid padding only: the largest ``n * F + c <= size``, see the module doc)."""
        if self.padding == "same":
            return size
        c = self._shrink(self.kernel_size_up[level], axis)
        step = self.crop_factor(level)[axis]
        n = (size - c) // step
        if n < 1:
            raise _Misfit(
                f"axis {axis}: size {size} after upsampling at level {level} is too small for "
                f"the following convolutions (they need {c + step})"
            )
        return n * step + c

    def _axis_output(self, axis: int, size: int) -> int:
        """Output size of ``axis`` for input ``size``; raises :class:`_Misfit`."""

        def convolve(size: int, kernels: Sequence[Coordinate], where: str) -> int:
            shrink = self._shrink(kernels, axis)
            if size <= shrink:
                raise _Misfit(
                    f"axis {axis}: size {size} is too small for the {where} (they need "
                    f"{shrink + 1})"
                )
            return size - shrink

        for level, factor in enumerate(self.downsample_factors):
            size = convolve(size, self.kernel_size_down[level], f"level-{level} convolutions")
            if size % factor[axis]:
                raise _Misfit(
                    f"axis {axis}: size {size} after the level-{level} convolutions is not "
                    f"divisible by {factor[axis]}"
                )
            size //= factor[axis]
        size = convolve(size, self.kernel_size_down[-1], "bottom convolutions")
        for level in reversed(range(self.levels - 1)):
            size = self.decoder_crop(level, axis, size * self.downsample_factors[level][axis])
            size = convolve(size, self.kernel_size_up[level], f"level-{level} up convolutions")
        for factor in self.upsample_factors:
            size = convolve(
                size * factor[axis], self.tail_kernel_sizes, "convolutions after upsampling"
            )
        return size

    @cached_property
    def _lattices(self) -> tuple[tuple[int, int, int], ...]:
        """Per axis ``(period, offset, m_min)``: valid sizes are ``period * m + offset``
        for ``m >= m_min``."""
        out = []
        for axis in range(self.dims):
            offset, scale = 0, 1
            for level in range(self.levels):
                offset += scale * self._shrink(self.kernel_size_down[level], axis)
                if level < self.levels - 1:
                    scale *= self.downsample_factors[level][axis]
            m = 1
            # Terminates: every size on the way up grows with m, so some m passes.
            while not self._axis_fits(axis, scale * m + offset):
                m += 1
            out.append((scale, offset, m))
        return tuple(out)

    def _axis_fits(self, axis: int, size: int) -> bool:
        try:
            self._axis_output(axis, size)
        except _Misfit:
            return False
        return True

    # -- public shape API -----------------------------------------------------------------

    def output_shape(self, input_shape: Sequence[int]) -> Coordinate:
        """Spatial output shape for a spatial input shape, exactly as the forward pass
        gives it.

        Raises
        ------
        InputShapeError
            If the shape does not fit; the message names the nearest valid shapes.
        """
        shape = self._coordinate(input_shape)
        out, reasons = [], []
        for axis, size in enumerate(shape):
            try:
                out.append(self._axis_output(axis, size))
            except _Misfit as e:
                reasons.append(str(e))
        if reasons:
            below, above = self.nearest_valid_input_shapes(shape)
            factors = [tuple(f) for f in self.downsample_factors]
            nearest = (
                f"nearest valid shapes: {tuple(below)} and {tuple(above)}"
                if below is not None
                else f"the smallest valid shape above it is {tuple(above)}"
            )
            problem = (
                f"does not fit downsample_factors {factors} with {self.padding} padding "
                f"({'; '.join(reasons)}); {nearest}"
            )
            raise InputShapeError(shape, below, above, problem)
        return Coordinate(out)

    def is_valid(self, input_shape: Sequence[int]) -> bool:
        """Whether the network can take ``input_shape``."""
        shape = self._coordinate(input_shape)
        return all(self._axis_fits(axis, size) for axis, size in enumerate(shape))

    def nearest_valid_input_shapes(
        self, input_shape: Sequence[int]
    ) -> tuple[Coordinate | None, Coordinate]:
        """The nearest valid shapes not larger and not smaller than ``input_shape``, per
        axis (both equal ``input_shape`` where it is valid).

        Returns
        -------
        below : Coordinate or None
            None when some axis is smaller than the smallest valid size.
        above : Coordinate
        """
        shape = self._coordinate(input_shape)
        below: list[int] | None = []
        above = []
        for size, (period, offset, m_min) in zip(shape, self._lattices):
            m = (size - offset) / period
            lo, hi = math.floor(m), max(math.ceil(m), m_min)
            above.append(period * hi + offset)
            if below is not None and lo >= m_min:
                below.append(period * lo + offset)
            else:
                below = None
        return (Coordinate(below) if below is not None else None), Coordinate(above)

    def smallest_input_shape(self) -> Coordinate:
        """The smallest input shape the network takes."""
        return Coordinate(period * m + offset for period, offset, m in self._lattices)

    def _coordinate(self, shape: Sequence[int]) -> Coordinate:
        shape = Coordinate(shape)
        if len(shape) != self.dims:
            raise ValueError(
                f"input shape {tuple(shape)} has {len(shape)} axes but the network is "
                f"{self.dims}D; give one size per spatial axis."
            )
        return shape


def _product(factors: Sequence[Coordinate], dims: int) -> Coordinate:
    return reduce(lambda a, b: a * b, factors, Coordinate((1,) * dims))
