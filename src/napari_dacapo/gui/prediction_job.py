"""The prediction a predict panel runs: its inputs, gathered on the GUI thread, and the
generator that runs in a worker and yields the output tile by tile.

Qt-free: the panel turns these events into layer updates.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from funlib.geometry import Roi

from napari_dacapo.experiments.datasplits.datasets.arrays.array import voxel_slices
from napari_dacapo.gui.layer_arrays import (
    MAX_CHANNELS,
    channels_last,
    channels_last_problem,
    first_axis_is_time,
    frame_split_fix,
    layer_data,
    layer_leading_channels,
    spatial_dims,
)
from napari_dacapo.gui.layer_storage import zarr_location
from napari_dacapo.gui.run_info import RunInfo, read_run_info
from napari_dacapo.predict import (
    PredictionStarted,
    TileGeometry,
    TilePredicted,
    image_intensity_range,
    training_voxel_sizes,
    unchecked_intensity_scale,
    unchecked_voxel_size,
    voxel_size_mismatch,
    voxel_size_text,
)
from napari_dacapo.store.file_store import FileStore, StoreError, world_factor_of

__all__ = [
    "EXPLAINED_FAILURES",
    "LabelsDone",
    "Pace",
    "PredictJob",
    "TileDone",
    "TilesDone",
    "image_mismatch",
    "prediction_events",
    "read_predict_info",
    "training_scales",
    "voxel_size_warning",
]

#: Failures of a prediction whose message names the problem and its fix (a checkpoint
#: that cannot be read, an input the run cannot take): shown without a traceback.
EXPLAINED_FAILURES = (StoreError, ValueError)


@dataclass(frozen=True)
class PredictJob:
    """What one prediction needs, gathered on the GUI thread.

    Attributes
    ----------
    store, run, checkpoint
        The stored run and its checkpoint (``latest``, an iteration, ``best:<criterion>``).
    raw
        The image layer as an array config (its data by reference, integer geometry).
    region
        World ROI (integer units) to predict, on the image's voxel grid; None: all of it.
    criterion
        Whose best post-processing parameters make the labels; None: no labels.
    own_range
        Scale the image from its own 1st-99.8th percentiles to 0-1, not from the range
        the training data was scaled from (for an image brighter or dimmer than those).
    """

    store: FileStore
    run: str
    checkpoint: str
    raw: Any
    region: Roi | None
    criterion: str | None
    own_range: bool = False


@dataclass(frozen=True, slots=True)
class TileDone:
    """One tile of the prediction and its provisional labels (post-processed on the tile
    alone), over ``roi``; both ``(channels, *spatial)``."""

    index: int
    roi: Roi
    prediction: np.ndarray
    labels: np.ndarray | None


@dataclass(frozen=True, slots=True)
class TilesDone:
    """The tiles predicted since the last such event (handed over together, see
    :class:`Pace`); ``done`` tiles of the prediction's ``num_tiles`` are computed, those
    outside the predicted region (its context) included."""

    done: int
    tiles: tuple[TileDone, ...]


@dataclass(frozen=True, slots=True)
class LabelsDone:
    """The labels of the whole prediction ``(channels, *spatial)``, replacing the
    provisional tile labels."""

    labels: np.ndarray


class Pace:
    """How often the prediction hands its tiles to the GUI: together, at most one
    :class:`TilesDone` every ``interval`` seconds, and none while ``pending`` are not yet
    applied (the GUI calls :meth:`applied` after each). Meanwhile tiles gather in the worker,
    which never waits: a GUI slower than the network gets fewer, bigger events instead of a
    queue that grows without bound (and that a Cancel would wait behind)."""

    def __init__(self, interval: float = 0.1, pending: int = 2) -> None:
        self.interval, self.pending = interval, pending
        self._lock = threading.Lock()
        self._unapplied = 0
        self._sent_at = -float("inf")

    def ready(self) -> bool:
        """Whether a batch may be sent now (then it counts as sent)."""
        with self._lock:
            if (self._unapplied >= self.pending
                    or time.monotonic() - self._sent_at < self.interval):
                return False
            self._sent()
            return True

    def force(self) -> None:
        """Count a batch sent whatever the pace (the last one)."""
        with self._lock:
            self._sent()

    def applied(self) -> None:
        """The GUI has applied one batch."""
        with self._lock:
            self._unapplied = max(self._unapplied - 1, 0)

    def _sent(self) -> None:
        self._unapplied += 1
        self._sent_at = time.monotonic()


def smallest_ids(labels: np.ndarray) -> np.ndarray:
    """``labels`` as the smallest unsigned integer type that holds its ids (uint8 to
    uint64): napari recasts ids wider than 16 bits for display at every refresh, about
    four times as slow. Signed or non-integer labels are returned as they are."""
    if labels.dtype.kind not in "iu" or labels.size == 0:
        return labels
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        return labels
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64)
                 if high <= np.iinfo(t).max)
    return labels if labels.dtype == dtype else labels.astype(dtype)


def _makes_instances(post_processor: Any) -> bool:
    """Whether ``post_processor`` makes object ids (connected components, agglomerated
    affinities), not classes or masks, whose values must stay as they are."""
    from napari_dacapo.blockwise.segmentation import AFFINITIES, COMPONENTS, blockwise_method

    try:
        return blockwise_method(post_processor) in (COMPONENTS, AFFINITIES)
    except ValueError:  # a post-processor without a blockwise method: leave its ids
        return False


def prediction_events(
    job: PredictJob, cancel: threading.Event, pace: Pace | None = None
) -> Iterator[PredictionStarted | TilesDone | LabelsDone]:
    """Predict ``job`` tile by tile (in a worker): yields :class:`PredictionStarted` with
    the ROI of the output, :class:`TilesDone` with the tiles inside it as ``pace`` lets
    them go (default: each tile at once), the last one when every tile is computed, then,
    with a criterion, :class:`LabelsDone`. Returns early once ``cancel`` is set."""
    from napari_dacapo.checkpoints import load_run
    from napari_dacapo.predict import post_processing, predict_tiles

    run, store = load_run(job.run, job.store)
    raw = job.raw.array()
    region = job.region or raw.roi
    # The input is the region grown by the network's context (clipped to the image), so
    # the region's outputs see real voxels, not padding, wherever the image has them.
    context = TileGeometry.for_model(run.model, raw.voxel_size).context
    crop = region.grow(context, context).snap_to_grid(raw.voxel_size, mode="grow")
    crop = crop.intersect(raw.roi)
    source = job.raw.replace(
        data=job.raw.data[(..., *voxel_slices(crop, raw.offset, raw.voxel_size))],
        offset=crop.offset,
    )
    process = post_processing(run, job.criterion, store) if job.criterion else None
    instances = process is not None and _makes_instances(run.task.post_processor)
    next_id = 0

    def labels(prediction: np.ndarray) -> np.ndarray:
        segmentation = process(prediction)
        segmentation = smallest_ids(segmentation)
        return segmentation if segmentation.ndim > raw.dims else segmentation[None]

    def provisional(tile: np.ndarray) -> np.ndarray:
        """A tile's labels; instance ids made unique across tiles, so that a cancelled
        prediction (no :class:`LabelsDone`) never shows two objects under one id."""
        nonlocal next_id
        segmentation = labels(tile)
        if instances and segmentation.any():
            segmentation = segmentation.astype(np.uint64)
            segmentation[segmentation > 0] += next_id
            next_id = int(segmentation.max())
            segmentation = smallest_ids(segmentation)
        return segmentation

    rescale: bool | tuple[float, float] = True  # as the training data was
    if job.own_range:
        # Of the whole image, not the region: every region of it is scaled alike.
        measured = image_intensity_range(run, job.raw)
        rescale = (measured.low, measured.high)
    events = predict_tiles(run, job.checkpoint, source, store=store, rescale=rescale)
    try:
        # The panel compared the image's voxel size, in the layers' units: the job's
        # integer units may be finer than the run's (another world factor).
        # It also said an intensity scale unlike the training data's, before starting.
        with unchecked_voxel_size(), unchecked_intensity_scale():
            first = next(events)
        output = region.snap_to_grid(first.voxel_size, mode="grow").intersect(first.roi)
        start = dataclasses.replace(first, roi=output)
        whole = np.zeros(start.shape, np.float32) if process else None
        yield start
        batch: list[TileDone] = []
        done = sent = 0  # tiles computed, and as many as the GUI was told of
        for event in events:
            if cancel.is_set():
                return
            assert isinstance(event, TilePredicted)
            done = event.index
            roi = event.roi.intersect(output)
            if not roi.empty:
                tile = event.data[
                    (slice(None), *voxel_slices(roi, event.roi.begin, start.voxel_size))]
                if whole is not None:
                    at = voxel_slices(roi, output.begin, start.voxel_size)
                    whole[(slice(None), *at)] = tile
                batch.append(
                    TileDone(event.index, roi, tile, provisional(tile) if process else None))
            if batch and (pace is None or pace.ready()):
                yield TilesDone(done, tuple(batch))
                batch, sent = [], done
        if cancel.is_set():
            return
        # The last tiles, and the count of all (the last ones may lie in the context only).
        if batch or sent != done:
            if pace is not None:
                pace.force()
            yield TilesDone(done, tuple(batch))
        if whole is not None and not cancel.is_set():
            yield LabelsDone(labels(whole))
    finally:
        events.close()


def image_mismatch(image: Any, info: RunInfo) -> str:
    """Why ``image`` does not fit the network of run ``info`` ('' when it does): a 2D
    network takes ``(y, x)`` or ``(channels, y, x)`` images (or RGB), a 3D one likewise.

    Said as the training panel reads the image: a channels-last image such as (Y, X, 2) is
    refused whatever the network (:func:`.layer_arrays.channels_last`), and a stack with
    one axis more than the network, whose first axis is not the network's channels, is
    named as channels of one image or as a volume
    (:func:`.layer_arrays.layer_leading_channels`), with how to split off a frame.
    """
    dims, channels = info.dims, info.in_channels
    if dims is None:
        return ""
    if channels_last(image):
        return channels_last_problem(image, channels)
    spatial, shape = spatial_dims(image), tuple(layer_data(image).shape)
    stacked = not image.rgb and spatial == dims + 1
    axes = ", ".join("zyx"[-dims:]) if dims <= 3 else f"{dims} axes"
    if spatial != dims and not stacked:
        return (f"Image '{image.name}' has shape {shape} but run "
                f"'{info.name}' predicts {dims}D images, shaped ({axes}) or (channels, "
                f"{axes}): pick a {dims}D image.")
    found = shape[-1] if image.rgb else shape[0] if stacked else 1
    if channels is None or found == channels:
        return ""
    takes = f"the network of run '{info.name}' takes {channels}"
    if image.rgb:
        hint = (" (an RGB image: convert it to grayscale first, e.g. in napari's "
                "console, or train a run on RGB images)" if channels == 1 else "")
        return (f"Image '{image.name}' has {found} channel(s) but {takes}{hint}: pick an "
                f"image with {channels}.")
    if not stacked:
        return (f"Image '{image.name}' has 1 channel but {takes}: pick an image with "
                f"{channels} channels, shaped (channels, {axes}).")
    return _stack_mismatch(image, shape, dims, axes, channels, info.name)


def _stack_mismatch(image: Any, shape: tuple[int, ...], dims: int, axes: str, channels: int,
                    run: str) -> str:
    """Why a stack ``(n, *spatial)`` with ``dims`` spatial axes (named ``axes``) does not
    fit run ``run``, whose network takes ``channels`` channels (not ``n``), said as the
    training panel reads the stack's first axis: channels of one image, or a volume's z."""
    plural = "s" if channels > 1 else ""
    what = ("Its first axis is labelled time: split" if first_axis_is_time(image)
            else f"If its first axis is time or a stack of {dims}D frames, split")
    split = (f"{what} the frame to predict into its own layer and pick it, "
             f"{frame_split_fix(image)}.")
    if layer_leading_channels(image):
        reading = (f"Image '{image.name}' {shape} is read as {shape[0]} channels of one "
                   f"{dims}D image, but the network of run '{run}' takes {channels} "
                   f"channel{plural}")
        if channels == 1:
            return f"{reading}: a stack of images must be predicted one by one. {split}"
        # Channels for a network of other channels: frames only where labelled time.
        split = f" {split}" if first_axis_is_time(image) else ""
        return f"{reading}: pick an image with {channels}, shaped (channels, {axes}).{split}"
    names = image.metadata.get("axis_names")
    if names and len(names) == len(shape):
        why = f"its first axis is named '{names[0]}'"
    elif shape[0] > MAX_CHANNELS:
        why = f"more than {MAX_CHANNELS} along its first axis, too many for channels"
    else:
        why = "its first axis has a scale or translate, as z"
    return (f"Image '{image.name}' {shape} is read as a {dims + 1}D volume ({why}), as the "
            f"training panel reads it, but run '{run}' predicts {dims}D images with "
            f"{channels} channel{plural}: a stack of images must be predicted one by one. "
            f"{split} A volume needs a run trained in {dims + 1}D.")


def read_predict_info(store: FileStore, name: str) -> tuple[RunInfo, list[tuple[float, ...]]]:
    """What the predict panel shows of run ``name`` (:func:`read_run_info`) and the voxel
    sizes it was trained on (:func:`training_scales`); read in a worker (opens the
    training data's metadata)."""
    info = read_run_info(store, name)
    return info, training_scales(store, info.config)


def training_scales(store: FileStore, config: Any) -> list[tuple[float, ...]]:
    """The voxel sizes of the raw data run ``config`` was trained on, in napari's units
    (divided by the run's world factor: the scales of the layers it was trained on); ``[]``
    when that data cannot be opened."""
    factor = world_factor_of(store.run_dir(config.name))
    return [tuple(float(v) / factor for v in size) for size in training_voxel_sizes(config)]


def voxel_size_warning(
    image: Any, dims: int, blockwise: bool, training: list[tuple[float, ...]], run: str
) -> tuple[str, str]:
    """``(note, warning)`` when the voxel size of ``image`` is none of ``training`` (the
    scales run ``run`` was trained on, :func:`training_scales`), else ``("", "")``: a
    short note for the panel's status and the whole warning, with the fix.

    The voxel size is the layer's scale, or blockwise (the prediction reads the zarr
    array) the zarr array's own, in napari's units.
    """
    if blockwise:
        from napari_dacapo._reader import recorded_display
        from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
            ZarrArrayConfig,
        )

        location = zarr_location(image)
        if location is None:  # not predicted blockwise (the panel says why)
            return "", ""
        container, dataset = location
        try:
            array = ZarrArrayConfig(name="input", file_name=container, dataset=dataset).array()
        except (OSError, ValueError):  # the job will say what is wrong with it
            return "", ""
        factor = float(recorded_display(container, dataset).get("world_factor", 1))
        scale = tuple(float(v) / factor for v in array.voxel_size)
        what = f"The voxel size of image '{image.name}' (as its zarr array records it)"
        fix = ("Resample the image to that voxel size; or, if its zarr array records a wrong "
               "voxel size, correct the array's voxel_size attribute.")
    else:
        scale = tuple(float(s) for s in image.scale[-dims:])
        what = f"The voxel size of image '{image.name}' (its layer scale)"
        fix = (f"Resample the image to that voxel size; or, if the layer's scale is wrong, "
               f"set it to the image's voxel size (in napari's console: "
               f"viewer.layers['{image.name}'].scale = ...).")
    warning = voxel_size_mismatch(scale, training, run, what=what, fix=fix)
    if not warning:
        return "", ""

    sizes = "voxel size" if len(training) == 1 else "voxel sizes"
    note = (f"Note: run '{run}' was trained on {sizes} "
            f"{', '.join(map(voxel_size_text, training))}, the image has "
            f"{voxel_size_text(scale)}: resample it, or correct its scale if that is wrong.")
    return note, warning
