"""Augments of one training sample, and the pipeline that chains them.

A sample is a dict of named :class:`SampleArray` (``"raw"``, ``"gt"``, ``"mask"``) that all
cover the same world ROI, each on its own voxel grid. Spatial augments transform every array
identically in world units (raw with linear interpolation, labels and masks with nearest
neighbours); intensity augments only touch ``"raw"``.

Context: an augment that moves voxels (a rotation, an elastic warp) needs source data beyond
the region it produces, or its output would have empty corners. Each augment therefore says
how much context it needs for a given output size (:meth:`Augment.required_context`), and
:class:`AugmentPipeline` works backwards from the network input size to the size that has to
be read. Each augment then produces exactly the centred region the next one expects, so the
transform is evaluated only where it is used.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from funlib.geometry import Coordinate

__all__ = [
    "SampleArray", "Sample", "Augment", "AugmentPipeline", "GridStep", "crop_center",
    "undo_grid_steps", "RAW",
]

#: The key of the intensity image in a sample; intensity augments change only this array.
RAW = "raw"


@dataclass(frozen=True)
class SampleArray:
    """One array of a sample.

    Attributes
    ----------
    data
        ``(*channels, *spatial)`` voxels.
    voxel_size
        World size of one voxel per spatial axis.
    interpolate
        ``True`` for intensities (linear interpolation when resampled), ``False`` for labels
        and masks (nearest neighbour, so no new label values appear).
    """

    data: np.ndarray
    voxel_size: Coordinate
    interpolate: bool

    @property
    def dims(self) -> int:
        return len(self.voxel_size)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[-self.dims :])

    @property
    def size(self) -> Coordinate:
        """World extent of the array."""
        return Coordinate(self.spatial_shape) * self.voxel_size

    def with_data(self, data: np.ndarray) -> SampleArray:
        # Not dataclasses.replace: this runs for every array of every sample.
        return SampleArray(data, self.voxel_size, self.interpolate)


Sample = dict[str, SampleArray]

#: A mirror-and-transpose of the spatial axes: the axes flipped, then the permutation
#: (output axis ``i`` is input axis ``permutation[i]``).
GridStep = tuple[tuple[int, ...], tuple[int, ...]]


def undo_grid_steps(data: np.ndarray, steps: list[GridStep], dims: int) -> np.ndarray:
    """``data`` ``(*channels, *spatial)`` as it was before ``steps`` mirrored and
    transposed it (so that an augmented sample lines up with its source again)."""
    lead = data.ndim - dims
    for flips, permutation in reversed(steps):
        inverse = np.argsort(permutation)
        data = np.transpose(data, list(range(lead)) + [lead + int(a) for a in inverse])
        if flips:
            data = np.flip(data, [lead + a for a in flips])
    return data


def crop_center(sample: Sample, size: Coordinate) -> Sample:
    """The centred region of world extent ``size`` of every array of ``sample``."""
    out: Sample = {}
    for key, array in sample.items():
        extra = array.size - size
        if any(e < 0 for e in extra) or not extra.is_multiple_of(array.voxel_size * 2):
            raise ValueError(
                f"Cannot crop '{key}' of world size {tuple(array.size)} to a centred "
                f"{tuple(size)}: the margin must be a non-negative whole number of voxels "
                f"({tuple(array.voxel_size)}) on each side."
            )
        begin = extra // (array.voxel_size * 2)
        shape = size // array.voxel_size
        spatial = tuple(slice(int(b), int(b + s)) for b, s in zip(begin, shape))
        lead = array.data.ndim - array.dims
        out[key] = array.with_data(array.data[(slice(None),) * lead + spatial])
    return out


class Augment(ABC):
    """A random transformation of one sample.

    Parameters
    ----------
    probability
        Chance that the augment is applied to a sample; otherwise the sample passes
        unchanged (cropped to the requested size).
    """

    #: True when the augment moves voxels only by mirroring or transposing whole axes, or
    #: not at all: then a quantity computed voxel by voxel on the labels before it (a
    #: distance target) equals the one computed after it, mirrored and transposed alike.
    keeps_voxel_grid: bool = False

    def __init__(self, probability: float = 1.0) -> None:
        self.probability = probability
        #: The mirror-and-transpose of the last call, for augments that keep the voxel grid
        #: (None: none, e.g. skipped or an intensity augment).
        self.last_grid_step: GridStep | None = None

    def required_context(self, size: Coordinate, voxel_size: Coordinate) -> Coordinate:
        """World margin per side this augment needs around an output of world ``size``.

        ``voxel_size`` is that of the raw array (the reference grid). Intensity augments
        and shape-preserving spatial ones need none.
        """
        return Coordinate((0,) * len(size))

    def __call__(self, sample: Sample, size: Coordinate, rng: np.random.Generator) -> Sample:
        """Augment ``sample`` and return its centred region of world extent ``size``."""
        self.last_grid_step = None
        if self.probability < 1.0 and rng.random() >= self.probability:
            return crop_center(sample, size)
        return self.apply(sample, size, rng)

    @abstractmethod
    def apply(self, sample: Sample, size: Coordinate, rng: np.random.Generator) -> Sample:
        """Transform ``sample`` (which is ``size`` plus the required context) into arrays
        of world extent ``size``."""


class AugmentPipeline:
    """Augments in order, with the world size each one reads and produces.

    Parameters
    ----------
    augments
        Applied first to last.
    output_size
        World size the last augment must produce (the network input).
    voxel_size
        The raw voxel size: the reference grid for augments that work in voxels.
    grid
        Every intermediate size is padded up to a whole number of these world units on each
        side, so that every array of the sample can be cropped on its own voxel grid (the
        least common multiple of all the sample's voxel sizes).
    """

    def __init__(
        self,
        augments: Sequence[Augment],
        output_size: Coordinate,
        voxel_size: Coordinate,
        grid: Coordinate,
    ) -> None:
        self.augments = list(augments)
        sizes = [Coordinate(output_size)]
        for augment in reversed(self.augments):
            context = augment.required_context(sizes[0], voxel_size)
            snapped = Coordinate(
                math.ceil(c / g) * g for c, g in zip(context, grid)
            )
            sizes.insert(0, sizes[0] + snapped * 2)
        self.sizes = sizes
        #: The mirror-and-transpose steps of the last call, to undo them (None when an
        #: augment moved voxels off the grid: a warp cannot be undone exactly).
        self.last_grid_steps: list[GridStep] | None = []

    @property
    def read_size(self) -> Coordinate:
        """World size to read so that every augment has the context it needs."""
        return self.sizes[0]

    @property
    def context(self) -> Coordinate:
        """World margin per side that is read beyond the output size."""
        return (self.sizes[0] - self.sizes[-1]) // 2

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        steps: list[GridStep] | None = []
        for augment, size in zip(self.augments, self.sizes[1:]):
            sample = augment(sample, size, rng)
            if not augment.keeps_voxel_grid:
                steps = None
            elif steps is not None and augment.last_grid_step is not None:
                steps.append(augment.last_grid_step)
        self.last_grid_steps = steps
        return sample
