"""A window of another array, e.g. a small validation crop of a large volume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate, Roi

from .array import Array, WrappedArray

if TYPE_CHECKING:
    from .crop_array_config import CropArrayConfig


def shift_slices(slices: Sequence[slice], shift: Sequence[int]) -> tuple[slice, ...]:
    """``slices`` moved by ``shift`` voxels (from a window's voxels to its source's)."""
    return tuple(slice(s.start + d, s.stop + d) for s, d in zip(slices, shift))


def window_shift(source: Array, roi: Roi, where: str) -> Coordinate:
    """Voxel position of ``roi`` in ``source``, after checking that ``roi`` lies inside the
    source and on its voxel grid (the error says how to fix the ROI)."""
    vs = source.voxel_size
    if roi.dims != source.dims:
        raise ValueError(
            f"{where}: ROI {roi} has {roi.dims} dimensions but the source array has "
            f"{source.dims} spatial dimensions. Give the ROI one entry per spatial axis "
            f"({source.axis_names[source.channel_dims:]})."
        )
    if not (roi.begin - source.offset).is_multiple_of(vs) or not roi.shape.is_multiple_of(vs):
        snapped = roi.snap_to_grid(vs, mode="shrink")
        raise ValueError(
            f"{where}: ROI {roi} is not on the voxel grid (voxel size {vs}, offset "
            f"{source.offset}) of the source array. Use a ROI whose offset and shape are "
            f"multiples of the voxel size, e.g. {snapped}."
        )
    if roi.empty or not source.roi.contains(roi):
        raise ValueError(
            f"{where}: ROI {roi} is not inside the source array's ROI {source.roi}. "
            f"Choose a non-empty ROI inside it, e.g. {roi.intersect(source.roi)}."
        )
    return (roi.begin - source.offset) / vs


class CropArray(WrappedArray):
    """The part of a source array inside a world ROI; reads go to the source lazily.

    Parameters
    ----------
    config
        A :class:`CropArrayConfig`: the source array and the ROI (world units, on the
        source's voxel grid, inside the source).
    """

    def __init__(self, config: CropArrayConfig) -> None:
        super().__init__(config.source_array_config.array())
        self.config = config
        self._roi = config.roi
        self._shift = window_shift(self.source, config.roi, f"CropArrayConfig '{config.name}'")

    @property
    def offset(self) -> Coordinate:
        return self._roi.offset

    @property
    def shape(self) -> tuple[int, ...]:
        channels = self.source.shape[: self.source.channel_dims]
        return tuple(channels) + tuple(self._roi.shape / self.voxel_size)

    def read_voxels(self, spatial_slices: tuple[slice, ...]) -> np.ndarray:
        return self.source.read_voxels(shift_slices(spatial_slices, self._shift))
