"""The data of a run config as layers, so that a loaded run can be trained (and its labels
painted on) in a viewer that does not show its data yet."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_dacapo.experiments.datasplits.datasets.arrays.array import SourceArray

from .layer_arrays import napari_geometry
from .layers import is_output, layer_name

__all__ = ["add_run_data"]

#: Arrays up to this size are read into memory (labels must be in memory to be painted).
LOAD_BYTES = 512 * 2**20

#: (datasplit list, dataset field, panel role, layer kind)
ROLES = (
    ("train_configs", "raw_config", "raw", "image"),
    ("train_configs", "gt_config", "labels", "labels"),
    ("train_configs", "mask_config", "mask", "labels"),
    ("validate_configs", "raw_config", "validation_raw", "image"),
    ("validate_configs", "gt_config", "validation_labels", "labels"),
)


def add_run_data(viewer: Any, config: Any, factor: float = 1) -> dict[str, Any]:
    """Add the first training and validation dataset of ``config`` as layers named
    ``"<run> · stored <role>"``, placed in world units divided by ``factor`` (the run's
    world factor: where its outputs open); returns ``{panel role: layer}`` for the arrays
    that could be opened (arrays other than plain arrays are shown only when small enough
    to read).

    A layer of that name and kind that is already there is kept as it is (labels painted
    since must not be replaced by the stored ones). These layers are data, never output
    layers: nothing a run writes goes into them.
    """
    datasplit = config.datasplit_config
    layers = {}
    for listing, field, role, kind in ROLES:
        datasets = getattr(datasplit, listing, None) or []
        array_config = getattr(datasets[0], field, None) if datasets else None
        if array_config is None:
            continue
        array = array_config.array()
        data = array.source if isinstance(array, SourceArray) else None
        size = int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize
        if size <= LOAD_BYTES and (data is None or kind == "labels"):
            data = np.asarray(array.data)
        if data is None:
            continue
        name = layer_name(config.name, f"stored {role.replace('_', ' ')}")
        existing = next((layer for layer in viewer.layers if layer.name == name), None)
        if existing is not None and type(existing).__name__.lower() == kind and not is_output(
            existing
        ):
            layers[role] = existing
            continue
        geometry = napari_geometry(array.voxel_size, array.offset, factor)
        extra = (1.0,) * array.channel_dims
        add = viewer.add_labels if kind == "labels" else viewer.add_image
        layers[role] = add(
            data, name=name, scale=extra + geometry["scale"],
            translate=(0.0,) * len(extra) + geometry["translate"],
        )
    return layers
