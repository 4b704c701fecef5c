"""Prediction: run a model over an array tile by tile, with the network's context.

Each output tile is predicted from an input tile grown by the network's context on every
side, so tiles stitch exactly (a valid-padding network sees no tile border). Voxels outside
the raw data are zero-padded, so the prediction covers the whole input, however small.
Neighbouring tiles are read from the input together (see :data:`GROUP_READ_VOXELS`).

Two levels:

- :func:`predict_blocks` / :func:`predict_array` run a given model over an
  :class:`~napari_dacapo.experiments.datasplits.datasets.arrays.array.Array` (validation
  uses them);
- :func:`predict_tiles`, :func:`predict` and :func:`apply` take a run (or its name), a
  stored checkpoint and a plain numpy, dask or zarr array: what users call.

The generators yield :class:`PredictionStarted` then one :class:`TilePredicted` per tile,
so a viewer can fill a layer tile by tile and cancel by no longer asking for tiles.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from funlib.geometry import Coordinate, Roi

from napari_dacapo.experiments.datasplits.datasets.arrays.array import (
    Array,
    default_axis_names,
    integer_scale,
    raw_as_float32,
    voxel_slices,
)
from napari_dacapo.experiments.device import tensor_memory_format
from napari_dacapo.experiments.model import Model

if TYPE_CHECKING:
    from napari_dacapo.checkpoints import Checkpoint
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        IntensityRange,
    )
    from napari_dacapo.experiments.device import PrecisionPlan
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.run_config import RunConfig
    from napari_dacapo.store.file_store import FileStore

__all__ = [
    "TileGeometry",
    "TileGroup",
    "PredictionStarted",
    "TilePredicted",
    "PredictEvent",
    "predict_blocks",
    "predict_array",
    "assemble",
    "prediction_input",
    "training_raw",
    "training_intensity_range",
    "OWN_RANGE",
    "image_intensity_range",
    "rescale_bounds",
    "predict_tiles",
    "predict",
    "apply",
    "post_processing",
    "NON_FINITE_PREDICTION",
    "NonFiniteWarning",
    "non_finite",
    "warn_if_non_finite",
    "VoxelSizeWarning",
    "training_voxel_sizes",
    "voxel_size_mismatch",
    "voxel_size_text",
    "unchecked_voxel_size",
]


#: Neighbouring tiles are read from the input in groups of at most about this many input
#: voxels (held as float32: 64 MiB), one read per group: their inputs overlap by the
#: network's context (in the 3D example every input voxel lies in 27 tiles), and a chunked
#: zarr or dask source would otherwise decompress each chunk once for every tile that
#: touches it (reading the 125 tiles of a 100³ zarr tile by tile took 150 ms of CPU, in 8
#: groups 16 ms, in one 2 ms; bench/predict_throughput.py).
GROUP_READ_VOXELS = 2**24

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


@dataclass(frozen=True)
class TileGeometry:
    """World-unit geometry of prediction tiles for one model and input voxel size."""

    input_voxel_size: Coordinate
    output_voxel_size: Coordinate
    input_size: Coordinate  # world units
    output_size: Coordinate
    context: Coordinate  # world units on each side

    @classmethod
    def for_model(cls, model: Model, input_voxel_size: Coordinate, eval_mode: bool = True):
        input_shape = model.eval_input_shape if eval_mode else model.input_shape
        _, output_shape = model.compute_output_shape(Coordinate(input_shape))
        output_voxel_size = model.scale(Coordinate(input_voxel_size))
        input_size = Coordinate(input_shape) * input_voxel_size
        output_size = output_shape * output_voxel_size
        diff = input_size - output_size
        if any(d % 2 for d in diff) or not (diff / 2).is_multiple_of(input_voxel_size):
            raise ValueError(
                f"The network's context {tuple(diff)} (input {tuple(input_size)} minus output "
                f"{tuple(output_size)}, world units) is not an even number of input voxels; "
                f"choose an input_shape whose output is centred on the input."
            )
        return cls(input_voxel_size, output_voxel_size, input_size, output_size, diff / 2)

    @property
    def tile_shape(self) -> tuple[int, ...]:
        """A whole tile's output, in output voxels."""
        return tuple(int(s) for s in self.output_size / self.output_voxel_size)

    def tile_counts(self, roi: Roi) -> list[int]:
        """How many tiles cover ``roi`` along each axis (the last ones may overhang it)."""
        return [-(-int(e - b) // int(s))
                for b, e, s in zip(roi.begin, roi.end, self.output_size)]

    def group_size(self, roi: Roi, max_voxels: int = GROUP_READ_VOXELS) -> int:
        """The largest ``g`` such that the input of ``g`` neighbouring tiles along every axis
        of ``roi`` (fewer along axes that have fewer) holds at most ``max_voxels`` input
        voxels; 1 at least."""
        counts = self.tile_counts(roi)
        size, context = [int(s) for s in self.output_size], [int(c) for c in self.context]

        def group_voxels(g: int) -> int:
            extent = [min(g, n) * s + 2 * c for n, s, c in zip(counts, size, context)]
            return int(np.prod([e // int(v) for e, v in zip(extent, self.input_voxel_size)]))

        g = 1
        while g < max(counts) and group_voxels(g + 1) <= max_voxels:
            g += 1
        return g

    def tile_groups(self, roi: Roi, max_voxels: int = GROUP_READ_VOXELS) -> list[TileGroup]:
        """The tiles covering ``roi``, in groups of neighbours whose inputs are read at
        once (see :class:`TileGroup`). Output ROIs are cut to ``roi`` (the last tiles along
        an axis may overhang it: their input is whole).

        A group spans up to :meth:`group_size` tiles along every axis, so memory stays
        bounded however large ``roi`` is.
        """
        # Plain integers: funlib's Roi arithmetic would cost more per tile than the rest
        # of a small 2D network's per-tile work.
        begin, end = [int(b) for b in roi.begin], [int(e) for e in roi.end]
        size, context = [int(s) for s in self.output_size], [int(c) for c in self.context]
        voxel = [int(v) for v in self.input_voxel_size]
        out_voxel = [int(v) for v in self.output_voxel_size]
        counts = self.tile_counts(roi)
        g = self.group_size(roi, max_voxels)
        shape = [min(g, n) for n in counts]
        length = [(s + 2 * c) // v for s, c, v in zip(size, context, voxel)]
        groups = []
        for start in itertools.product(*(range(0, n, k) for n, k in zip(counts, shape))):
            stop = [min(a + k, n) for a, k, n in zip(start, shape, counts)]
            group_roi = Roi(
                [b + i * s - c for b, i, s, c in zip(begin, start, size, context)],
                [(j - i) * s + 2 * c for i, j, s, c in zip(start, stop, size, context)],
            )
            cuts, outputs, targets = [], [], []
            for index in itertools.product(*(range(a, b) for a, b in zip(start, stop))):
                first = [(i - a) * s // v for i, a, s, v in zip(index, start, size, voxel)]
                cuts.append(tuple(slice(f, f + n) for f, n in zip(first, length)))
                out_begin = [b + i * s for b, i, s in zip(begin, index, size)]
                out_shape = [min(s, e - o) for s, e, o in zip(size, end, out_begin)]
                outputs.append(Roi(out_begin, out_shape))
                targets.append(tuple(
                    slice((o - b) // v, (o - b + n) // v)
                    for o, b, n, v in zip(out_begin, begin, out_shape, out_voxel)
                ))
            groups.append(TileGroup(group_roi, cuts, outputs, targets))
        return groups

    def tiles(self, roi: Roi) -> list[tuple[Roi, Roi]]:
        """(input ROI, output ROI) pairs covering ``roi``, in the order prediction visits
        them (group by group; see :meth:`tile_groups`)."""
        pairs = []
        for group in self.tile_groups(roi):
            for cut, output in zip(group.cuts, group.outputs, strict=True):
                first = [c.start * v for c, v in zip(cut, self.input_voxel_size)]
                pairs.append((Roi(group.roi.begin + Coordinate(first), self.input_size), output))
        return pairs


@dataclass(frozen=True, slots=True)
class TileGroup:
    """Neighbouring prediction tiles whose inputs are read at once.

    Attributes
    ----------
    roi
        World ROI of the group's input (the tiles' inputs together).
    cuts
        Each tile's input, as voxel slices of the group's input.
    outputs
        Each tile's output ROI (world units), in the same order.
    targets
        The same as voxel slices of the whole prediction (output voxels from the ROI's
        begin).
    """

    roi: Roi
    cuts: list[tuple[slice, ...]]
    outputs: list[Roi]
    targets: list[tuple[slice, ...]]


@dataclass(frozen=True, slots=True)
class PredictionStarted:
    """A prediction begins: where it lies and how many tiles will fill it.

    Attributes
    ----------
    roi
        World ROI of the whole prediction (the input's ROI, on the output voxel grid).
    voxel_size
        Output voxel size (finer than the input's for upsampling networks).
    num_channels
        Output channels.
    num_tiles
        How many :class:`TilePredicted` events follow.
    tile_shape
        Spatial shape of a whole tile in output voxels (tiles start at the ROI's begin;
        the last ones are cut at its end).
    iteration
        The checkpoint's iteration, or None for a model passed as it is.
    """

    roi: Roi
    voxel_size: Coordinate
    num_channels: int
    num_tiles: int
    tile_shape: tuple[int, ...]
    iteration: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the whole prediction, ``(channels, *spatial)``."""
        return (self.num_channels, *(int(s) for s in self.roi.shape / self.voxel_size))


@dataclass(frozen=True, slots=True)
class TilePredicted:
    """One tile of the prediction.

    Attributes
    ----------
    index
        Tiles done so far, 1 to ``num_tiles``.
    roi
        World ROI of ``data``, inside the prediction's ROI.
    data
        The prediction there, ``(channels, *spatial)`` float32.
    """

    index: int
    roi: Roi
    data: np.ndarray


PredictEvent = PredictionStarted | TilePredicted


#: What to say when a prediction holds NaN or infinite values (the network passes them on
#: from the input: training refuses such input, prediction reads what it is given).
NON_FINITE_PREDICTION = (
    "The prediction holds NaN or infinite values: the input holds such values (e.g. NaN "
    "for missing data) and the network passes them on around them. Replace them before "
    "predicting, e.g. with numpy.nan_to_num(image)."
)


class NonFiniteWarning(UserWarning):
    """A prediction holds NaN or infinite values (see :data:`NON_FINITE_PREDICTION`)."""


def non_finite(prediction: np.ndarray) -> bool:
    """Whether ``prediction`` holds a NaN or infinite value (a sum first: one fast pass over
    an array that has none, which is the usual case)."""
    total = np.sum(prediction, dtype=np.float64)
    return not np.isfinite(total) and not bool(np.isfinite(prediction).all())


def warn_if_non_finite(prediction: np.ndarray, stacklevel: int = 2) -> None:
    """Warn (:class:`NonFiniteWarning`) if ``prediction`` holds NaN or infinite values."""
    if non_finite(prediction):
        warnings.warn(NON_FINITE_PREDICTION, NonFiniteWarning, stacklevel=stacklevel + 1)


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


# -- prediction with a stored run ------------------------------------------------------------


_PASS_EXPLICITLY = "Pass voxel_size= and rescale= explicitly."


def training_raw_configs(run: Run | RunConfig) -> list[Any]:
    """The raw array config of each training dataset in the run's config (a run or its
    config): the datasets a TrainValidateDataSplitConfig lists, or the one of a
    DummyDataSplitConfig."""
    split = getattr(run, "config", run).datasplit_config
    datasets = getattr(split, "train_configs", None) or [getattr(split, "train_config", None)]
    return [c for c in (getattr(d, "raw_config", None) for d in datasets) if c is not None]


def training_intensity_range(run: Run) -> tuple[float, float] | None:
    """The ``(min, max)`` of the IntensitiesArrayConfig that rescaled the run's training
    raw data, or None when the raw data was used as stored.

    Read from the run's config alone (through each training raw config's
    ``source_array_config`` chain), so predicting never needs the training data itself:
    a cluster node may not see it.

    Raises
    ------
    ValueError
        If the training datasets rescale differently (there is no one rule to repeat).
    """
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_array_config import (
        IntensitiesArrayConfig,
    )

    ranges = set()
    for config in training_raw_configs(run):
        found = None
        while config is not None:  # through derived and cropped arrays to the source
            if isinstance(config, IntensitiesArrayConfig):
                found = (float(config.min), float(config.max))
                break
            config = getattr(config, "source_array_config", None)
        ranges.add(found)
    if len(ranges) > 1:
        raise ValueError(
            f"The training datasets of run '{run.name}' rescale their raw intensities "
            f"differently ({sorted(ranges, key=str)}). Pass rescale=(min, max) for your data, "
            f"or rescale=False for data already scaled as the network expects."
        )
    return ranges.pop() if ranges else None


#: The ``rescale`` that scales an input from its own intensities (see
#: :func:`image_intensity_range`).
OWN_RANGE = "image"


def image_intensity_range(run: Run | str, raw: Any) -> IntensityRange:
    """The intensities of ``raw`` (a numpy, dask or zarr array, or an ArrayConfig) that
    become 0 and 1 when it is predicted with its own range instead of the training data's:
    its 1st-99.8th percentiles over the whole array (every block or region of it is then
    scaled alike), from a bounded sample (:func:`.intensity_range.intensity_range`).

    For an image brighter or dimmer than the data the run learned from; the run must have
    been trained with a range, since one trained on intensities as stored saw its data's
    own scale (integers divided by the dtype's maximum) and expects the same.

    Raises
    ------
    ValueError
        If the run was trained on intensities as stored, or ``raw`` holds no range (a
        constant image, or no finite value).
    """
    from napari_dacapo.checkpoints import load_run
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import SourceArray
    from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import ArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        intensity_range,
    )

    run = load_run(run)[0]  # or a stored run's name, as predict takes
    if training_intensity_range(run) is None:
        raise ValueError(
            f"Run '{run.name}' was trained on intensities as stored (integers divided by "
            f"their dtype's maximum), not on a range of them, so there is no range to "
            f"replace with the image's own: predict with the training scaling (rescale=True,"
            f" --intensities training), or give the range (rescale=(low, high), "
            f"--intensities LOW,HIGH)."
        )
    if isinstance(raw, ArrayConfig):
        array = raw.array()
        raw = array.source if isinstance(array, SourceArray) else array.data
    return intensity_range(raw)


def training_raw(run: Run, what: str, fix: str = _PASS_EXPLICITLY) -> Array:
    """The raw array of the run's first training dataset, opened to read ``what`` (e.g.
    its voxel size); a ValueError ending in ``fix`` if it cannot be opened or there is
    none. Where the datasplit config names it, only that array is opened (not the whole
    datasplit: labels and validation data, milliseconds per zarr array)."""
    try:
        if configs := training_raw_configs(run):
            return configs[0].array()
        datasets = list(run.datasplit.train)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"The training data of run '{run.name}' cannot be opened to read {what} ({e}). "
            f"{fix}"
        ) from e
    if not datasets:
        raise ValueError(f"Run '{run.name}' has no training dataset to read {what} from. {fix}")
    return datasets[0].raw


class VoxelSizeWarning(UserWarning):
    """The input of a prediction has a voxel size that the run's training data has not
    (see :func:`voxel_size_mismatch`)."""


#: What to do about an input whose voxel size is not the training data's.
VOXEL_SIZE_FIX = (
    "Resample the image to that voxel size; or, if the image's voxel size is recorded "
    "wrongly, give the right one (voxel_size= for an array; for a zarr array the "
    "voxel_size of its ZarrArrayConfig, or of its attributes)."
)

#: False where prediction_input leaves the voxel size unchecked (unchecked_voxel_size).
_CHECK_VOXEL_SIZE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "napari_dacapo_check_voxel_size", default=True
)


def training_voxel_sizes(run: Run | RunConfig) -> list[Coordinate]:
    """The distinct voxel sizes of the raw data that the run (or run config) trains on, in
    dataset order; ``[]`` when that data cannot be opened (a cluster node may not see it).

    Only the raw arrays the datasplit config names are opened (a run made in napari keeps
    them in ``data/*.zarr`` in its folder), or, for a datasplit that names none, its
    training datasets.
    """
    config = getattr(run, "config", run)
    try:
        if configs := training_raw_configs(config):
            arrays = [c.array() for c in configs]
        else:
            split = config.datasplit_config
            arrays = [d.raw for d in split.datasplit_type(split).train]
    except (OSError, ValueError):
        return []
    return list(dict.fromkeys(Coordinate(a.voxel_size) for a in arrays))


def voxel_size_mismatch(
    voxel_size: Sequence[float],
    training: Sequence[Sequence[float]],
    run_name: str,
    *,
    what: str = "The input's voxel size",
    fix: str = VOXEL_SIZE_FIX,
) -> str:
    """Why a prediction of an input of ``voxel_size`` may be meaningless: the voxel sizes
    of run ``run_name``'s training data, ``training``, do not include it ('' when they do,
    or are unknown). Sizes are equal to a relative 1e-6 (napari's scales are floats)."""
    if not training or any(
        len(size) == len(voxel_size) and np.allclose(voxel_size, size, rtol=1e-6, atol=0)
        for size in training
    ):
        return ""
    which = "the voxel size" if len(training) == 1 else "each voxel size"
    return (
        f"{what} {voxel_size_text(voxel_size)} differs from {which} of the data run "
        f"'{run_name}' was trained on, {', '.join(map(voxel_size_text, training))}: the "
        f"network sees "
        f"structures at another size than it learned, and its prediction may be "
        f"meaningless. {fix}"
    )


def voxel_size_text(size: Sequence[float]) -> str:
    """A voxel size as messages show it, e.g. ``(0.5, 0.5)``."""
    return f"({', '.join(f'{float(v):g}' for v in size)})"


@contextlib.contextmanager
def unchecked_voxel_size() -> Iterator[None]:
    """Within it (in this thread), :func:`prediction_input` does not compare the input's
    voxel size with the training data's: for callers that compared it already (blockwise
    workers: their job did, once) or compare it in units of their own (the predict panel,
    in the layers' units)."""
    token = _CHECK_VOXEL_SIZE.set(False)
    try:
        yield
    finally:
        _CHECK_VOXEL_SIZE.reset(token)


def prediction_input(
    run: Run,
    raw: Any,
    voxel_size: Sequence[int] | None = None,
    offset: Sequence[int] | None = None,
    rescale: bool | str | tuple[float, float] = True,
) -> Array:
    """``raw`` as the Array the run's model reads, with geometry and intensity rescaling.

    Parameters
    ----------
    run
        The run whose model will predict.
    raw
        A numpy, dask or zarr array, ``(*spatial)`` or ``(channels, *spatial)`` (the array
        has a channel axis exactly when it has one more dimension than the model), or an
        :class:`ArrayConfig` (which carries its own geometry).
    voxel_size, offset
        World geometry of a plain array (default: the training raw data's voxel size, and
        offset 0). The offset must lie on the voxel grid.
    rescale
        True: rescale intensities as the training raw data was (its
        IntensitiesArrayConfig, if any); False: none; ``(min, max)``: map min to 0 and
        max to 1; ``"image"`` (:data:`OWN_RANGE`): ``raw``'s own range
        (:func:`image_intensity_range`, for a run trained with a range). Integer data
        without a range is divided by its dtype's maximum, as in training.

    Raises
    ------
    ValueError, TypeError
        Naming the mismatch (dimensions, channels, geometry) and the fix.

    Warns
    -----
    VoxelSizeWarning
        If the input's voxel size is none of the training raw data's (unless it was taken
        from them, the training data cannot be opened, or within
        :func:`unchecked_voxel_size`): the network would see structures at another size
        than it learned. A warning, not an error: it may be meant.
    """
    from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import (
        ArrayConfig,
        NumpyArrayConfig,
    )
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_array_config import (
        IntensitiesArrayConfig,
    )
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        reopened_for_reading,
    )

    model = run.model
    dims, channels = model.architecture.dims, model.num_in_channels
    expected = (
        f"the model of run '{run.name}' takes {dims}D images with {channels} channel(s): "
        f"{'(*spatial) or ' if channels == 1 else ''}(channels, *spatial) with "
        f"{dims} spatial axes"
    )
    checked = True  # whether to compare the input's voxel size with the training data's
    if isinstance(raw, ArrayConfig):
        if voxel_size is not None or offset is not None:
            raise ValueError(
                f"raw is an array config ({type(raw).__name__}), which carries its own "
                f"geometry; set voxel_size and offset on the config instead."
            )
        config = raw
    elif isinstance(raw, Array):
        raise TypeError(
            f"raw is an opened {type(raw).__name__}; pass its data with voxel_size= and "
            f"offset=, or the ArrayConfig that opens it."
        )
    elif all(hasattr(raw, a) for a in ("shape", "dtype", "__getitem__")):
        ndim = len(raw.shape)
        if ndim not in (dims, dims + 1):
            raise ValueError(f"raw has shape {tuple(raw.shape)}, but {expected}.")
        if 0 in tuple(raw.shape):
            raise ValueError(
                f"raw has shape {tuple(raw.shape)}: an empty axis, nothing to predict. Pass "
                f"the image's data."
            )
        shape = tuple(int(n) for n in raw.shape)
        if ndim == dims + 1 and shape[0] != channels and shape[-1] == channels != 1 or (
            ndim == dims + 1 and channels == 1 and shape[-1] in (3, 4) and shape[0] > 4
        ):
            raise ValueError(
                f"raw has shape {shape}: its last axis looks like colour channels, but "
                f"channels come first here, and {expected}. "
                + ("Move them first: numpy.moveaxis(raw, -1, 0)." if channels > 1 else
                   "Convert it to one channel, e.g. raw.mean(axis=-1), or train a run on "
                   "images with these channels.")
            )
        if voxel_size is None:
            voxel_size = training_raw(run, "the voxel size").voxel_size
            checked = False  # the training data's: nothing to compare
        config = NumpyArrayConfig(
            name="input",
            data=reopened_for_reading(raw),
            voxel_size=Coordinate(voxel_size),
            offset=Coordinate(offset if offset is not None else (0,) * dims),
            axis_names=default_axis_names(dims, channels=ndim == dims + 1),
        )
    else:
        raise TypeError(
            f"raw must be a numpy, dask or zarr array (or an ArrayConfig), not "
            f"{type(raw).__name__}."
        )
    if rescale is True:
        bounds = training_intensity_range(run)
    elif rescale is False or rescale is None:
        bounds = None
    elif isinstance(rescale, str):
        if rescale != OWN_RANGE:
            raise ValueError(
                f"rescale={rescale!r} is not understood: give True (the training data's "
                f"scaling), False (none), {OWN_RANGE!r} (the input's own range) or "
                f"(low, high)."
            )
        measured = image_intensity_range(run, config)
        bounds = (measured.low, measured.high)
    else:
        bounds = rescale_bounds(rescale)
    if bounds is not None:
        config = IntensitiesArrayConfig(
            name=f"{config.name}_rescaled", source_array_config=config,
            min=bounds[0], max=bounds[1],
        )
    array = config.array()
    if array.dims != dims:
        raise ValueError(
            f"raw has {array.dims} spatial axes ({', '.join(array.axis_names)}), but "
            f"{expected}."
        )
    if (array.num_channels or 1) != channels:
        stack = (
            f" A stack of {dims}D images must be predicted image by image."
            if channels == 1 and array.channel_dims else ""
        )
        raise ValueError(
            f"raw has {array.num_channels or 1} channel(s) (shape {array.shape}, axes "
            f"{array.axis_names}), but {expected}.{stack}"
        )
    if not array.offset.is_multiple_of(array.voxel_size):
        raise ValueError(
            f"offset {tuple(array.offset)} is not on the voxel grid of voxel_size "
            f"{tuple(array.voxel_size)}; give an offset that is a multiple of the voxel size."
        )
    if checked and _CHECK_VOXEL_SIZE.get():
        mismatch = voxel_size_mismatch(
            array.voxel_size, training_voxel_sizes(run.config), run.name
        )
        if mismatch:
            warnings.warn(mismatch, VoxelSizeWarning, stacklevel=2)
    return array


def rescale_bounds(rescale: Any) -> tuple[float, float]:
    """``rescale=(low, high)`` checked: two finite numbers, low below high."""
    try:
        low, high = (float(v) for v in rescale)
    except (TypeError, ValueError):
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(
            f"rescale={rescale!r} is not a range: give (low, high), two finite numbers with "
            f"low below high (the intensities that become 0 and 1), or True (the training "
            f"data's scaling), False (none) or {OWN_RANGE!r} (the input's own range)."
        )
    return low, high


def prediction_device_plan(
    run: Run, device: torch.device | str | None, precision: str | None
) -> tuple[torch.device, PrecisionPlan]:
    """The device and precision plan for predicting with ``run``: the run's trainer config,
    with ``device`` and ``precision`` overriding it when given (in-process and blockwise)."""
    from napari_dacapo.experiments.device import choose_precision, device_plan_for

    trainer_config = run.config.trainer_config
    device, plan = device_plan_for(trainer_config, device)
    if precision is not None:
        plan = choose_precision(
            device, precision, getattr(trainer_config, "channels_last", "auto")
        )
    return device, plan


def predict_tiles(
    run: Run | str,
    checkpoint: Checkpoint,
    raw: Any,
    *,
    voxel_size: Sequence[int] | None = None,
    offset: Sequence[int] | None = None,
    rescale: bool | str | tuple[float, float] = True,
    store: FileStore | None = None,
    device: torch.device | str | None = None,
    precision: str | None = None,
) -> Iterator[PredictEvent]:
    """Predict ``raw`` with a stored checkpoint of ``run``, tile by tile.

    Yields :class:`PredictionStarted` (with the checkpoint's iteration), then one
    :class:`TilePredicted` per tile. Stop iterating (or ``close()`` the generator) to
    cancel; the device's memory is released when the generator ends. An array sent in
    reply to :class:`PredictionStarted` is filled in place (see :func:`predict_blocks`).

    Parameters
    ----------
    run
        A :class:`~napari_dacapo.experiments.run.Run` or the name of a stored run. A
        Run's own model is never changed: the checkpoint is loaded into a copy (a run given
        by name is built for this call only and loads it directly).
    checkpoint
        An iteration, ``"latest"`` or ``"best:<criterion>"`` (the iteration validation
        found best for that criterion).
    raw, voxel_size, offset, rescale
        The input; see :func:`prediction_input`.
    store
        The store holding the run (default: the run's, or the default store for a name).
    device
        Where to compute (default: the trainer config's choice, a GPU when present).
    precision
        ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (default: the trainer config's,
        where ``"auto"`` is bf16 on hardware that gains from it).
    """
    from napari_dacapo.checkpoints import load_model, load_run, resolve_checkpoint
    from napari_dacapo.experiments.device import release_device_memory

    private = isinstance(run, str)  # built here, only to predict: no copy of its model
    run, store = load_run(run, store)
    iteration, _ = resolve_checkpoint(run, checkpoint, store)
    array = prediction_input(run, raw, voxel_size, offset, rescale)
    device, plan = prediction_device_plan(run, device, precision)
    memory_format = (
        plan.memory_format(array.dims) if plan.channels_last else torch.preserve_format
    )
    model = load_model(run, iteration, store, copy=not private)
    model = model.to(device, memory_format=memory_format)
    blocks = predict_blocks(model, array, None, device, plan.autocast_dtype, plan.channels_last)
    try:
        with contextlib.closing(blocks):  # a cancelled caller closes the tiling at once
            started = dataclasses.replace(next(blocks), iteration=iteration)
            out = yield started  # an array to fill, from assemble (see predict_blocks)
            if started.num_tiles:
                yield blocks.send(out)
                yield from blocks
    finally:
        model.cpu()
        release_device_memory(device)


def predict(
    run: Run | str,
    checkpoint: Checkpoint,
    raw: Any,
    **kwargs: Any,
) -> np.ndarray:
    """Predict ``raw`` with a stored checkpoint of ``run``.

    Returns the prediction ``(channels, *spatial)`` float32 covering the whole input
    (spatial shape: the input's, times the upsampling factor of upsampling networks),
    after the task's eval activation. Keyword arguments are those of
    :func:`predict_tiles`.

    Warns
    -----
    NonFiniteWarning
        If the prediction holds NaN or infinite values (from such values in the input).
    """
    prediction = assemble(predict_tiles(run, checkpoint, raw, **kwargs))[0]
    warn_if_non_finite(prediction)
    return prediction


def apply(
    run: Run | str,
    checkpoint: Checkpoint,
    raw: Any,
    criterion: str | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """Predict ``raw`` and post-process the prediction into labels, with the
    post-processor parameters that validation found best.

    Parameters
    ----------
    criterion
        Whose best parameters to use. Default: the criterion of a ``"best:<criterion>"``
        checkpoint; without either, the first parameter set is used (with a warning).
    **kwargs
        As for :func:`predict_tiles`.

    Returns
    -------
    numpy.ndarray
        What the task's post-processor returns (labels, or masks per channel).
    """
    from napari_dacapo.checkpoints import criterion_of, load_run

    run, kwargs["store"] = load_run(run, kwargs.get("store"))
    criterion = criterion or criterion_of(checkpoint)
    # Parameters first: a criterion that was never validated fails before any prediction.
    process = post_processing(run, criterion, kwargs["store"])
    return process(predict(run, checkpoint, raw, **kwargs))


def post_processing(
    run: Run | str, criterion: str | None = None, store: FileStore | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The run's post-processor with the parameters validation found best for
    ``criterion`` (the first set, with a warning, when None), as a function from a
    prediction ``(channels, *spatial)`` to its segmentation.

    Use it to post-process a prediction already made (e.g. by :func:`predict_tiles`).
    """
    from napari_dacapo.checkpoints import best_parameters, load_run

    run, store = load_run(run, store)
    parameters = best_parameters(run, criterion, store)
    post_processor = run.task.post_processor
    return lambda prediction: post_processor.process(prediction, parameters)

