"""Zarr arrays (format 2 and 3, DaCapo and OME-Zarr layouts): read lazily by world ROI,
and written with DaCapo's attributes so that DaCapo reads them back."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi

from .array import SourceArray, default_axis_names, is_channel_axis
from .crop_array import shift_slices, window_shift
from .zarr_metadata import ZarrGeometry, find_multiscale, read_geometry

if TYPE_CHECKING:
    from .zarr_array_config import ZarrArrayConfig

logger = logging.getLogger(__name__)

_ZARR3 = int(zarr.__version__.split(".")[0]) >= 3
#: How containers are opened: from each node's own metadata, not a container's consolidated
#: metadata (OME-Zarr and CellMap containers often have it), which does not list arrays
#: written since it was made, and holds their old shapes and attributes.
FRESH = {"use_consolidated": False} if _ZARR3 else {}

#: zarr-python 3's own codec pipeline spends ~0.3 ms on every chunk it reads (thread
#: handoffs of its asyncio machinery), more than decompressing it: a 1624^2 image in 256^2
#: chunks took 16 ms to read. The zarrs pipeline (Rust; zarr-python's documented plug-in
#: point, falling back to zarr's own for what it does not handle) read it in 2 ms.
_FAST_PIPELINE = "zarrs.ZarrsCodecPipeline"
# zarr's config is process-wide: our read-only opens switch it one at a time, so that
# they never restore each other's setting (the pipeline is fixed when an array opens).
_PIPELINE_LOCK = threading.Lock()


@contextlib.contextmanager
def fast_reads() -> Iterator[None]:
    """Arrays opened inside this context read through the zarrs codec pipeline, when
    zarrs is installed (with zarr-python 3); otherwise nothing changes. Use it for
    read-only opens: writes keep zarr's own pipeline."""
    try:
        import zarrs  # noqa: F401
    except ImportError:
        yield
        return
    with _PIPELINE_LOCK, zarr.config.set({"codec_pipeline.path": _FAST_PIPELINE}):
        yield


def reopened_for_reading(array: Any) -> Any:
    """A zarr-python 3 array given by a user (opened with zarr's default pipeline) opened
    again, read-only, through :func:`fast_reads`; anything else as it is."""
    if not (_ZARR3 and isinstance(array, zarr.Array)):
        return array
    try:
        with fast_reads():
            return zarr.open_array(store=array.store, path=array.path, mode="r")
    except (OSError, ValueError, TypeError, KeyError, NotImplementedError):
        return array  # a store that cannot be reopened: read it as it was given


def describe(file_name: Path, dataset: str) -> str:
    """How messages name a zarr array."""
    return f"zarr array '{dataset}' in {file_name}" if dataset else f"zarr array {file_name}"


def _array_paths(group: Any, prefix: str = "", limit: int = 20) -> str:
    """The arrays under ``group`` (at ``prefix`` in its container), for 'it holds ...'
    messages."""
    if hasattr(group, "members"):  # zarr-python 3
        items = list(group.members(max_depth=None))
    else:  # zarr-python 2
        items = []
        group.visititems(lambda name, node: items.append((name, node)))
    paths = sorted(f"{prefix}/{name}".lstrip("/") for name, node in items
                   if isinstance(node, zarr.Array))
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return (", ".join(paths[:limit]) + more) if paths else "no arrays"


def open_zarr_array(
    file_name: Path, dataset: str, mode: str = "r", axis_names: Sequence[str] | None = None
) -> tuple[Any, ZarrGeometry]:
    """Open ``dataset`` in the container ``file_name`` and read its geometry.

    A dataset that is an OME-Zarr multiscale group opens its first (finest) level.
    ``axis_names`` replaces the stored axis names (and sizes the default geometry).
    """
    where = describe(file_name, dataset)
    if not file_name.exists():
        relative = "" if file_name.is_absolute() else f" (read from {Path.cwd()})"
        raise FileNotFoundError(
            f"Zarr container {file_name} does not exist{relative}. Check file_name."
        )
    with fast_reads() if mode == "r" else contextlib.nullcontext():
        return _open_node(file_name, dataset, mode, axis_names, where)


def _open_node(
    file_name: Path, dataset: str, mode: str, axis_names: Sequence[str] | None, where: str
) -> tuple[Any, ZarrGeometry]:
    try:
        # 'r+' opens an existing container for writing; 'a' would create one.
        root = zarr.open(str(file_name), mode="r" if mode == "r" else "r+", **FRESH)
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise FileNotFoundError(
            f"{file_name} is not a zarr container ({e}). Set file_name to the folder that "
            f"holds .zgroup/.zarray or zarr.json."
        ) from None
    if dataset and isinstance(root, zarr.Array):
        raise FileNotFoundError(
            f"{file_name} is itself an array, so it has no dataset '{dataset}'. Set dataset "
            f"to '' (empty)."
        )
    try:
        node = root[dataset] if dataset else root
    except KeyError:
        raise FileNotFoundError(
            f"Dataset '{dataset}' is not in {file_name}; it holds {_array_paths(root)}. "
            f"Set dataset to one of those."
        ) from None
    parent_attrs: dict[str, Any] | None = None
    path_in_parent = ""
    if isinstance(node, zarr.Group):
        multiscale = find_multiscale(node.attrs.asdict())
        if multiscale is None or not multiscale.get("datasets"):
            raise FileNotFoundError(
                f"{where} is a group, not an array; it holds {_array_paths(node, dataset)}. Set "
                f"dataset to one of those arrays."
            )
        path_in_parent = str(multiscale["datasets"][0]["path"])
        logger.info("%s is an OME-Zarr multiscale; reading its finest level '%s'.",
                    where, path_in_parent)
        parent_attrs, node = node.attrs.asdict(), node[path_in_parent]
    elif dataset:
        parent_path, _, path_in_parent = dataset.rpartition("/")
        parent_attrs = (root[parent_path] if parent_path else root).attrs.asdict()
    geometry = read_geometry(
        node.attrs.asdict(), parent_attrs, path_in_parent, node.ndim, where, axis_names
    )
    return node, geometry


class ZarrArray(SourceArray):
    """A zarr array on disk, read chunk by chunk where asked (never as a whole).

    Its geometry comes from the array's attributes (see :mod:`.zarr_metadata`); any of
    ``axis_names``, ``voxel_size``, ``offset`` and ``units`` set in the config override
    them. ``snap_to_grid`` shrinks the array's ROI to that grid (as in DaCapo).

    Parameters
    ----------
    config
        The :class:`ZarrArrayConfig` naming the container and dataset.
    """

    def __init__(self, config: ZarrArrayConfig) -> None:
        self.config = config
        where = describe(config.file_name, config.dataset)
        data, geometry = open_zarr_array(
            config.file_name, config.dataset, config.mode, config.axis_names
        )
        overrides = {
            k: getattr(config, k)
            for k in ("voxel_size", "offset", "units")
            if getattr(config, k) is not None
        }
        geometry = dataclasses.replace(geometry, **overrides).checked(data.shape, where)
        super().__init__(
            data, geometry.voxel_size, geometry.offset, geometry.axis_names, geometry.units
        )
        # The window is the part of the stored array this object shows: all of it, unless
        # snap_to_grid shrinks it.
        full_shape = Coordinate(data.shape[self.channel_dims :])
        self._window = Roi(self._offset, self._voxel_size * full_shape)
        self._shift = Coordinate((0,) * self.dims)
        if config.snap_to_grid is not None:
            snapped = self._window.snap_to_grid(config.snap_to_grid, mode="shrink")
            self._shift = window_shift(self, snapped, f"{where} (snap_to_grid)")
            self._window = snapped

    def __reduce__(self) -> tuple[Any, ...]:
        # Reopen from the config in another process (daisy workers) instead of pickling
        # the store handle.
        return (type(self), (self.config,))

    @property
    def offset(self) -> Coordinate:
        return self._window.offset

    @property
    def shape(self) -> tuple[int, ...]:
        channels = tuple(self._data.shape[: self.channel_dims])
        return channels + tuple(self._window.shape / self.voxel_size)

    @property
    def chunk_shape(self) -> Coordinate:
        """Spatial chunk shape in voxels (reads aligned to it touch the fewest chunks)."""
        return Coordinate(self._data.chunks[self.channel_dims :])

    def read_voxels(self, spatial_slices: tuple[slice, ...]) -> np.ndarray:
        return super().read_voxels(shift_slices(spatial_slices, self._shift))

    def __setitem__(self, roi: Roi, data: np.ndarray) -> None:
        """Write ``data`` (all channels) into the world ROI ``roi``."""
        where = describe(self.config.file_name, self.config.dataset)
        if self.config.mode == "r":
            raise PermissionError(
                f"{where} is open read-only. Set mode='r+' in its ZarrArrayConfig to write."
            )
        if not self.roi.contains(roi):
            raise ValueError(f"{where}: ROI {roi} is not inside the array's ROI {self.roi}.")
        spatial = shift_slices(self.to_slices(roi), self._shift)
        self._data[(slice(None),) * self.channel_dims + spatial] = data


def _default_chunks(shape: Sequence[int], channel_dims: int) -> tuple[int, ...]:
    # 2**18 voxels per chunk in 2D and 3D: zarr-python 3 spends ~0.3 ms per chunk read
    # whatever its size, so 256^2 chunks made reading a 1624^2 image cost 15 ms, 512^2 7 ms.
    spatial = len(shape) - channel_dims
    side = 64 if spatial >= 3 else 512
    return tuple(shape[:channel_dims]) + tuple(min(side, s) for s in shape[channel_dims:])


def _writable_root(file_name: Path, zarr_format: int | None) -> Any:
    if not _ZARR3:
        if zarr_format not in (None, 2):
            raise ValueError(
                f"zarr_format={zarr_format} needs zarr-python 3 (pip install 'zarr>=3'); "
                f"use zarr_format=2 with zarr {zarr.__version__}."
            )
        return zarr.open_group(str(file_name), mode="a")
    try:
        existing = zarr.open_group(str(file_name), mode="r", **FRESH).metadata.zarr_format
    except FileNotFoundError:
        existing = zarr_format or 2
    # Unless a format is asked for, arrays join an existing container in its own format.
    zarr_format = zarr_format or existing
    if existing != zarr_format:
        raise ValueError(
            f"{file_name} is a zarr format {existing} container; pass "
            f"zarr_format={existing} to add arrays to it, or write to a new container."
        )
    return zarr.open_group(str(file_name), mode="a", zarr_format=zarr_format, **FRESH)


def keep_consolidated(file_name: str | Path) -> None:
    """Rewrite the consolidated metadata of the container ``file_name``, if it has any, so
    that readers using it (zarr's default, napari-ome-zarr) see arrays and attributes
    written since."""
    try:
        if _ZARR3:
            group = zarr.open_group(str(file_name), mode="r")
            if group.metadata.consolidated_metadata is None:
                return
        elif not (Path(file_name) / ".zmetadata").is_file():
            return
    except (FileNotFoundError, KeyError, ValueError):
        return
    with warnings.catch_warnings():  # zarr: consolidated metadata is not in format 3's spec
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(file_name))


def _create(
    file_name: str | Path,
    dataset: str,
    shape: Sequence[int],
    dtype: Any,
    voxel_size: Sequence[int] | None,
    offset: Sequence[int] | None,
    axis_names: Sequence[str] | None,
    units: Sequence[str] | None,
    chunks: Sequence[int] | None,
    zarr_format: int | None,
    overwrite: bool,
    name: str | None,
    attributes: Mapping[str, Any] | None = None,
) -> tuple[Any, ZarrArrayConfig]:
    """Create an empty array with DaCapo's geometry attributes; return it and its config."""
    # Imported here: the config module imports this one for its array_type.
    from .zarr_array_config import ZarrArrayConfig

    file_name, dataset = Path(file_name), dataset.strip("/")
    where = describe(file_name, dataset)
    if not dataset:
        raise ValueError(f"No dataset given for {file_name}. Name the array, e.g. 'raw'.")
    names = list(axis_names) if axis_names is not None else default_axis_names(len(shape), False)
    spatial = sum(not is_channel_axis(a) for a in names)
    geometry = ZarrGeometry(
        names,
        Coordinate(voxel_size if voxel_size is not None else (1,) * spatial),
        Coordinate(offset if offset is not None else (0,) * spatial),
        list(units) if units is not None else [""] * spatial,
        "the arguments",
    ).checked(tuple(shape), where)
    kwargs = {
        "shape": tuple(int(s) for s in shape),
        "dtype": np.dtype(dtype),
        "chunks": tuple(chunks) if chunks else _default_chunks(shape, len(names) - spatial),
        "fill_value": 0,
        "overwrite": overwrite,
    }
    root = _writable_root(file_name, zarr_format)
    try:
        array = root.create_array(dataset, **kwargs) if _ZARR3 else root.create_dataset(
            dataset, **kwargs
        )
    except (zarr.errors.ContainsArrayError, zarr.errors.ContainsGroupError):
        raise FileExistsError(
            f"{where} already exists. Pass overwrite=True to replace it, or choose another "
            f"dataset name."
        ) from None
    array.attrs.update(
        {
            "voxel_size": list(geometry.voxel_size),
            "offset": list(geometry.offset),
            "axis_names": geometry.axis_names,
            "units": geometry.units,
            **(attributes or {}),
        }
    )
    keep_consolidated(file_name)
    config = ZarrArrayConfig(
        name=name or f"{file_name.stem}_{dataset.replace('/', '_')}",
        file_name=file_name,
        dataset=dataset,
    )
    return array, config


def prepare_zarr_array(
    file_name: str | Path,
    dataset: str,
    shape: Sequence[int],
    dtype: Any,
    voxel_size: Sequence[int] | None = None,
    offset: Sequence[int] | None = None,
    axis_names: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
    chunks: Sequence[int] | None = None,
    zarr_format: int | None = None,
    overwrite: bool = False,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> ZarrArrayConfig:
    """Create an empty (zero-filled) zarr array with DaCapo's geometry attributes, to be
    filled block by block (open it with ``config.replace(mode='r+').array()``).

    Parameters
    ----------
    file_name, dataset
        The container (created if missing) and the array's path inside it.
    shape, dtype
        Full shape (channel axis first) and data type.
    voxel_size, offset, axis_names, units
        Geometry; defaults are voxel size 1, offset 0 and axes ``z, y, x`` (no channels).
    chunks
        Chunk shape (default: whole channel axis, 64 voxels per spatial axis in 3D, 512 in
        2D).
    zarr_format
        2 (readable by DaCapo 0.3 and zarr-python 2) or 3 (default: the format of an
        existing container, 2 for a new one).
    overwrite
        Replace an existing array; otherwise an existing one is an error.
    name
        Name of the returned config (default: container stem and dataset).
    attributes
        More attributes, written with the geometry when the array is made (before any
        data).

    Returns
    -------
    ZarrArrayConfig
        A config that opens the new array.
    """
    return _create(
        file_name, dataset, shape, dtype, voxel_size, offset, axis_names, units, chunks,
        zarr_format, overwrite, name, attributes,
    )[1]


def write_zarr_array(
    file_name: str | Path,
    dataset: str,
    data: Any,
    voxel_size: Sequence[int] | None = None,
    offset: Sequence[int] | None = None,
    axis_names: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
    chunks: Sequence[int] | None = None,
    zarr_format: int | None = None,
    overwrite: bool = True,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> ZarrArrayConfig:
    """Write ``data`` (numpy, dask, zarr: anything that slices like numpy) as a zarr array
    with DaCapo's attributes (``voxel_size``, ``offset``, ``axis_names``, ``units``), so
    that DaCapo and :class:`ZarrArray` read it back with its geometry.

    The data is copied one slab of chunks at a time, so a lazy source is never loaded
    whole. Parameters are those of :func:`prepare_zarr_array`, except that shape and dtype
    come from ``data`` and ``overwrite`` defaults to True.

    Returns
    -------
    ZarrArrayConfig
        A config that opens the written array.
    """
    if np.dtype(data.dtype).kind not in "biuf":
        raise TypeError(
            f"Cannot write data of dtype {data.dtype} to zarr array '{dataset}': use a "
            f"boolean, integer or float array."
        )
    array, config = _create(
        file_name, dataset, data.shape, data.dtype, voxel_size, offset, axis_names, units,
        chunks, zarr_format, overwrite, name, attributes,
    )
    axis = sum(is_channel_axis(a) for a in array.attrs["axis_names"])  # first spatial axis
    step = array.chunks[axis]
    for start in range(0, array.shape[axis], step):
        key = (slice(None),) * axis + (slice(start, start + step),)
        array[key] = np.asarray(data[key])
    return config
