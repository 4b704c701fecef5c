"""Arrays with geometry: the one way the engine reads image data.

An :class:`Array` has spatial axes with a voxel size and an offset in world units (as a
napari layer has ``scale`` and ``translate``), an optional leading channel axis, and reads
regions by world-unit :class:`~funlib.geometry.Roi`. Reads are lazy: a zarr- or dask-backed
array is only read where asked, so no full-volume copy is ever made.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

CHANNEL_AXIS_NAMES = ("c^", "c", "channel", "channels")


def is_channel_axis(name: str) -> bool:
    return name.lower() in CHANNEL_AXIS_NAMES or name.endswith("^")


def default_axis_names(spatial_dims: int, channels: bool) -> list[str]:
    names = ["z", "y", "x"][-spatial_dims:] if spatial_dims <= 3 else [
        f"d{i}" for i in range(spatial_dims)
    ]
    return (["c^"] if channels else []) + names


def voxel_slices(roi: Roi, origin: Coordinate, voxel_size: Coordinate) -> tuple[slice, ...]:
    """Array slices of the world ``roi`` in an array whose first voxel is at ``origin``
    (``roi`` on that array's voxel grid)."""
    # Plain integers (as Coordinate division, truncated): this runs several times per
    # prediction tile, where Coordinate arithmetic costs more than the slicing itself.
    slices = []
    for b, o, n, v in zip(roi.begin, origin, roi.shape, voxel_size):
        start = int((b - o) / v)
        slices.append(slice(start, start + int(n / v)))
    return tuple(slices)


class Array(ABC):
    """A lazily read array with a channel axis (optional, first) and spatial axes."""

    @property
    @abstractmethod
    def axis_names(self) -> list[str]: ...

    @property
    @abstractmethod
    def voxel_size(self) -> Coordinate: ...

    @property
    @abstractmethod
    def offset(self) -> Coordinate: ...

    @property
    @abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Full shape, channel axis included."""

    @property
    @abstractmethod
    def dtype(self) -> np.dtype: ...

    @abstractmethod
    def read_voxels(self, spatial_slices: tuple[slice, ...]) -> np.ndarray:
        """Read the voxels in ``spatial_slices`` (all channels) as a numpy array."""

    @property
    def units(self) -> list[str]:
        return [""] * self.dims

    @property
    def channel_dims(self) -> int:
        return sum(is_channel_axis(a) for a in self.axis_names)

    @property
    def dims(self) -> int:
        """Number of spatial dimensions."""
        return len(self.axis_names) - self.channel_dims

    @property
    def num_channels(self) -> int | None:
        return self.shape[0] if self.channel_dims else None

    @property
    def spatial_shape(self) -> Coordinate:
        return Coordinate(self.shape[self.channel_dims :])

    @property
    def roi(self) -> Roi:
        return Roi(self.offset, self.voxel_size * self.spatial_shape)

    @property
    def data(self) -> np.ndarray:
        """All voxels (reads everything: use for small arrays only)."""
        return self.read_voxels(tuple(slice(0, s) for s in self.spatial_shape))

    def to_slices(self, roi: Roi) -> tuple[slice, ...]:
        """Voxel slices of a world ROI; the ROI must lie on this array's voxel grid."""
        if not roi.offset.is_multiple_of(self.voxel_size) or not roi.shape.is_multiple_of(
            self.voxel_size
        ):
            raise ValueError(
                f"ROI {roi} is not aligned with the voxel size {self.voxel_size} of this "
                f"array; snap it with roi.snap_to_grid(voxel_size) first."
            )
        return voxel_slices(roi, self.offset, self.voxel_size)

    def __getitem__(self, roi: Roi) -> np.ndarray:
        """Read a world ROI that lies inside :attr:`roi`."""
        if not self.roi.contains(roi):
            raise ValueError(f"ROI {roi} is not inside the array's ROI {self.roi}.")
        return self.read_voxels(self.to_slices(roi))

    def read(self, roi: Roi, fill: float = 0) -> np.ndarray:
        """Read a world ROI; voxels outside the array are ``fill`` (used to pad borders)."""
        inside = roi.intersect(self.roi)
        out_shape = (
            (self.shape[0],) if self.channel_dims else ()
        ) + tuple(roi.shape / self.voxel_size)
        if inside == roi:
            return self[roi]
        out = np.full(out_shape, fill, dtype=self.dtype)
        if not inside.empty:
            target = tuple(
                slice(int(b), int(b + s))
                for b, s in zip((inside.begin - roi.begin) / self.voxel_size,
                                inside.shape / self.voxel_size)
            )
            out[(slice(None),) * self.channel_dims + target] = self[inside]
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, "
            f"voxel_size={tuple(self.voxel_size)}, offset={tuple(self.offset)}, "
            f"axes={self.axis_names})"
        )


class SourceArray(Array):
    """An array backed by anything that slices like numpy (numpy, zarr, dask, a napari
    layer's data), with its geometry given alongside."""

    def __init__(
        self,
        data: Any,
        voxel_size: Sequence[int] | None = None,
        offset: Sequence[int] | None = None,
        axis_names: Sequence[str] | None = None,
        units: Sequence[str] | None = None,
    ) -> None:
        self._data = data
        ndim = len(data.shape)
        if axis_names is None:
            axis_names = default_axis_names(ndim, channels=False)
        if len(axis_names) != ndim:
            raise ValueError(
                f"axis_names {list(axis_names)} has {len(axis_names)} entries but the data "
                f"has {ndim} dimensions {tuple(data.shape)}."
            )
        self._axis_names = list(axis_names)
        # Fixed from here on; kept because every training sample reads several boxes.
        self._channel_dims = sum(is_channel_axis(a) for a in self._axis_names)
        self._all_channels = (slice(None),) * self._channel_dims
        dims = self.dims
        self._voxel_size = Coordinate(voxel_size if voxel_size is not None else (1,) * dims)
        self._offset = Coordinate(offset if offset is not None else (0,) * dims)
        for label, value in (("voxel_size", self._voxel_size), ("offset", self._offset)):
            if len(value) != dims:
                raise ValueError(
                    f"{label} {tuple(value)} has {len(value)} entries but the data has "
                    f"{dims} spatial dimensions (axes {self._axis_names})."
                )
        if any(v <= 0 for v in self._voxel_size):
            raise ValueError(f"voxel_size {tuple(self._voxel_size)} must be positive.")
        self._units = list(units) if units is not None else [""] * dims

    @property
    def source(self) -> Any:
        return self._data

    @property
    def axis_names(self) -> list[str]:
        return self._axis_names

    @property
    def channel_dims(self) -> int:
        return self._channel_dims

    @property
    def voxel_size(self) -> Coordinate:
        return self._voxel_size

    @property
    def offset(self) -> Coordinate:
        return self._offset

    @property
    def units(self) -> list[str]:
        return self._units

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self._data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._data.dtype)

    def read_voxels(self, spatial_slices: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self._data[self._all_channels + tuple(spatial_slices)])


class WrappedArray(Array):
    """An array over one source array: axes, voxel size, offset, units, shape and dtype are
    the source's unless a subclass overrides them; subclasses say how voxels are read.

    Parameters
    ----------
    source
        The array wrapped.
    """

    def __init__(self, source: Array) -> None:
        self.source = source

    @property
    def axis_names(self) -> list[str]:
        return self.source.axis_names

    @property
    def voxel_size(self) -> Coordinate:
        return self.source.voxel_size

    @property
    def offset(self) -> Coordinate:
        return self.source.offset

    @property
    def units(self) -> list[str]:
        return self.source.units

    @property
    def shape(self) -> tuple[int, ...]:
        return self.source.shape

    @property
    def dtype(self) -> np.dtype:
        return self.source.dtype


class DerivedArray(WrappedArray):
    """An array computed voxel-wise from one source array (same geometry)."""

    def read_voxels(self, spatial_slices: tuple[slice, ...]) -> np.ndarray:
        return self.transform(self.source.read_voxels(spatial_slices))

    @abstractmethod
    def transform(self, data: np.ndarray) -> np.ndarray: ...


@functools.lru_cache(maxsize=None)
def integer_scale(dtype: np.dtype) -> np.float32:
    """What :func:`raw_as_float32` divides raw data of the integer ``dtype`` by."""
    return np.float32(np.iinfo(dtype).max)


def raw_as_float32(data: np.ndarray) -> np.ndarray:
    """Raw intensities as the network sees them, in training and prediction alike:
    integer dtypes are divided by their dtype's maximum (as gunpowder's Normalize does),
    floats pass through. Use an IntensitiesArrayConfig for any other scaling."""
    if np.issubdtype(data.dtype, np.integer):
        # One pass, no float copy first (same values as astype, then divide).
        return np.divide(data, integer_scale(data.dtype), dtype=np.float32)
    if data.dtype == np.bool_:
        return data.astype(np.float32)
    return data.astype(np.float32, copy=False)


def reads_in_process(array: Array) -> bool:
    """Whether ``array`` reads its voxels without a library's threads: from numpy data,
    or computed by napari-dacapo itself (e.g. a mask of boxes), also through wrapping
    arrays. Only such arrays can be read in a forked process: zarr (its async loop, and
    the zarrs codec pipeline's thread pool) and dask (its threaded scheduler) read with
    threads that a fork does not copy, and a forked reader waits for them forever."""
    if isinstance(array, SourceArray):
        data = array.source
        return isinstance(data, np.ndarray) or type(data).__module__.startswith(
            "napari_dacapo."
        )
    parts = [getattr(array, "source", None), getattr(array, "default", None),
             *(getattr(array, "sources", None) or {}).values()]
    parts = [part for part in parts if isinstance(part, Array)]
    return bool(parts) and all(reads_in_process(part) for part in parts)
