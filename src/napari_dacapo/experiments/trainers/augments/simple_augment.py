"""Random mirroring and transposing of spatial axes (gunpowder's ``SimpleAugment``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate

from .augment import Augment, Sample

if TYPE_CHECKING:
    from .simple_config import SimpleAugmentConfig


class SimpleAugment(Augment):
    """Mirror each allowed axis with its probability, then permute allowed axes.

    Two axes are only swapped when every array of the sample has the same extent and the
    same voxel size along both (swapping a 40 nm z axis with a 4 nm y axis would distort
    the image), so the sample keeps its shape.

    Parameters
    ----------
    config
        Which axes may be mirrored or transposed and with which probabilities.
    """

    keeps_voxel_grid = True

    def __init__(self, config: SimpleAugmentConfig) -> None:
        super().__init__(config.augmentation_probability)
        self.config = config

    def apply(self, sample: Sample, size: Coordinate, rng: np.random.Generator) -> Sample:
        dims = len(size)
        cfg = self.config
        mirror_p = self._per_axis(cfg.mirror_probs, dims, 0.5, "mirror_probs")
        transpose_p = self._per_axis(cfg.transpose_probs, dims, 1.0, "transpose_probs")
        flips = [
            a for a in self._axes(cfg.mirror_only, dims, "mirror_only")
            if rng.random() < mirror_p[a]
        ]
        movable = [
            a for a in self._axes(cfg.transpose_only, dims, "transpose_only")
            if rng.random() < transpose_p[a]
        ]
        permutation = list(range(dims))
        groups: dict[tuple, list[int]] = {}
        for axis in movable:
            key = (size[axis],) + tuple(array.voxel_size[axis] for array in sample.values())
            groups.setdefault(key, []).append(axis)
        for axes in groups.values():
            for target, source in zip(axes, rng.permutation(axes)):
                permutation[target] = int(source)
        self.last_grid_step = (tuple(flips), tuple(permutation))
        out: Sample = {}
        for key, array in sample.items():
            lead = array.data.ndim - dims
            data = np.flip(array.data, [lead + a for a in flips]) if flips else array.data
            order = list(range(lead)) + [lead + a for a in permutation]
            # Swapped axes have equal voxel sizes, so the voxel size stays as it is.
            out[key] = array.with_data(np.transpose(data, order))
        return out

    def _axes(self, axes: Sequence[int] | None, dims: int, field: str) -> list[int]:
        if axes is None:
            return list(range(dims))
        bad = [a for a in axes if not 0 <= a < dims]
        if bad:
            raise ValueError(
                f"SimpleAugmentConfig '{self.config.name}': {field} names axes {bad} but the "
                f"data has {dims} spatial axes. Use axis indices 0 to {dims - 1}."
            )
        return list(axes)

    def _per_axis(
        self, values: Sequence[float] | None, dims: int, default: float, field: str
    ) -> list[float]:
        if values is None:
            return [default] * dims
        if len(values) != dims:
            raise ValueError(
                f"SimpleAugmentConfig '{self.config.name}': {field} has {len(values)} entries "
                f"but the data has {dims} spatial axes. Give one probability per axis."
            )
        return list(values)
