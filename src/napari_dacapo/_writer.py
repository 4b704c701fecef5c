"""Writer: Image and Labels layers to a zarr container, as training data on disk.

Each layer becomes the array ``<container>/<layer name>`` written by
:func:`write_zarr_array` with DaCapo's attributes (``voxel_size``, ``offset``,
``axis_names``, ``units``), so painted annotations can be named in a
``ZarrArrayConfig`` (by DaCapo too) and train like any other data. Layers saved together
share one integer world grid: fractional scales and translates (0.5 µm) are multiplied by
the power of ten that makes them whole (as the training panel does with layers); that
factor, the layer type and the napari units are kept under the ``napari_dacapo``
attribute, so the plugin's reader puts the layers back exactly where they were.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from napari_dacapo._reader import NAPARI_ATTR

#: Units napari uses for layers without physical units; stored as unknown ('').
NO_UNIT = "pixel"


def write_layers(path: str, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """Write Image and Labels layers (npe2 multi-layer writer) to the zarr container
    ``path`` (created if missing; arrays of the same names are replaced).

    Returns
    -------
    list[str]
        ``[path]``, the container written.

    Raises
    ------
    ValueError
        For a layer that is neither an image nor labels, has more than four dimensions, or
        whose scale / translate cannot share an integer grid with the others.
    """
    from napari_dacapo.gui.layer_arrays import world_factor

    for _, meta, kind in layer_data:
        if kind not in ("image", "labels"):
            raise ValueError(
                f"Layer '{meta.get('name')}' is a {kind} layer; napari-dacapo writes image and "
                f"labels layers only. Save it with another writer, or deselect it."
            )
    factor = world_factor(
        [float(v) for _, meta, _ in layer_data for k in ("scale", "translate") for v in meta[k]]
    )
    datasets: set[str] = set()
    for data, meta, kind in layer_data:
        dataset = dataset_name(meta["name"], datasets)
        datasets.add(dataset)
        write_layer(path, dataset, data, meta, kind, factor)
    return [path]


def write_layer(
    container: str | Path, dataset: str, data: Any, meta: dict[str, Any], kind: str,
    factor: int = 1,
) -> None:
    """Write one layer's ``data`` (channels first for RGB and 4D images) with the
    geometry in ``meta`` (napari ``scale``/``translate`` times ``factor``)."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import default_axis_names
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    name = meta.get("name", dataset)
    if meta.get("multiscale"):
        data = data[0]  # the finest level holds all the annotations
    if meta.get("rgb"):
        data = np.moveaxis(np.asarray(data), -1, 0)
    ndim = len(meta["scale"])  # without an RGB layer's colour axis
    stacked = ndim == 4 and kind == "image"  # channels, z, y, x
    spatial = slice(1, None) if stacked else slice(None)
    if not 2 <= ndim - stacked <= 3:
        raise ValueError(
            f"Layer '{name}' has {ndim} dimensions; napari-dacapo writes 2D and 3D layers "
            f"(and 4D images as channels, z, y, x). Save a 2D or 3D part of it."
        )
    units = [str(u) for u in meta.get("units") or ()] or [NO_UNIT] * ndim
    spatial_units = units[spatial]
    written = write_zarr_array(
        container,
        dataset,
        data,
        voxel_size=[round(float(s) * factor) for s in meta["scale"][spatial]],
        offset=[round(float(t) * factor) for t in meta["translate"][spatial]],
        axis_names=default_axis_names(ndim - stacked, channels=stacked or bool(meta.get("rgb"))),
        units=["" if factor != 1 or u == NO_UNIT else u for u in spatial_units],
        name=name,
    )
    array = written.replace(mode="r+").array()
    array.source.attrs[NAPARI_ATTR] = {
        "layer_type": kind, "name": name, "world_factor": factor, "units": units,
        "rgb": bool(meta.get("rgb")),
    }


def dataset_name(layer_name: str, taken: set[str]) -> str:
    """A zarr-safe array name for a layer, distinct from those ``taken``."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", layer_name).strip("._") or "layer"
    name, suffix = base, 1
    while name in taken:
        name, suffix = f"{base}_{suffix}", suffix + 1
    return name
