"""Config of the CNNectome UNet, with DaCapo's field names and defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from funlib.geometry import Coordinate

from ..configs import option

from .architecture import Architecture
from .architecture_config import ArchitectureConfig
from .cnnectome_unet import CNNectomeUNet
from .unet_geometry import PADDINGS, InputShapeError, UNetGeometry

__all__ = ["CNNectomeUNetConfig"]

def _kernels_format(levels: int, dims: int) -> str:
    """How to give kernel sizes, with an example for this network's levels and axes."""
    level = [[3] * dims] * 2  # two convolutions per level
    return (
        f"Give a list with one entry per level (top first), each a list of per-axis kernel "
        f"sizes, one per convolution, e.g. {[level] * levels} for {levels} {dims}D "
        f"level{'s' if levels != 1 else ''}."
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class CNNectomeUNetConfig(ArchitectureConfig):
    """A UNet after CNNectome's ``unet_class``, as DaCapo configures it; builds a
    :class:`~.cnnectome_unet.CNNectomeUNet`.

    A DaCapo YAML loads unchanged: DaCapo stores ``eval_shape_increase`` as
    ``_eval_shape_increase``, which is read into :attr:`eval_shape_increase`.

    A made config has been checked: every shape has one value per axis of ``input_shape``
    (2D or 3D), values are positive, the kernel lists have one entry per level, ``same``
    padding has odd kernels, and both ``input_shape`` and
    ``input_shape + eval_shape_increase`` fit the downsampling (otherwise the error names
    the nearest valid shapes). :meth:`geometry` gives the shape rules without building the
    network.

    ``batch_norm`` defaults to False, as in the DaCapo versions whose YAML lacks the field
    (newer DaCapo versions write it explicitly).
    """

    architecture_type: ClassVar[type[Architecture]] = CNNectomeUNet
    field_aliases: ClassVar[dict[str, str]] = {"_eval_shape_increase": "eval_shape_increase"}

    input_shape: Coordinate = option(
        help="Spatial shape (z, y, x or y, x) of the network input during training, in "
        "voxels. In valid padding it must fit the downsampling; a refused shape's error "
        "names the nearest valid shapes."
    )
    fmaps_in: int = option(help="Number of input channels (channels of the raw data).", min=1)
    fmaps_out: int = option(
        help="Number of feature maps the network outputs (the prediction head follows).",
        min=1,
    )
    num_fmaps: int = option(help="Number of feature maps at the top level.", min=1)
    fmap_inc_factor: int = option(
        help="Factor by which the number of feature maps grows with each level down.", min=1
    )
    downsample_factors: list[Coordinate] = option(
        help="Per-axis max-pooling factor from each level to the next, top first, e.g. "
        "[(2, 2, 2), (2, 2, 2)] for three levels; use 1 on an axis to keep it, e.g. (1, 2, 2) "
        "for anisotropic data."
    )
    kernel_size_down: list[list[Coordinate]] | None = option(
        None,
        help="Kernel sizes of the convolutions on the way down: per level (top first) a "
        "list of per-axis sizes, one per convolution. Default: two 3-wide convolutions per "
        "level.",
        advanced=True,
    )
    kernel_size_up: list[list[Coordinate]] | None = option(
        None,
        help="Kernel sizes of the convolutions on the way up: per level above the bottom "
        "(top first) a list of per-axis sizes, one per convolution. Default: two 3-wide "
        "convolutions per level.",
        advanced=True,
    )
    eval_shape_increase: Coordinate | None = option(
        None,
        help="How much larger than input_shape the input is when predicting (no gradients "
        "to store, so it can be much larger). Must keep the shape valid, i.e. be a multiple "
        "of the product of downsample_factors. Default: no increase.",
    )
    upsample_factors: list[Coordinate] | None = option(
        None,
        help="Extra upsampling after the UNet, each followed by convolutions, so the output "
        "has a finer voxel size than the input (super-resolution).",
        advanced=True,
    )
    constant_upsample: bool = option(
        True,
        help="Upsample by copying voxels (then a 1x1 convolution) instead of a transposed "
        "convolution.",
        advanced=True,
    )
    padding: str = option(
        "valid",
        help="'valid': convolutions shrink the maps, so the output is smaller than the input "
        "and tiles join without seams. 'same': zero-padded convolutions keep the size.",
        choices=PADDINGS,
    )
    batch_norm: bool = option(
        False, help="Use batch normalisation after each convolution.", advanced=True
    )
    use_attention: bool = option(
        False,
        help="Gate each skip connection with an attention gate (Attention U-Net).",
        advanced=True,
    )

    def geometry(self) -> UNetGeometry:
        """The shape rules of this network (output shapes, valid input shapes)."""
        return UNetGeometry.create(
            dims=len(self.input_shape),
            downsample_factors=self.downsample_factors,
            kernel_size_down=self.kernel_size_down,
            kernel_size_up=self.kernel_size_up,
            padding=self.padding,
            upsample_factors=self.upsample_factors,
        )

    def validate(self) -> None:
        dims = len(self._coordinate("input_shape", self.input_shape, 1, dims=None))
        if dims not in (2, 3):
            raise self.error(
                "input_shape", f"has {dims} axes", "Give 2 (y, x) or 3 (z, y, x) sizes."
            )
        levels = len(self._list("downsample_factors", self.downsample_factors)) + 1
        for i, factor in enumerate(self.downsample_factors):
            self._coordinate(f"downsample_factors[{i}]", factor, 1, dims)
        for i, factor in enumerate(self._list("upsample_factors", self.upsample_factors or [])):
            self._coordinate(f"upsample_factors[{i}]", factor, 1, dims)
        if self.eval_shape_increase is not None:
            self._coordinate("eval_shape_increase", self.eval_shape_increase, 0, dims)
        self._check_kernels("kernel_size_down", self.kernel_size_down, levels, dims)
        self._check_kernels("kernel_size_up", self.kernel_size_up, levels - 1, dims)
        self._check_fit()

    # -- helpers of validate ----------------------------------------------------------------

    def _list(self, field: str, value: Any) -> Sequence[Any]:
        if not isinstance(value, (list, tuple)):
            raise self.error(field, f"is {value!r}, not a list", "Give a list of coordinates.")
        return value

    def _coordinate(self, field: str, value: Any, minimum: int, dims: int | None) -> Coordinate:
        """Check one per-axis value: a Coordinate of ``dims`` integers >= ``minimum``."""
        axes = f"{dims} values, one per axis of input_shape" if dims else "one value per axis"
        if not isinstance(value, Coordinate) or (dims is not None and len(value) != dims):
            raise self.error(field, f"is {value!r}", f"Give {axes}, e.g. {(3,) * (dims or 3)}.")
        if any(not isinstance(v, int) or v < minimum for v in value):
            raise self.error(
                field, f"is {tuple(value)}", f"Give whole numbers >= {minimum} ({axes})."
            )
        return value

    def _check_kernels(self, field: str, kernels: Any, levels: int, dims: int) -> None:
        if kernels is None:
            return
        if not isinstance(kernels, (list, tuple)) or len(kernels) != levels:
            count = len(kernels) if isinstance(kernels, (list, tuple)) else kernels
            raise self.error(
                field,
                f"has {count} entries but the network has {levels} "
                f"{'levels' if field.endswith('down') else 'levels above the bottom'} "
                f"(from {len(self.downsample_factors)} downsample_factors)",
                _kernels_format(levels, dims),
            )
        for level, sizes in enumerate(kernels):
            if not isinstance(sizes, (list, tuple)) or not sizes:
                raise self.error(
                    f"{field}[{level}]", f"is {sizes!r}", _kernels_format(levels, dims)
                )
            for i, size in enumerate(sizes):
                if not isinstance(size, Coordinate):
                    raise self.error(
                        f"{field}[{level}][{i}]", f"is {size!r}", _kernels_format(levels, dims)
                    )
                self._coordinate(f"{field}[{level}][{i}]", size, 1, dims)
                if self.padding == "same" and any(k % 2 == 0 for k in size):
                    raise self.error(
                        f"{field}[{level}][{i}]",
                        f"is {tuple(size)}, with an even size, which 'same' padding cannot centre",
                        "Use odd kernel sizes, or padding 'valid'.",
                    )

    def _check_fit(self) -> None:
        geometry = self.geometry()
        try:
            geometry.output_shape(self.input_shape)
        except InputShapeError as e:
            raise self.error(
                "input_shape",
                f"{tuple(self.input_shape)} {e.problem}",
                "Use one of the nearest valid shapes, or change downsample_factors or the "
                "kernel sizes.",
            ) from None
        if self.eval_shape_increase is None:
            return
        try:
            geometry.output_shape(self.input_shape + self.eval_shape_increase)
        except InputShapeError as e:
            options = [
                tuple(shape - self.input_shape)
                for shape in (e.below, e.above)
                if shape is not None and all(v >= 0 for v in shape - self.input_shape)
            ]
            raise self.error(
                "eval_shape_increase",
                f"{tuple(self.eval_shape_increase)} makes the prediction input "
                f"{tuple(e.shape)}, which {e.problem}",
                f"Use eval_shape_increase {' or '.join(map(str, options))} (a multiple of "
                f"{tuple(geometry.period)} per axis).",
            ) from None
