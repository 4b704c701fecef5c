"""A given model run over an
:class:`~napari_dacapo.experiments.datasplits.datasets.arrays.array.Array` tile by tile
(:func:`predict_blocks`, :func:`predict_array`; validation and blockwise workers use them):
inputs read group by group, tiles passed to the model in runs and batches, and
:func:`assemble` to gather the tiles into one array."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from funlib.geometry import Coordinate, Roi

from napari_dacapo.experiments.datasplits.datasets.arrays.array import (
    Array,
    integer_scale,
    raw_as_float32,
    voxel_slices,
)
from napari_dacapo.experiments.device import tensor_memory_format
from napari_dacapo.experiments.model import Model

from .events import PredictEvent, PredictionStarted, TilePredicted
from .tiling import GROUP_READ_VOXELS, TileGeometry

__all__ = [
    "RUN_VOXELS",
    "BATCH_VOXELS",
    "inference_context",
    "read_input",
    "tile_dtype",
    "model_input",
    "batch_size",
    "predict_blocks",
    "assemble",
    "predict_array",
]


#: Tiles are cut from their group, predicted and handed out in runs of up to this many
#: input voxels: copying one tile into the model and its result out right after a forward
#: pass works on cold caches, and grad and autocast modes are entered once per run (the
#: 2D example spent 25 ms of 400 on these tile by tile, 5 ms in runs of 2**20 voxels).
#: A run stays small (2 MiB of bf16 input, tens of milliseconds of compute on a
#: CPU), so a cancelled prediction still stops at once.
RUN_VOXELS = 2**20

#: Small tiles are passed to the model several at a time, in batches of up to this many
#: input voxels: a small network's forward pass over a small tile costs mostly per-layer
#: overhead (the 2D example's 156² tiles: 1.7 ms each alone, 0.9 ms in batches of 10),
#: while batching large tiles only thrashes the caches (the 3D example's 92³ tiles in
#: pairs: 18% slower). bench/predict_throughput.py runs its pure forward in the same
#: batches.
BATCH_VOXELS = 2**18


def inference_context(device: torch.device, autocast_dtype: torch.dtype | None):
    if autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=autocast_dtype)


#: Integer dtypes that torch scales to exactly raw_as_float32's values (tested for every
#: value of the 8 and 16 bit types): on all cores, with no float32 copy made in numpy first
#: (scaling the 2D example's 1664² input to bf16: 1.4 -> 0.85 ms).
_SCALED_BY_TORCH = frozenset(map(np.dtype, ("uint8", "int8", "uint16", "int16", "int32")))


def read_input(raw: Array, roi: Roi, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``raw`` in the world ``roi`` (zero-padded outside ``raw``) as the network sees it
    (:func:`raw_as_float32`): a CPU tensor ``(channels, *spatial)``, float32 unless a
    :func:`tile_dtype` says otherwise."""
    data = raw.read(roi)
    if raw.channel_dims == 0:
        data = data[None]
    # Read-only data (a memory map, a view of a read-only array) is copied: torch wants
    # writable memory, though nothing here writes to it.
    if data.dtype in _SCALED_BY_TORCH:
        scaled = torch.from_numpy(np.require(data, requirements="W")).to(torch.float32)
        return scaled.div_(float(integer_scale(data.dtype))).to(dtype)
    return torch.from_numpy(np.require(raw_as_float32(data), requirements="W")).to(dtype)


def tile_dtype(device: torch.device, autocast_dtype: torch.dtype | None) -> torch.dtype:
    """The dtype to read input tiles in for the model on ``device``: under CPU autocast its
    dtype (the first convolution would cast the float32 tile to it anyway, with the same
    rounding; cast once for a group of tiles, the per-tile copy moves half the bytes:
    prediction of the 2D example spent 12 ms making tiles, 6.5 ms after), else float32."""
    if autocast_dtype is not None and device.type == "cpu":
        return autocast_dtype
    return torch.float32


def model_input(
    tiles: Sequence[torch.Tensor], device: torch.device, memory_format: torch.memory_format
) -> torch.Tensor:
    """The model's input ``(len(tiles), channels, *spatial)``, dense in ``memory_format`` on
    ``device``, from tiles ``(channels, *spatial)`` of :func:`read_input` (or views into
    one) of one shape."""
    return torch.stack(list(tiles)).contiguous(memory_format=memory_format).to(device)


def batch_size(input_voxels: int) -> int:
    """How many tiles of ``input_voxels`` input values each (voxels times channels)
    :func:`predict_blocks` passes to the model at once (see :data:`BATCH_VOXELS`)."""
    return max(1, BATCH_VOXELS // input_voxels)


def predict_blocks(
    model: Model,
    raw: Array,
    roi: Roi | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> Iterator[PredictEvent]:
    """Predict ``roi`` (world units; default: all of ``raw``) tile by tile, with the
    model's eval input shape, in eval mode (its eval activation applies).

    Yields :class:`PredictionStarted`, then a :class:`TilePredicted` per tile. The model
    must already be on ``device``; its training mode is restored when the generator ends
    or is closed.

    A caller gathering the whole prediction may answer :class:`PredictionStarted` with
    ``send(out)``, ``out`` a float32 array of its ``shape``: each tile is then written
    into ``out`` as it is converted from the model's output (its ``data`` is a view of
    ``out``), which saves a copy of every tile (see :func:`assemble`).
    """
    device = torch.device(device)
    geometry = TileGeometry.for_model(model, raw.voxel_size)
    roi = (roi or raw.roi).snap_to_grid(geometry.output_voxel_size, mode="grow")
    # Per channel: a group's read stays within GROUP_READ_VOXELS values.
    groups = geometry.tile_groups(roi, GROUP_READ_VOXELS // (raw.num_channels or 1))
    tile_shape = geometry.tile_shape
    out = yield PredictionStarted(
        roi, geometry.output_voxel_size, model.num_out_channels,
        sum(len(group.cuts) for group in groups), tile_shape,
    )
    memory_format = tensor_memory_format(raw.dims, channels_last)
    dtype = tile_dtype(device, autocast_dtype)
    input_voxels = int(np.prod(geometry.input_size / raw.voxel_size)) * (raw.num_channels or 1)
    batch = batch_size(input_voxels)
    per_run = max(1, RUN_VOXELS // (input_voxels * batch)) * batch
    was_training = model.training
    model.eval()
    index = 0
    try:
        for group in groups:
            # Read, padded and converted once for the group: a tile cut from it holds
            # exactly what read_input(raw, tile input ROI) would return. (Converting per
            # tile costs 4x its own time between forward passes, on a cold cache.)
            source = read_input(raw, group.roi, dtype)
            for first in range(0, len(group.cuts), per_run):
                cuts = group.cuts[first : first + per_run]
                views = [source[(slice(None), *cut)] for cut in cuts]
                inputs = [
                    model_input(views[i : i + batch], device, memory_format)
                    for i in range(0, len(views), batch)
                ]
                # Grad and autocast modes are entered per run, not around the loop: a
                # generator's caller runs between runs and must not inherit them.
                with torch.inference_mode(), inference_context(device, autocast_dtype):
                    outputs = [model(x) for x in inputs]
                del views, inputs
                predicted = (tile for y in outputs for tile in y)
                done = slice(first, first + per_run)
                for out_roi, target, tile in zip(
                    group.outputs[done], group.targets[done], predicted, strict=True
                ):
                    index += 1
                    shape = tuple(t.stop - t.start for t in target)
                    if shape != tile_shape:  # a last tile, overhanging the ROI
                        tile = tile[(slice(None), *(slice(0, n) for n in shape))]
                    if out is None:
                        data = tile.float().cpu().numpy()
                    else:  # converted straight into the caller's array
                        data = out[(slice(None), *target)]
                        torch.from_numpy(data).copy_(tile)
                    yield TilePredicted(index, out_roi, data)
    finally:
        model.train(was_training)


def assemble(events: Iterable[PredictEvent]) -> tuple[np.ndarray, Roi, Coordinate]:
    """Gather the tiles of a prediction into one array; returns it with its ROI and voxel
    size. The array is offered to a generator of events (see :func:`predict_blocks`), so
    that tiles are written into it where they are made, not copied here."""
    events = iter(events)
    start = next(events, None)
    if not isinstance(start, PredictionStarted):
        raise TypeError("No PredictionStarted event first: nothing was predicted.")
    out = np.zeros(start.shape, np.float32)
    if start.num_tiles and hasattr(events, "send"):
        events = itertools.chain([events.send(out)], events)
    for event in events:
        if not isinstance(event, TilePredicted):
            raise TypeError(f"Expected tiles after PredictionStarted, got {event!r}.")
        if not np.may_share_memory(event.data, out):  # not written into out already
            dst = voxel_slices(event.roi, start.roi.begin, start.voxel_size)
            out[(slice(None), *dst)] = event.data
    return out, start.roi, start.voxel_size


def predict_array(
    model: Model,
    raw: Array,
    roi: Roi | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> tuple[np.ndarray, Roi, Coordinate]:
    """Predict ``roi`` (world units; default: all of ``raw``) tile by tile.

    Returns the prediction ``(channels, *spatial)`` as float32, its ROI and voxel size.
    See :func:`predict_blocks`.
    """
    return assemble(predict_blocks(model, raw, roi, device, autocast_dtype, channels_last))
