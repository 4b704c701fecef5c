"""The data of a run config as layers, so that a loaded run can be trained (and its labels
painted on) in a viewer that does not show its data yet.

The layers are made so that the training panel, given them, builds the stored datasplit
again (Continue needs an equal config): validation regions the panel cut from the training
labels come back as one Shapes layer of rectangles, not as a copy of the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from funlib.geometry import Roi

from napari_dacapo._reader import layer_units
from napari_dacapo.experiments import CropArrayConfig, IntensitiesArrayConfig
from napari_dacapo.experiments.datasplits.datasets.arrays.array import Array, SourceArray

from .layer_arrays import napari_geometry
from .layers import is_output, layer_name

__all__ = ["add_run_data"]

#: Arrays up to this size are read into memory (labels must be in memory to be painted).
LOAD_BYTES = 512 * 2**20

#: How a held-out region is drawn (its inside shows the labels under it).
REGION_STYLE = {"edge_color": "yellow", "face_color": "transparent", "edge_width": 1}


def add_run_data(
    viewer: Any, config: Any, factor: float = 1, units: Sequence[str] = ()
) -> dict[str, Any]:
    """Add the first training and validation dataset of ``config`` as layers named
    ``"<run> · stored <role>"``, placed in world units divided by ``factor`` (the run's
    world factor: where its outputs open) and in ``units`` (of the spatial axes: those of
    the layers the run was trained on, :func:`~napari_dacapo._reader.run_units`, as its
    outputs open); returns ``{panel role: layer}`` for the arrays that could be opened
    (arrays other than plain arrays are shown only when small enough to read).

    Validation datasets that are crops of the training labels (the panel's validation
    regions) become one Shapes layer of rectangles, ``"<run> · stored validation region"``,
    under the role ``validation_region``; the panel's mask made for them alone (1 but in
    the regions) is not shown, as the panel makes it again from the regions.

    A layer of that name and kind that is already there is kept as it is (labels painted
    since must not be replaced by the stored ones). These layers are data, never output
    layers: nothing a run writes goes into them.
    """
    datasplit = config.datasplit_config
    train = next(iter(getattr(datasplit, "train_configs", None) or []), None)
    validate = list(getattr(datasplit, "validate_configs", None) or [])
    crops = [dataset for dataset in validate if _is_region(dataset, train)]
    rectangles = _region_rectangles(crops) if crops else None
    if rectangles is None:
        crops = []
    other = next((dataset for dataset in validate if all(dataset is not c for c in crops)),
                 None)
    sources = (
        (train, "raw_config", "raw", "image"),
        (train, "gt_config", "labels", "labels"),
        (train, "mask_config", "mask", "labels"),
        (other, "raw_config", "validation_raw", "image"),
        (other, "gt_config", "validation_labels", "labels"),
    )
    layers = {}
    for dataset, field, role, kind in sources:
        array_config = getattr(dataset, field, None)
        while isinstance(array_config, IntensitiesArrayConfig):
            # The image as stored: the panel scales it again as the stored run did.
            array_config = array_config.source_array_config
        if array_config is None:
            continue
        name = layer_name(config.name, f"stored {role.replace('_', ' ')}")
        if (existing := _existing(viewer, name, kind)) is not None:
            layers[role] = existing
            continue
        array = array_config.array()
        data = array.source if isinstance(array, SourceArray) else None
        if _size(array) <= LOAD_BYTES and (data is None or kind == "labels"):
            data = np.asarray(array.data)
        if role == "mask" and isinstance(data, np.ndarray):
            if _only_holds_out(data, array, crops):
                continue
            data = _with_region_masks(data, array, crops)
        if data is None:
            continue
        geometry = napari_geometry(array.voxel_size, array.offset, factor)
        extra = (1.0,) * array.channel_dims
        add = viewer.add_labels if kind == "labels" else viewer.add_image
        scale = extra + geometry["scale"]
        layers[role] = add(
            data, name=name, scale=scale,
            translate=(0.0,) * len(extra) + geometry["translate"],
            units=layer_units(units, len(scale)),
        )
    if rectangles is not None:
        name = layer_name(config.name, "stored validation region")
        region = _existing(viewer, name, "shapes")
        if region is None:
            labels = crops[0].gt_config.source_array_config.array()
            axes = rectangles[0].shape[1]
            geometry = napari_geometry(labels.voxel_size[-axes:], labels.offset[-axes:], factor)
            region = viewer.add_shapes(rectangles, shape_type="rectangle", name=name,
                                       units=layer_units(units, axes), **geometry,
                                       **REGION_STYLE)
        layers["validation_region"] = region
    return layers


def _existing(viewer: Any, name: str, kind: str) -> Any | None:
    layer = next((layer for layer in viewer.layers if layer.name == name), None)
    if layer is None or type(layer).__name__.lower() != kind or is_output(layer):
        return None
    return layer


def _size(array: Array) -> int:
    return int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize


def _is_region(dataset: Any, train: Any) -> bool:
    """Whether ``dataset`` validates on a crop of ``train``'s labels, with its raw and,
    with a mask, the crop of the mask made for it (as the panel makes a validation
    region, see :func:`~.held_out.region_datasets`)."""
    gt = getattr(dataset, "gt_config", None)
    mask = getattr(dataset, "mask_config", None)
    return (
        train is not None
        and isinstance(gt, CropArrayConfig)
        and (mask is None or mask.name == f"{dataset.name}_mask")
        and _same(gt.source_array_config, train.gt_config)
        and _same(dataset.raw_config, train.raw_config)
    )


def _same(a: Any, b: Any) -> bool:
    # In-memory arrays compare by their geometry and name (their data is not compared).
    return a is b or (type(a) is type(b) and a == b)


def _region_rectangles(crops: list[Any]) -> list[np.ndarray] | None:
    """One axis-aligned rectangle per crop, in voxel coordinates of the training labels,
    that the panel reads back as the crop's voxels (:func:`.box_mask.shape_boxes`: voxels
    whose centres lie inside; the rectangle runs along voxel edges). 2D rectangles when
    every crop spans the whole labels on the leading axes of a 3D run (as a 2D Shapes layer
    over 3D labels makes them), else rectangles on one slice; None when a crop is neither.
    """
    labels = crops[0].gt_config.source_array_config.array()
    dims = len(labels.voxel_size)
    if dims < 2:
        return None
    full = labels.spatial_shape
    boxes = []
    for crop in crops:
        roi: Roi = crop.gt_config.roi
        begin = (roi.begin - labels.offset) / labels.voxel_size
        boxes.append((tuple(begin), tuple(roi.shape / labels.voxel_size)))
    leading = range(dims - 2)
    if all(begin[a] == 0 and shape[a] == full[a] for begin, shape in boxes for a in leading):
        return [_rectangle(begin[-2:], shape[-2:], ()) for begin, shape in boxes]
    rectangles = []
    for begin, shape in boxes:
        flat = [a for a in range(dims) if shape[a] == 1][: dims - 2]
        if len(flat) < dims - 2:
            return None
        rectangles.append(_rectangle(begin, shape, flat))
    return rectangles


def _rectangle(begin: tuple, shape: tuple, flat: Any) -> np.ndarray:
    """The corners of the rectangle around voxels ``begin`` to ``begin + shape`` (at their
    centre on the ``flat`` axes, where the rectangle lies on one slice)."""
    low = [b if a in flat else b - 0.5 for a, b in enumerate(begin)]
    high = [b if a in flat else b + n - 0.5 for a, (b, n) in enumerate(zip(begin, shape))]
    drawn = [a for a in range(len(begin)) if a not in flat]
    corners = []
    for pick in ((0, 0), (0, 1), (1, 1), (1, 0)):
        corner = list(low)
        for axis, upper in zip(drawn, pick):
            corner[axis] = high[axis] if upper else low[axis]
        corners.append(corner)
    return np.array(corners, dtype=float)


def _with_region_masks(data: np.ndarray, array: Array, crops: list[Any]) -> np.ndarray:
    """The mask as the user made it, from the stored training mask ``data`` (which leaves
    the validation regions out) and the regions' own masks: the panel makes both from it
    again (a mask layer without the regions gave them empty masks: nothing validated)."""
    masked = [crop for crop in crops if getattr(crop, "mask_config", None) is not None]
    if not masked or array.channel_dims:
        return data
    data = data.copy()
    for crop in masked:
        region = crop.mask_config.array()
        roi = region.roi.intersect(array.roi)
        if not roi.empty:
            data[array.to_slices(roi)] = np.asarray(region.data)[region.to_slices(roi)]
    return data


def _only_holds_out(data: np.ndarray, array: Array, crops: list[Any]) -> bool:
    """Whether the stored training mask ``data`` is what the panel makes for validation
    regions without a mask layer: 1 everywhere but in the regions. Never where a region
    carries a mask's crop: a mask was picked then (painted everywhere, it looks alike)."""
    if not crops or array.channel_dims or any(
        getattr(crop, "mask_config", None) is not None for crop in crops
    ):
        return False
    expected = np.ones(array.spatial_shape, dtype=bool)
    for crop in crops:
        roi = crop.gt_config.roi.intersect(array.roi)
        if not roi.empty:
            expected[array.to_slices(roi)] = False
    return bool(np.array_equal(data != 0, expected))
