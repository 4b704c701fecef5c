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
        self._checked: dict[int, tuple[list[tuple[int, float]], list[tuple[int, float]]]] = {}
        self._groups: dict[tuple, dict[tuple, list[int]]] = {}

    def _plan(self, dims: int) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """(axis, probability) of the axes that may be mirrored and of those that may be
        transposed, checked once per number of dimensions (this runs for every sample)."""
        if dims not in self._checked:
            cfg = self.config
            mirror_p = self._per_axis(cfg.mirror_probs, dims, 0.5, "mirror_probs")
            transpose_p = self._per_axis(cfg.transpose_probs, dims, 1.0, "transpose_probs")
            self._checked[dims] = (
                [(a, mirror_p[a]) for a in self._axes(cfg.mirror_only, dims, "mirror_only")],
                [(a, transpose_p[a])
                 for a in self._axes(cfg.transpose_only, dims, "transpose_only")],
            )
        return self._checked[dims]

    def apply(self, sample: Sample, size: Coordinate, rng: np.random.Generator) -> Sample:
        dims = len(size)
        mirror, transpose = self._plan(dims)
        draws = rng.random(len(mirror) + len(transpose)).tolist()
        flips = [a for (a, p), u in zip(mirror, draws) if u < p]
        movable = [a for (a, p), u in zip(transpose, draws[len(mirror):]) if u < p]
        permutation = list(range(dims))
        for axes in self._swappable(movable, size, sample).values():
            if len(axes) > 1:
                for target, source in zip(axes, rng.permutation(axes).tolist()):
                    permutation[target] = source
        self.last_grid_step = (tuple(flips), tuple(permutation))
        identity = permutation == list(range(dims))
        reverse, keep = slice(None, None, -1), slice(None)
        mirrored = tuple(reverse if a in flips else keep for a in range(dims))
        out: Sample = {}
        for key, array in sample.items():
            data = array.data
            lead = data.ndim - dims
            if flips:  # a view, like np.flip, without its argument checks
                data = data[(Ellipsis, *mirrored)]
            if not identity:
                data = data.transpose(*range(lead), *(lead + a for a in permutation))
            # Swapped axes have equal voxel sizes, so the voxel size stays as it is.
            out[key] = array.with_data(data)
        return out

    def _swappable(
        self, movable: list[int], size: Coordinate, sample: Sample
    ) -> dict[tuple, list[int]]:
        """``movable`` axes in groups that may be swapped with each other: same extent and
        voxel size in every array (cached: samples of a pipeline share their geometry)."""
        voxel_sizes = tuple(array.voxel_size for array in sample.values())
        key = (tuple(movable), size, voxel_sizes)
        groups = self._groups.get(key)
        if groups is None:
            groups = {}
            for axis in movable:
                same = (size[axis],) + tuple(v[axis] for v in voxel_sizes)
                groups.setdefault(same, []).append(axis)
            self._groups[key] = groups
        return groups

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
