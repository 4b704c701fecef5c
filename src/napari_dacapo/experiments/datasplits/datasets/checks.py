"""Checks that refuse unusable training and validation data before any work starts, each
with the problem and the fix in one message (instead of a shape error deep in training).

What is checked, for raw, gt and mask:

- geometry: the same spatial axes (a channel axis ``'c^'`` is not spatial), the same voxel
  size (labels are trained at the raw's resolution), offsets on each array's voxel grid,
  and a non-empty overlap in world coordinates (:func:`overlap_roi`, which the trainer
  samples from);
- content, inside the overlap: raw free of NaN and infinity; gt holding integer ids (a
  float gt with whole values is accepted, with a logged note); gt and mask not zero
  everywhere (for training; a validation crop without objects is allowed).

Content is read completely when the overlap holds at most :data:`SAMPLE_BYTES`; larger
arrays are checked on chunk-sized blocks spread evenly over the overlap, worth about that
much, and messages then say that a sample was checked. Raw values (NaN, infinity) and
float gt values are checked on all blocks of arrays held in memory (numpy, a napari layer's
data), as a pass over memory takes a fraction of a second per GiB; lazily read ones (zarr,
dask) are sampled, as reading a whole volume from disk or network could take minutes to
hours before training starts. What a sample misses stops training at its first NaN or
infinite loss (:class:`~napari_dacapo.experiments.trainers.TrainingDiverged`), before the
model is stored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from .arrays.array import Array, reads_in_process
from .arrays.label_ids_array import LabelIdsArray
from .dataset import Dataset

logger = logging.getLogger(__name__)

#: Most bytes read per array by the content checks.
SAMPLE_BYTES = 64 * 2**20


class DataError(ValueError):
    """Data that cannot be trained or validated on as it is; the message names the
    problem and the fix."""


def overlap_roi(dataset: Dataset) -> Roi:
    """The world ROI where raw, gt and mask (those present) all have voxels.

    Raises
    ------
    DataError
        If the arrays' geometries do not fit together or do not overlap.
    """
    arrays = _arrays(dataset)
    _check_geometry(dataset, arrays)
    roi = arrays[0][1].roi
    for _, array in arrays[1:]:
        roi = roi.intersect(array.roi)
    if roi.empty:
        rois = ", ".join(f"{role} {array.roi}" for role, array in arrays)
        raise DataError(
            f"Dataset '{dataset.name}': {' and '.join(r for r, _ in arrays)} do not overlap in "
            f"world coordinates ({rois}). Fix: the layers' scale and translate (or the "
            f"arrays' voxel_size and offset) must place the labels over the image; check "
            f"for a translate given in voxels instead of world units."
        )
    return roi


def check_training_dataset(dataset: Dataset, *, require_gt: bool = True) -> None:
    """Refuse a dataset that training cannot use (see the module docstring).

    Parameters
    ----------
    dataset
        The dataset to check.
    require_gt
        Whether ground truth must be present (tasks that learn from raw alone pass False).

    Raises
    ------
    DataError
        Naming the problem and the fix.
    """
    roi = _check(dataset, require_gt=require_gt, allow_empty=False)
    if dataset.sample_points:
        for point in dataset.sample_points:
            if len(point) != roi.dims or not roi.contains(Coordinate(point)):
                raise DataError(
                    f"Dataset '{dataset.name}': sample point {tuple(point)} is not inside the "
                    f"region where raw and labels overlap ({roi}). Fix: move it inside (world "
                    f"units, one value per spatial axis) or remove it from sample_points."
                )


def check_validation_dataset(dataset: Dataset) -> None:
    """Refuse a dataset that validation cannot use: the training checks, with ground truth
    required, but gt or mask that are zero everywhere are allowed (a crop without objects
    is a fair test for false positives); that is logged.

    Raises
    ------
    DataError
        Naming the problem and the fix.
    """
    _check(dataset, require_gt=True, allow_empty=True)


# -- the checks ---------------------------------------------------------------------------


class DataWarning(UserWarning):
    """The data of a run trains, but likely not as meant (see :func:`data_warnings`)."""


def data_warnings(config: Any) -> list[str]:
    """What in the data of run ``config`` trains, but likely not as meant (reads the data;
    the training panel shows it under its data, the CLI says it before training): the
    classes of a task with classes (one-hot classes, or the channels of a distance task
    with several) that no training label holds where the loss counts (inside the mask; the
    panel's mask leaves out validation regions). Such a class is never
    learned, its dice and IoU are NaN and its ``best:`` checkpoints are missing; a warning,
    not a refusal: the user may paint it later, or mean it. Labels larger than
    :data:`SAMPLE_BYTES` are read in a sample of blocks, and the message says so."""
    from napari_dacapo.experiments.tasks.predictors.distance_predictor import channel_labels

    task = config.task_config
    if isinstance(getattr(task, "classes", None), list):
        names, one_hot = list(task.classes), True
    elif len(getattr(task, "channels", None) or []) > 1:
        names, one_hot = list(task.channels), False
    else:
        return []
    datasplit = config.datasplit_config.datasplit_type(config.datasplit_config)
    found = np.zeros(len(names), dtype=bool)
    sampled = False
    for dataset in datasplit.train:
        gt, mask = dataset.gt, dataset.mask
        if gt is None:
            continue
        blocks, total = _sample_rois(gt, overlap_roi(dataset))
        sampled |= len(blocks) < total
        for roi in blocks:
            labels = np.asarray(gt[roi])
            known = None if mask is None else np.asarray(mask[roi]) != 0
            if one_hot:
                values = labels if known is None else labels[..., known]
                ids = np.unique(values)
                found[ids[(ids >= 0) & (ids < len(names))].astype(np.intp)] = True
            else:
                channels = channel_labels(labels, len(names), gt.dims) != 0
                if known is not None:
                    channels = channels & known
                found |= channels.reshape(len(names), -1).any(axis=1)
            if found.all():
                return []
    missing = [name for name, seen in zip(names, found) if not seen]
    one = len(missing) == 1
    kind = ("Class" if one else "Classes") if one_hot else ("Channel" if one else "Channels")
    it, its, has = ("it", "its", "has") if one else ("them", "their", "have")
    listed = ", ".join(f"'{name}'" for name in missing)
    where = " (in the sample of them read)" if sampled else ""
    return [
        f"{kind} {listed} {has} no labelled voxel in the training labels{where}: the network "
        f"cannot learn {it}, {its} dice and IoU will be NaN and {its} best checkpoints "
        f"missing. Paint some, or remove {it} from the task."
    ]


def _arrays(dataset: Dataset) -> list[tuple[str, Array]]:
    if getattr(dataset, "raw", None) is None:
        raise DataError(f"Dataset '{dataset.name}' has no raw data. Fix: give it a raw array.")
    roles = [("raw", dataset.raw), ("gt", dataset.gt), ("mask", dataset.mask)]
    return [(role, array) for role, array in roles if array is not None]


def _axes(array: Array) -> str:
    return ", ".join(array.axis_names[array.channel_dims :])


def _check_geometry(dataset: Dataset, arrays: list[tuple[str, Array]]) -> None:
    name, raw = dataset.name, arrays[0][1]
    for role, array in arrays[1:]:
        if array.dims != raw.dims:
            raise DataError(
                f"Dataset '{name}': raw has {raw.dims} spatial axes ({_axes(raw)}) but {role} "
                f"has {array.dims} ({_axes(array)}). Fix: make the {role} with the raw's "
                f"spatial shape (in napari, a Labels layer made for this image); if an axis "
                f"holds channels (e.g. RGB), name it 'c^' and put it first, since a channel "
                f"axis is not spatial."
            )
    for role, array in arrays:
        if not array.offset.is_multiple_of(array.voxel_size):
            nearest = Coordinate(
                round(o / v) * v for o, v in zip(array.offset, array.voxel_size)
            )
            raise DataError(
                f"Dataset '{name}': {role} offset {tuple(array.offset)} is not a multiple of "
                f"its voxel size {tuple(array.voxel_size)}, so its voxels are off the world "
                f"grid. Fix: set its translate (offset) to a multiple of its scale (voxel "
                f"size), e.g. {tuple(nearest)}."
            )
    for role, array in arrays[1:]:
        if array.voxel_size != raw.voxel_size:
            raise DataError(
                f"Dataset '{name}': {role} voxel size {tuple(array.voxel_size)} differs from "
                f"the raw voxel size {tuple(raw.voxel_size)}; labels are trained at the raw's "
                f"resolution, so both must be equal. Fix: resample the {role} to the raw's "
                f"voxel size, or, if only the recorded size is wrong, set the {role}'s scale "
                f"(voxel_size) to {tuple(raw.voxel_size)}."
            )


def _check(dataset: Dataset, *, require_gt: bool, allow_empty: bool) -> Roi:
    if require_gt and dataset.gt is None:
        raise DataError(
            f"Dataset '{dataset.name}' has no ground truth. Fix: give it labels (a gt array, "
            f"e.g. a napari Labels layer painted over the raw)."
        )
    roi = overlap_roi(dataset)
    _check_raw_values(dataset, roi)
    if dataset.gt is not None:
        _check_label_values(dataset, roi)
    for role, array in (("gt", dataset.gt), ("mask", dataset.mask)):
        if array is not None:
            _check_not_empty(dataset.name, role, array, roi, allow_empty)
    return roi


def _check_raw_values(dataset: Dataset, roi: Roi) -> None:
    raw = dataset.raw
    if raw.dtype.kind not in "fc":
        return  # integers and booleans cannot be NaN or infinite
    where, value, sampled = _find(raw, roi, lambda d: ~np.isfinite(d),
                                  complete=reads_in_process(raw))
    if where is not None:
        raise DataError(
            f"Dataset '{dataset.name}': raw holds the value {value} at world position "
            f"{tuple(where)}{sampled}; the network cannot learn from NaN or infinity. Fix: "
            f"replace such values (e.g. with numpy.nan_to_num) or crop the raw to valid data."
        )


def _check_label_values(dataset: Dataset, roi: Roi) -> None:
    gt = dataset.gt
    assert gt is not None
    if isinstance(gt, LabelIdsArray):
        gt = gt.source  # the float values stored, which the dataset reads as label ids
    if gt.dtype.kind in "biu":
        return
    if gt.dtype.kind != "f":
        raise DataError(
            f"Dataset '{dataset.name}': gt has dtype {gt.dtype}, which cannot hold label ids. "
            f"Fix: store the labels as integers (uint8 to uint64)."
        )
    where, value, sampled = _find(gt, roi, lambda d: d != np.round(d),
                                  complete=reads_in_process(gt))
    if where is not None:
        raise DataError(
            f"Dataset '{dataset.name}': gt holds the non-integer value {value} at world "
            f"position {tuple(where)}{sampled}; labels must be integer ids (0 = background). "
            f"Fix: if it is a probability or distance map, threshold it (e.g. gt > 0.5) and "
            f"store the labels as integers (uint8 to uint64)."
        )
    logger.info("Dataset '%s': gt is stored as %s but holds whole numbers%s; they are used as "
                "label ids.", dataset.name, gt.dtype, sampled)


def _check_not_empty(name: str, role: str, array: Array, roi: Roi, allow_empty: bool) -> None:
    where, _, sampled = _find(array, roi, lambda d: d != 0)
    if where is not None:
        return
    problem = (
        f"Dataset '{name}': {role} is 0 everywhere in the region it shares with the raw "
        f"({roi}){sampled}"
    )
    if allow_empty:
        logger.info("%s; allowed for validation.", problem)
    elif sampled:
        logger.warning("%s; training may see only background. Check the %s if that is "
                       "unexpected.", problem, role)
    elif role == "gt":
        raise DataError(
            f"{problem}, so there is nothing to learn. Fix: annotate at least one object or "
            f"class, or check that the labels lie over the raw (scale and translate)."
        )
    else:
        raise DataError(
            f"{problem}, so no voxel would count in the loss. Fix: set the mask to 1 where "
            f"the labels are valid, or remove the mask to use all of the labels."
        )


# -- bounded reading ----------------------------------------------------------------------


def _find(
    array: Array, roi: Roi, test: Callable[[np.ndarray], np.ndarray], complete: bool = False
) -> tuple[Coordinate | None, Any, str]:
    """The world position and value of the first voxel in ``roi`` where ``test`` holds
    (None if none), and ``' (in a sample of N of M blocks)'`` when not all was read;
    ``complete``: all of it is read, block by block."""
    rois, total = _sample_rois(array, roi, complete)
    sampled = "" if len(rois) == total else f" (in a sample of {len(rois)} of {total} blocks)"
    for block in rois:
        data = array[block]
        hits = np.asarray(test(data))
        if hits.any():
            index = tuple(np.argwhere(hits)[0])
            spatial = Coordinate(int(i) for i in index[array.channel_dims :])
            return block.begin + spatial * array.voxel_size, data[index].item(), sampled
    return None, None, sampled


def _sample_rois(array: Array, roi: Roi, complete: bool = False) -> tuple[list[Roi], int]:
    """World ROIs to read inside ``roi``: all of it if it fits in :data:`SAMPLE_BYTES`,
    else chunk-aligned blocks spread evenly over it, about that many bytes in all (all of
    them if ``complete``); and the number of blocks that cover ``roi``."""
    voxel_bytes = array.dtype.itemsize * (array.num_channels or 1)
    if math.prod(roi.shape / array.voxel_size) * voxel_bytes <= SAMPLE_BYTES:
        return [roi], 1
    block_voxels = _block_shape(array)
    block = block_voxels * array.voxel_size
    first = (roi.begin - array.offset) // block
    last = (roi.end - array.offset + block - Coordinate((1,) * roi.dims)) // block
    counts = tuple(int(n) for n in last - first)
    total = math.prod(counts)
    wanted = max(1, SAMPLE_BYTES // (math.prod(block_voxels) * voxel_bytes))
    if complete:
        wanted = total
    picks = np.unique(np.linspace(0, total - 1, min(wanted, total)).round().astype(int))
    rois = []
    for pick in picks:
        index = Coordinate(int(i) for i in np.unravel_index(pick, counts)) + first
        rois.append(Roi(array.offset + index * block, block).intersect(roi))
    return rois, total


def _block_shape(array: Array) -> Coordinate:
    """The chunk shape of the storage under ``array`` (voxels), or about a megavoxel."""
    node: Any = array
    while isinstance(node, Array):
        chunks = getattr(node, "chunk_shape", None)
        if chunks is not None:
            return Coordinate(chunks)
        node = getattr(node, "source", None)
    side = max(1, round(2 ** (20 / array.dims)))
    return Coordinate((side,) * array.dims)
