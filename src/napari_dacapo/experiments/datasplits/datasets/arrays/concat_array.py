from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate, Roi

from .array import Array

if TYPE_CHECKING:
    from .concat_array_config import ConcatArrayConfig


class ConcatArray(Array):
    """Single-channel arrays stacked along a new channel axis ``'c^'``, one channel per
    name in ``config.channels``.

    A channel without a source reads from ``default_config`` (or is zero). All arrays must
    share voxel size and spatial axes; the result covers the ROI they all cover, and its
    dtype holds every source's values (DaCapo's own version fails to broadcast the
    channels; this one reads each source by world ROI).

    Parameters
    ----------
    config
        A :class:`ConcatArrayConfig`.
    """

    def __init__(self, config: ConcatArrayConfig) -> None:
        self.config = config
        self.sources = {c: cfg.array() for c, cfg in config.source_array_configs.items()}
        self.default = config.default_config.array() if config.default_config else None
        arrays = {**self.sources, **({"default_config": self.default} if self.default else {})}
        where = f"ConcatArrayConfig '{config.name}'"
        first_name, first = next(iter(arrays.items()))
        roi = first.roi
        for channel, array in arrays.items():
            if array.num_channels not in (None, 1):
                raise ValueError(
                    f"{where}: '{channel}' has {array.num_channels} channels but each "
                    f"channel takes a single-channel array. Split it into one array per "
                    f"channel (e.g. with BinarizeArrayConfig groupings)."
                )
            if array.voxel_size != first.voxel_size or array.dims != first.dims:
                raise ValueError(
                    f"{where}: '{channel}' has voxel size {array.voxel_size} but "
                    f"'{first_name}' has {first.voxel_size}. All channels must share the "
                    f"voxel size and spatial axes: resample them to one resolution."
                )
            roi = roi.intersect(array.roi)
        if roi.empty:
            rois = ", ".join(f"{c}: {a.roi}" for c, a in arrays.items())
            raise ValueError(
                f"{where}: the channels do not overlap in world coordinates ({rois}). "
                f"Check their offsets (translate) and voxel sizes (scale)."
            )
        self._roi = roi
        self._template = first
        self._dtype = np.result_type(*(a.dtype for a in arrays.values()))

    @property
    def axis_names(self) -> list[str]:
        t = self._template
        return ["c^", *t.axis_names[t.channel_dims :]]

    @property
    def voxel_size(self) -> Coordinate:
        return self._template.voxel_size

    @property
    def offset(self) -> Coordinate:
        return self._roi.offset

    @property
    def units(self) -> list[str]:
        return self._template.units

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.config.channels), *(self._roi.shape / self.voxel_size))

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def read_voxels(self, spatial_slices: tuple[slice, ...]) -> np.ndarray:
        begin = Coordinate(s.start for s in spatial_slices)
        size = Coordinate(s.stop - s.start for s in spatial_slices)
        roi = Roi(self.offset + begin * self.voxel_size, size * self.voxel_size)
        out = np.zeros((len(self.config.channels), *size), dtype=self.dtype)
        for i, channel in enumerate(self.config.channels):
            source = self.sources.get(channel, self.default)
            if source is not None:
                out[i] = source[roi].reshape(size)  # drops a size-1 channel axis
        return out
