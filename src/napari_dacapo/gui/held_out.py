"""Validation regions of the training labels (the training panel's *validation region*:
rectangles of a Shapes layer held out for validation): their datasets, the training mask
that leaves them out, and notes on what they would score that is likely not meant.

A region is scored where the labels are complete: with a mask (a Labels layer, or the
voxels a Shapes mask covers), its dataset carries the mask's crop, placed as its labels
are; without one, every voxel of it counts, and unpainted voxels as background.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from napari_dacapo.experiments import CropArrayConfig, NumpyArrayConfig, RawGTDatasetConfig
from napari_dacapo.experiments.datasplits.datasets.arrays.array import default_axis_names

from .box_mask import Box, BoxMask, ShapeRegion

__all__ = ["box_roi", "region_datasets", "region_notes", "training_mask"]

#: Most bytes of labels under a region that :func:`region_notes` reads (GUI thread).
NOTE_BYTES = 64 * 2**20

#: Reads a layer's voxels under a region once: ``read(layer, key, compute)``.
Read = Callable[[Any, Hashable, Callable[[], Any]], Any]


def region_datasets(
    raw_cfg: Any, gt_cfg: NumpyArrayConfig, held_out: list[Box],
    grid: NumpyArrayConfig | None, annotated: list[ShapeRegion] | None, dims: int,
) -> list[RawGTDatasetConfig]:
    """One dataset per held-out voxel box of the labels: the training raw, the labels'
    crop and, with a mask (the Labels mask ``grid``, or the voxels a Shapes mask covers,
    ``annotated``), the mask's crop as the user made it."""
    return [
        RawGTDatasetConfig(
            name=f"validate_region_{number}",
            raw_config=raw_cfg,
            gt_config=CropArrayConfig(
                name=f"validate_region_{number}_labels", source_array_config=gt_cfg,
                roi=box_roi(box, gt_cfg),
            ),
            mask_config=_region_mask(number, box, gt_cfg, grid, annotated, dims),
        )
        for number, box in enumerate(held_out, start=1)
    ]


def training_mask(
    grid: NumpyArrayConfig | None, annotated: list[ShapeRegion] | None,
    held_out: list[Box], grid_boxes: list[Box], gt_cfg: NumpyArrayConfig, dims: int,
) -> NumpyArrayConfig | None:
    """The training mask: the Labels mask (``grid``; ``grid_boxes`` are the regions on
    its voxels) or the voxels of the labels a Shapes mask covers (``annotated``), without
    the held-out regions; None without a mask or regions."""
    if grid is None and annotated is None and not held_out:
        return None
    if grid is not None:
        if not held_out:
            return grid
        data = BoxMask(grid.data.shape, base=grid.data, exclude=grid_boxes)
    else:
        grid, data = gt_cfg, BoxMask(gt_cfg.data.shape[-dims:], annotated, exclude=held_out)
    return NumpyArrayConfig(
        name="train_mask", data=data, voxel_size=grid.voxel_size, offset=grid.offset,
        axis_names=default_axis_names(dims, channels=False),
    )


def _region_mask(
    number: int, box: Box, gt_cfg: NumpyArrayConfig, grid: NumpyArrayConfig | None,
    annotated: list[ShapeRegion] | None, dims: int,
) -> NumpyArrayConfig | None:
    """The mask of validation region ``number`` (the voxel ``box`` of the labels), on the
    labels' voxels there; None without a mask."""
    if grid is None and annotated is None:
        return None
    roi = box_roi(box, gt_cfg)
    shape = tuple(s.stop - s.start for s in box)
    if grid is not None:  # the mask layer may start elsewhere than the labels
        origin = (roi.offset - Coordinate(grid.offset)) / Coordinate(grid.voxel_size)
        data = BoxMask(shape, base=grid.data, origin=origin)
    else:
        data = BoxMask(shape, annotated, origin=[s.start for s in box])
    return NumpyArrayConfig(
        name=f"validate_region_{number}_mask", data=data, voxel_size=gt_cfg.voxel_size,
        offset=roi.offset, axis_names=default_axis_names(dims, channels=False),
    )


def region_notes(
    region: Any, held_out: list[Box], validate: list[RawGTDatasetConfig], labels: Any,
    mask: Any, dims: int, read: Read,
) -> tuple[str, ...]:
    """What the validation regions of the Shapes layer ``region`` score that is likely
    not meant (training goes on): without a mask, a region with slices (2D: all of it)
    holding no label, scored as background; with one, a region the mask leaves out
    wholly (nothing scored). Only layers held in memory are read, through ``read``."""
    notes = []
    fix = "Pick a mask marking where the labels are complete, or draw the region"
    for number, (box, dataset) in enumerate(zip(held_out, validate), start=1):
        where = f"Validation region {number} of '{region.name}'"
        key = tuple((s.start, s.stop) for s in box)  # slices are not hashable
        if dataset.mask_config is None:
            # Read on the GUI thread, again after each paint stroke: in memory and small
            # only (a note is not worth a stalled brush).
            if not isinstance(labels.data, np.ndarray) or labels.data[box].nbytes > NOTE_BYTES:
                continue
            empty = read(labels, key, lambda box=box: _empty_slices(labels.data[box], dims))
            if empty and dims == 2:
                notes.append(f"{where} holds no labels: without a mask all of it is scored "
                             f"as background. {fix} over labelled pixels.")
            elif empty:
                slices = _ranges([box[0].start + z for z in empty])
                notes.append(
                    f"{where} has no labels on {len(empty)} of its {box[0].stop - box[0].start} "
                    f"slices (slices {slices} of '{labels.name}'): without a mask they are "
                    f"scored as background. {fix} on labelled slices only.")
        elif (data := dataset.mask_config.data).base is None or isinstance(data.base,
                                                                           np.ndarray):
            if not read(mask, (key, data.origin), lambda data=data: bool(np.any(data[()]))):
                notes.append(
                    f"{where} lies outside mask '{mask.name}' (no pixel of it is marked "
                    f"complete), so it cannot be scored. Draw the region where the mask is "
                    f"set, or extend the mask over it.")
    return tuple(notes)


def box_roi(box: Box, array: NumpyArrayConfig) -> Roi:
    """A voxel box of ``array`` as a world ROI."""
    begin = Coordinate(s.start for s in box)
    shape = Coordinate(s.stop - s.start for s in box)
    voxel_size = array.voxel_size or Coordinate((1,) * len(box))
    offset = array.offset or Coordinate((0,) * len(box))
    return Roi(offset + begin * voxel_size, shape * voxel_size)


def _empty_slices(labels: np.ndarray, dims: int) -> list[int]:
    """The slices of ``labels`` (along its first axis; in 2D the one plane, slice 0)
    without any label."""
    if dims == 2:
        return [] if labels.any() else [0]
    labelled = labels.any(axis=tuple(range(1, labels.ndim)))  # no copy of a cropped view
    return [int(z) for z in np.flatnonzero(~labelled)]


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``"0–2, 5"``."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs)
