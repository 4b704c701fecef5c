"""Where an image layer's data is stored: the zarr array on disk a layer shows, if any.

Blockwise prediction reads its input from disk (in worker processes), so it needs the
zarr array behind a layer, not the layer's data in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["zarr_location"]


def zarr_location(layer: Any) -> tuple[Path, str] | None:
    """``(container, dataset)`` of the zarr array an image layer shows, or None when its
    data is not (all of) a zarr array on a local disk.

    Layers opened by napari-dacapo's reader say where they came from; otherwise the
    layer's data is a zarr array, or a dask array made from one (e.g. by napari's zarr
    reader), possibly without a lone first (channel) axis.
    """
    from napari_dacapo.blockwise import split_zarr_path

    meta = layer.metadata or {}
    if meta.get("source") and "dataset" in meta:
        return Path(meta["source"]), str(meta["dataset"])
    data = layer.data[0] if layer.multiscale else layer.data
    array = _zarr_array_of(data)
    root = getattr(getattr(array, "store", None), "root", None)
    if array is None or root is None:
        return None
    shape = tuple(data.shape)
    if shape != tuple(array.shape) and (array.shape[0] != 1 or shape != array.shape[1:]):
        return None  # a part of the array, which the prediction would not match
    try:
        return split_zarr_path(Path(root) / array.path)
    except ValueError:  # stored without a .zarr container to name
        return None


def _zarr_array_of(data: Any) -> Any:
    """The zarr array ``data`` is, or that a dask array reads as it is (or indexed once,
    e.g. without its first axis), or None."""
    import zarr

    if isinstance(data, zarr.Array):
        return data
    # dask.array.from_array keeps the wrapped array in a graph layer named "original-...";
    # looking at the layers only never builds the (possibly huge) task graph.
    layers = getattr(getattr(data, "dask", None), "layers", {})
    found = [value for name, layer in layers.items() if name.startswith("original-")
             for value in layer.values() if isinstance(value, zarr.Array)]
    steps = [name for name in layers if not name.startswith("original-")][1:]
    if len(found) != 1 or len(steps) > 1 or any(not s.startswith("getitem-") for s in steps):
        return None  # several arrays, or values computed from the array
    return found[0]
