"""Writer: Image and Labels layers to a zarr container, as training data on disk.

Each layer becomes the array ``<container>/<layer name>`` written by
:func:`write_zarr_array` with DaCapo's attributes (``voxel_size``, ``offset``,
``axis_names``, ``units``), so painted annotations can be named in a
``ZarrArrayConfig`` (by DaCapo too) and train like any other data. Layers saved together
share one integer world grid: fractional scales and translates (0.5 µm) are multiplied by
the power of ten that makes them whole (as the training panel does with layers); that
factor, the layer type and the napari units are kept under the ``napari_dacapo``
attribute, so the plugin's reader puts the layers back exactly where they were.

An image's first axis is written as channels (axis name ``'c^'``) where the training
panel reads it as channels (:func:`~napari_dacapo.gui.layer_arrays.leading_channels`: a
(2, Y, X) layer is two channels of a 2D image, a (20, Y, X) layer a volume), so the saved
array trains and predicts headless as the layer does in the panel; a notification says
which layers were written with channels. An RGB layer's colour axis is written first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from napari_dacapo._reader import NAPARI_ATTR, NO_UNIT


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
        For a layer that is neither an image nor labels, has more than three spatial
        dimensions, or whose scale / translate cannot share an integer grid with the others.
    """
    from napari_dacapo.gui.layer_arrays import world_factor

    for _, meta, kind in layer_data:
        if kind not in ("image", "labels"):
            raise ValueError(
                f"Layer '{meta.get('name')}' is a {kind} layer; napari-dacapo writes image and "
                f"labels layers only. Save it with another writer, or deselect it."
            )
    channels = [has_channel_axis(data, meta, kind) for data, meta, kind in layer_data]
    factor = world_factor([  # of the spatial axes: a channel axis is no place in the world
        float(v) for (_, meta, _), c in zip(layer_data, channels)
        for k in ("scale", "translate") for v in meta[k][int(c):]
    ])
    datasets: set[str] = set()
    for (data, meta, kind), c in zip(layer_data, channels):
        dataset = dataset_name(meta["name"], datasets)
        datasets.add(dataset)
        write_layer(path, dataset, data, meta, kind, factor, c)
    said = [channels_note(data, meta) for (data, meta, _), c in zip(layer_data, channels) if c]
    if said:
        from napari.utils.notifications import show_info

        show_info(" ".join(said))
    return [path]


def has_channel_axis(data: Any, meta: dict[str, Any], kind: str) -> bool:
    """Whether a layer (its data and napari state) is written with its first axis as
    channels: an image whose first axis the training panel reads as channels (see
    :func:`~napari_dacapo.gui.layer_arrays.leading_channels`); an RGB layer's colour axis
    is moved first instead."""
    from napari_dacapo.gui.layer_arrays import leading_channels

    if kind != "image" or meta.get("rgb"):
        return False
    level = data[0] if meta.get("multiscale") else data
    return leading_channels(np.shape(level), meta.get("scale"), meta.get("translate"),
                            (meta.get("metadata") or {}).get("axis_names"))


def channels_note(data: Any, meta: dict[str, Any]) -> str:
    """What the writer did with a layer written with a channel axis, and how to have its
    first axis read as z instead."""
    shape = tuple(np.shape(data[0] if meta.get("multiscale") else data))
    note = (f"Saved '{meta.get('name')}' {shape} as {shape[0]} channels (first axis, named "
            f"'c^') of a {len(shape) - 1}D image, as the training panel reads it.")
    if len(shape) == 3 and not (meta.get("metadata") or {}).get("axis_names"):
        note += (" If that axis is z, give it its z spacing as scale (or set the layer's "
                 "metadata['axis_names'] to ['z', 'y', 'x']) and save again, or set "
                 "axis_names=['z', 'y', 'x'] in the ZarrArrayConfig that reads it.")
    return note


def write_layer(
    container: str | Path, dataset: str, data: Any, meta: dict[str, Any], kind: str,
    factor: int = 1, channels: bool | None = None,
) -> None:
    """Write one layer's ``data`` with the geometry in ``meta`` (napari ``scale`` /
    ``translate`` times ``factor``): RGB colour moved first, and the first axis as
    channels where ``channels`` (default: :func:`has_channel_axis`)."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import default_axis_names
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    name = meta.get("name", dataset)
    if channels is None:
        channels = has_channel_axis(data, meta, kind)
    if meta.get("multiscale"):
        data = data[0]  # the finest level holds all the annotations
    if meta.get("rgb"):
        data = np.moveaxis(np.asarray(data), -1, 0)
    ndim = len(meta["scale"])  # without an RGB layer's colour axis
    stacked = int(channels)  # a channel axis first, not spatial
    spatial = slice(1, None) if stacked else slice(None)
    if not 2 <= ndim - stacked <= 3:
        raise ValueError(
            f"Layer '{name}' has {ndim} dimensions; napari-dacapo writes 2D and 3D layers "
            f"(and images with channels first: channels, (z,) y, x). Save a 2D or 3D part "
            f"of it."
        )
    units = [str(u) for u in meta.get("units") or ()] or [NO_UNIT] * ndim
    spatial_units = units[spatial]
    written = write_zarr_array(
        container,
        dataset,
        data,
        voxel_size=[round(float(s) * factor) for s in meta["scale"][spatial]],
        offset=[round(float(t) * factor) for t in meta["translate"][spatial]],
        axis_names=default_axis_names(ndim - stacked, channels=channels or bool(meta.get("rgb"))),
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
