"""Training batches from datasets: sample, read, augment, make targets, crop, stack.

Geometry (world units): the network reads ``input_size = input_shape * raw voxel size`` and
predicts ``output_size = output_shape * output voxel size`` centred in it. A sample is
centred on an annotated voxel; its input ROI must lie inside the dataset's sampling region
(the raw data, intersected with the ground truth's ROI when ``clip_raw``). Augments that
need context read beyond the input ROI; where that context leaves the region, raw is
mirrored at the border and labels are unknown (mask 0). Ground truth and mask are read over
the whole input ROI (zero, i.e. unknown, outside their ROI) and augmented with the raw.
Targets and weights are then computed on the output ROI grown by the predictor's
``padding`` (the surroundings that distances or affinities depend on, within the input),
and cropped to the output ROI: the same targets as from the whole input, at a fraction of
the cost (a distance transform of the 60**3 input of the 3D example costs about three times
that of the 36**3 it needs).

Precomputed targets. When the predictor's target is local and grid-covariant
(:attr:`~..tasks.predictors.predictor.Predictor.precomputable_target`, the distance tasks),
every augment keeps the voxel grid (mirror, transpose, intensities) and samples stay inside
the ground truth (``clip_raw``), the target of a sample is that of the whole dataset, read
and augmented like the labels: it is computed once per dataset (up to
:data:`PRECOMPUTE_MAX_VOXELS`) instead of once per sample, bit for bit the same. On 2 CPU
cores this is most of the batch preparation time that the model step has to share its cores
with (the distance transforms).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..datasplits.datasets.arrays.array import SourceArray, raw_as_float32

from .augments.augment import AugmentPipeline, Augment, GridStep, Sample, SampleArray
from .box_reads import BoxReader, box_slices
from .sampling import CentreSampler, annotated

if TYPE_CHECKING:
    from ..datasplits.datasets.arrays.array import Array
    from ..datasplits.datasets.dataset import Dataset
    from ..model import Model
    from ..tasks.predictors.predictor import Predictor

__all__ = ["Batch", "BatchProvider", "PRECOMPUTE_MAX_VOXELS", "SAMPLE_TRIES"]

logger = logging.getLogger(__name__)

#: Locations tried per sample before one below ``min_masked`` is accepted.
SAMPLE_TRIES = 50
#: Largest target (voxels times channels; float32) precomputed for a dataset: 256 MiB.
PRECOMPUTE_MAX_VOXELS = 2**26


@dataclass
class Batch:
    """A training batch (numpy, batch axis first).

    Attributes
    ----------
    raw
        ``(B, C_in, *input_shape)`` float32.
    gt, mask
        ``(B, *output_shape)`` labels and annotation mask (1 = known), cropped to the output.
    target, weight
        ``(B, C_out, *output_shape)`` float32 from the task's predictor.
    input_begins, output_begins
        ``(B, dims)`` int64 world begin of each sample's input and output (before
        augmentation); :attr:`input_rois` and :attr:`output_rois` give them as ROIs.
    input_size, output_size
        World size of every sample's input and output.
    grid_steps
        Per sample, the mirror-and-transpose steps of its augmentation
        (:func:`~.augments.augment.undo_grid_steps` lines its arrays up with the source
        again), or None when an augment warped it.
    warning
        What the user should know about how the batch was sampled (empty: nothing): a
        sample taken although less of its output was annotated than ``min_masked``. It
        travels with the batch, which may be made in another thread or process (where a
        warning or log line would not reach the user); the training loop says it.
    """

    raw: np.ndarray
    gt: np.ndarray
    mask: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    input_begins: np.ndarray
    output_begins: np.ndarray
    input_size: Coordinate
    output_size: Coordinate
    grid_steps: list[list[GridStep] | None] = field(default_factory=list)
    warning: str = ""

    @property
    def nbytes(self) -> int:
        """Bytes of the batch's arrays."""
        return sum(a.nbytes for a in (self.raw, self.gt, self.mask, self.target, self.weight))

    # ROIs are made on demand: a batch may cross to the training process every iteration,
    # and building and unpickling funlib ROIs costs more than the rest of its header.
    @property
    def input_rois(self) -> list[Roi]:
        return [Roi(Coordinate(b.tolist()), self.input_size) for b in self.input_begins]

    @property
    def output_rois(self) -> list[Roi]:
        return [Roi(Coordinate(b.tolist()), self.output_size) for b in self.output_begins]


class _Source:
    """One dataset with its sampling region, centre sampler and readers."""

    def __init__(self, dataset: Dataset, region: Roi, sampler: CentreSampler) -> None:
        self.dataset = dataset
        # The sampling region as world bounds; raw is mirrored beyond them.
        self.region_begin = np.asarray(region.begin, dtype=np.int64)
        self.region_end = np.asarray(region.end, dtype=np.int64)
        self.sampler = sampler
        self.raw = BoxReader(dataset.raw)
        self.gt = BoxReader(dataset.gt)  # type: ignore[arg-type]
        self.mask = BoxReader(dataset.mask) if dataset.mask is not None else None
        self.target: BoxReader | None = None  # the precomputed target, once made
        self.target_too_large = False  # then targets are made per sample


class BatchProvider:
    """Makes :class:`Batch` es for a model and a predictor from training datasets.

    Parameters
    ----------
    datasets
        Training datasets; each needs ground truth.
    model
        Gives input and output shapes, voxel size scaling and input channels.
    predictor
        Makes targets and weights from augmented labels and mask.
    batch_size, min_masked, clip_raw, sample_from
        As in :class:`~napari_dacapo.experiments.trainers.DefaultTrainerConfig`.
    augments
        Applied to every sample, in order.
    rng
        The only source of randomness (a seeded generator gives reproducible batches).
    precompute_targets
        Compute targets once per dataset where that gives the same batches (see the module
        docstring); False always computes them per sample.

    Raises
    ------
    ValueError
        When a dataset cannot give samples of this model's shape, naming the dataset, the
        sizes involved and the fix.
    """

    def __init__(
        self,
        datasets: Sequence[Dataset],
        model: Model,
        predictor: Predictor,
        batch_size: int,
        augments: Sequence[Augment] = (),
        min_masked: float = 0.0,
        clip_raw: bool = True,
        sample_from: str = "auto",
        rng: np.random.Generator | None = None,
        precompute_targets: bool = True,
    ) -> None:
        if not datasets:
            raise ValueError("No training dataset was given. Add one to the datasplit.")
        self.datasets = list(datasets)
        self.predictor = predictor
        self.batch_size = batch_size
        self.min_masked = min_masked
        self.clip_raw = clip_raw
        self.rng = rng if rng is not None else np.random.default_rng()
        # Why the samples since the last batch are not as asked (see Batch.warning).
        self._warning = ""

        first = self.datasets[0]
        self.raw_voxel_size = first.raw.voxel_size
        self.dims = first.raw.dims
        self.input_shape = Coordinate(model.input_shape)
        self.output_shape = Coordinate(model.output_shape)
        self.num_in_channels = model.num_in_channels
        if len(self.input_shape) != self.dims:
            raise ValueError(
                f"The model's input_shape {tuple(self.input_shape)} has {len(self.input_shape)} "
                f"axes but the raw data of dataset '{first.name}' has {self.dims} spatial axes "
                f"({first.raw.axis_names}). Give the architecture a {self.dims}D input_shape."
            )
        self.output_voxel_size = model.scale(self.raw_voxel_size)
        self.input_size = self.input_shape * self.raw_voxel_size
        self.output_size = self.output_shape * self.output_voxel_size
        margin = self.input_size - self.output_size
        if any(m < 0 for m in margin) or not margin.is_multiple_of(self.output_voxel_size * 2):
            raise ValueError(
                f"The model's output ({tuple(self.output_size)} world units) cannot be centred "
                f"in its input ({tuple(self.input_size)}): the difference must be an even "
                f"number of output voxels {tuple(self.output_voxel_size)}. Choose an "
                f"input_shape for which the architecture gives a centred output."
            )
        self.margin = margin // 2
        self.half_output = (self.output_shape // 2) * self.output_voxel_size
        self._padding = self._checked_padding(predictor)
        self._label_crop, self._output_in_crop = self._target_geometry(self._padding)
        grid = Coordinate(
            math.lcm(int(a), int(b)) for a, b in zip(self.raw_voxel_size, self.output_voxel_size)
        )
        self.pipeline = AugmentPipeline(augments, self.input_size, self.raw_voxel_size, grid)
        # The same geometry as numpy integers, for the per-sample arithmetic.
        self._shift = np.asarray(self.half_output + self.margin, dtype=np.int64)
        self._margin = np.asarray(self.margin, dtype=np.int64)
        self._input_extent = np.asarray(self.input_size, dtype=np.int64)
        self._output_extent = np.asarray(self.output_size, dtype=np.int64)
        self._context = np.asarray(self.pipeline.context, dtype=np.int64)
        self.sources = [self._source(d, sample_from) for d in self.datasets]
        weights = np.asarray([float(getattr(d, "weight", 1.0)) for d in self.datasets])
        if np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(
                f"Dataset weights {weights.tolist()} must be >= 0 with a positive sum. Give "
                f"every training dataset a positive weight."
            )
        self.probabilities = weights / weights.sum()
        self.precompute_targets = (
            precompute_targets and clip_raw and predictor.precomputable_target
            and all(augment.keeps_voxel_grid for augment in augments)
        )

    # -- set-up ----------------------------------------------------------------------------

    def _checked_padding(self, predictor: Predictor) -> Coordinate:
        """The predictor's padding at the output voxel size, checked."""
        voxel_size = self.output_voxel_size
        padding = Coordinate(predictor.padding(voxel_size))
        if len(padding) != self.dims or any(p < 0 for p in padding):
            raise ValueError(
                f"{type(predictor).__name__}.padding({tuple(voxel_size)}) returned "
                f"{tuple(padding)}; it must give {self.dims} non-negative world distances. "
                f"Fix the predictor's padding method."
            )
        return padding

    def _target_geometry(
        self, padding: Coordinate
    ) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """Slices of the input-sized labels on which targets and weights are computed (the
        output grown by the predictor's ``padding``, within the input), and of the output
        within that crop."""
        voxel_size = self.output_voxel_size
        context = padding // voxel_size
        begin = self.margin // voxel_size
        end = begin + self.output_shape
        shape = self.input_size // voxel_size
        low = [max(0, b - c) for b, c in zip(begin, context)]
        high = [min(s, e + c) for s, e, c in zip(shape, end, context)]
        crop = tuple(slice(a, b) for a, b in zip(low, high))
        output = tuple(slice(b - a, e - a) for a, b, e in zip(low, begin, end))
        return crop, output

    def _source(self, dataset: Dataset, sample_from: str) -> _Source:
        raw, gt, mask = dataset.raw, dataset.gt, dataset.mask
        name = f"Dataset '{dataset.name}'"
        if gt is None:
            raise ValueError(f"{name} has no ground truth. Add labels to train on it.")
        if raw.voxel_size != self.raw_voxel_size:
            raise ValueError(
                f"{name} has raw voxel size {tuple(raw.voxel_size)} but the first dataset has "
                f"{tuple(self.raw_voxel_size)}. Resample the raw data so that all training "
                f"datasets share one voxel size."
            )
        channels = raw.num_channels or 1
        if raw.channel_dims > 1 or channels != self.num_in_channels:
            raise ValueError(
                f"{name} has raw with {channels} channel(s) (axes {raw.axis_names}) but the "
                f"model expects {self.num_in_channels} input channel(s). Set the "
                f"architecture's num_in_channels (fmaps_in) to {channels}, or pick matching raw."
            )
        if gt.voxel_size != self.output_voxel_size:
            raise ValueError(
                f"{name} has ground truth with voxel size {tuple(gt.voxel_size)} but the model "
                f"predicts at {tuple(self.output_voxel_size)}. Resample the labels to "
                f"{tuple(self.output_voxel_size)}."
            )
        for label, array in (("raw", raw), ("mask", mask)):
            if array is None:
                continue
            aligned = array.voxel_size.is_multiple_of(gt.voxel_size) and (
                array.offset - gt.offset
            ).is_multiple_of(gt.voxel_size)
            if not aligned or (label == "mask" and array.voxel_size != gt.voxel_size):
                raise ValueError(
                    f"{name}: the {label} (voxel size {tuple(array.voxel_size)}, offset "
                    f"{tuple(array.offset)}) is not on the ground truth's voxel grid (voxel "
                    f"size {tuple(gt.voxel_size)}, offset {tuple(gt.offset)}). Give them "
                    f"matching voxel sizes and offsets."
                )
        region = raw.roi
        if self.clip_raw:
            region = region.intersect(gt.roi)
        if not region.empty:
            # Input ROIs start on the raw voxel grid (which may be offset from the origin).
            shrunk = region.shift(-raw.offset).snap_to_grid(raw.voxel_size, mode="shrink")
            region = shrunk.shift(raw.offset)
        if region.empty or any(r < s for r, s in zip(region.shape, self.input_size)):
            where = (
                "annotated region (ground truth ROI within the raw data)"
                if self.clip_raw else "raw data"
            )
            have = tuple(region.shape / raw.voxel_size) if not region.empty else (0,) * self.dims
            fix = (
                "; or set clip_raw=False to take context from raw around small annotations"
                if self.clip_raw else ""
            )
            raise ValueError(
                f"{name}: the {where} is {have} voxels but the model input_shape is "
                f"{tuple(self.input_shape)} voxels. Use a smaller input_shape in the "
                f"architecture or annotate a larger region{fix}."
            )
        mode = sample_from if sample_from != "auto" else ("mask" if mask is not None else "labels")
        if mode == "mask" and mask is None:
            raise ValueError(
                f"{name} has no mask but sample_from is 'mask'. Set sample_from to 'auto' or "
                f"'labels', or give the dataset a mask."
            )
        grid_array: Array = mask if mode == "mask" else gt  # type: ignore[assignment]
        # Centre voxel begins c for which the input ROI (see _rois) lies inside the region.
        shift = self.half_output + self.margin
        lower = region.begin + shift
        upper = region.end - self.input_size + raw.voxel_size + shift
        sampler = CentreSampler(
            grid_array, lower, upper, only_annotated=mode != "anywhere",
            points=getattr(dataset, "sample_points", None) or None,
            description=f"dataset '{dataset.name}' ({mode})",
        )
        return _Source(dataset, region, sampler)

    def _precomputed_target(self, source: _Source) -> BoxReader | None:
        """The target of the whole dataset, made at the first call (None where it would
        exceed :data:`PRECOMPUTE_MAX_VOXELS`).

        The labels are read with ``padding`` zeros around them, as a sample reads zeros
        beyond the labels, so that the target near their border is a sample's too.
        """
        if source.target is None and not source.target_too_large:
            gt = source.dataset.gt
            assert gt is not None
            channels = len(self.predictor.channels)
            if channels * int(np.prod(gt.spatial_shape)) > PRECOMPUTE_MAX_VOXELS:
                source.target_too_large = True
                return None
            roi = gt.roi.grow(self._padding, self._padding)
            labels = source.gt.read(
                np.asarray(roi.begin, dtype=np.int64), np.asarray(roi.end, dtype=np.int64)
            )
            target = self.predictor.create_target(labels, gt.voxel_size)
            source.target = BoxReader(SourceArray(
                target, gt.voxel_size, roi.offset,
                axis_names=["c^", *gt.axis_names[gt.channel_dims :]],
            ))
            logger.debug("Precomputed the target of dataset '%s'.", source.dataset.name)
        return source.target

    # -- one sample ------------------------------------------------------------------------

    def _input_begin(self, source: _Source, centre: np.ndarray) -> np.ndarray:
        """World begin of the input of a sample whose output has ``centre`` at its middle
        voxel, on the raw voxel grid."""
        raw = source.raw
        start = centre - self._shift - raw.offset
        return (start // raw.voxel_size) * raw.voxel_size + raw.offset

    def _known(self, source: _Source, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Mask over the world box ``[begin, end)`` on the ground truth grid: 1 where labels
        are known (inside the ground truth's ROI and, if the dataset has one, its mask)."""
        gt = source.gt
        low, high = gt.voxels(begin, end)
        shape = tuple((high - low).tolist())
        if source.mask is None and gt.holds(low, high):
            return np.ones(shape, dtype=np.uint8)  # all inside the labels: all known
        known = np.zeros(shape, dtype=np.uint8)
        inner_low, inner_high = np.maximum(low, 0), np.minimum(high, gt.shape)
        if np.all(inner_high > inner_low):
            known[box_slices(inner_low - low, inner_high - low)] = 1
        if source.mask is not None:
            known &= annotated(source.mask.read(begin, end), source.mask.channel_dims)
        return known

    def _known_fraction(self, source: _Source, begin: np.ndarray, end: np.ndarray) -> float:
        """Share of the world box ``[begin, end)`` where labels are known (:meth:`_known`),
        from the geometry alone when the dataset has no mask."""
        if source.mask is not None:
            return float(self._known(source, begin, end).mean())
        gt = source.gt
        low, high = gt.voxels(begin, end)
        inside = np.clip(np.minimum(high, gt.shape) - np.maximum(low, 0), 0, None)
        return float(np.prod(inside) / np.prod(high - low))

    def _read(self, source: _Source, begin: np.ndarray, end: np.ndarray) -> Sample:
        raw = source.raw.read_mirrored(begin, end, source.region_begin, source.region_end)
        if source.raw.channel_dims == 0:
            raw = raw[None]
        voxel_size = source.dataset.gt.voxel_size  # type: ignore[union-attr]
        sample = {
            "raw": SampleArray(raw_as_float32(raw), source.dataset.raw.voxel_size, True),
            "gt": SampleArray(source.gt.read(begin, end), voxel_size, False),
            "mask": SampleArray(self._known(source, begin, end), voxel_size, False),
        }
        target = self._precomputed_target(source) if self.precompute_targets else None
        if target is not None:
            sample["target"] = SampleArray(target.read(begin, end), voxel_size, False)
        return sample

    def sample(self) -> tuple[Sample, Roi, Roi]:
        """One augmented sample (input-sized), with its input and output ROI."""
        sample, begin = self._sample()
        input_roi = Roi(Coordinate(begin.tolist()), self.input_size)
        return sample, input_roi, Roi(input_roi.begin + self.margin, self.output_size)

    def _sample(self) -> tuple[Sample, np.ndarray]:
        """One augmented sample and the world begin of its input (numpy int64).

        A location whose output region is annotated below ``min_masked`` is drawn again
        (checked before augmentation, as DaCapo's ``Reject``, so that a retry costs only a
        mask read), up to :data:`SAMPLE_TRIES` times; then the last one is used, and the
        batch says so (:attr:`Batch.warning`).
        """
        rng = self.rng
        sources = self.sources
        for _ in range(SAMPLE_TRIES):
            source = sources[0] if len(sources) == 1 else sources[
                rng.choice(len(sources), p=self.probabilities)
            ]
            begin = self._input_begin(source, source.sampler.sample_position(rng))
            if self.min_masked <= 0:
                break
            output_begin = begin + self._margin
            fraction = self._known_fraction(
                source, output_begin, output_begin + self._output_extent
            )
            if fraction >= self.min_masked:
                break
        else:
            self._warning = (
                f"No location among {SAMPLE_TRIES} tries had {100 * self.min_masked:.0f}% "
                f"of its output annotated (min_masked); using locations with less (last: "
                f"{100 * fraction:.1f}%). Annotate more densely or lower min_masked."
            )
        context = self._context
        read = self._read(source, begin - context, begin + self._input_extent + context)
        return self.pipeline(read, rng), begin

    def batch(self) -> Batch:
        """A batch of ``batch_size`` samples with targets and weights."""
        stacked: dict[str, np.ndarray] = {}
        begins = np.empty((self.batch_size, self.dims), dtype=np.int64)
        grid_steps: list[list[GridStep] | None] = []
        self._warning = ""
        # Ground truth may have a leading channel axis: index the spatial axes from the end.
        crop, output = (Ellipsis, *self._label_crop), (Ellipsis, *self._output_in_crop)
        voxel_size = self.output_voxel_size
        for i in range(self.batch_size):
            sample, begins[i] = self._sample()
            grid_steps.append(self.pipeline.last_grid_steps)
            gt, mask = sample["gt"].data[crop], sample["mask"].data[crop]
            if "target" in sample:
                target = sample["target"].data[crop]
            else:
                target = self.predictor.create_target(gt, voxel_size)
            weight = self.predictor.create_weight(
                gt, target, mask, voxel_size, region=self._output_in_crop
            )
            for key, data in (("raw", sample["raw"].data), ("gt", gt[output]),
                              ("mask", mask[output]), ("target", target[output]),
                              ("weight", weight[output])):
                _place(stacked, key, i, data, self.batch_size)
        for key in ("target", "weight"):
            stacked[key] = stacked[key].astype(np.float32, copy=False)
        warning, self._warning = self._warning, ""
        return Batch(
            **stacked, input_begins=begins, output_begins=begins + self._margin,
            input_size=self.input_size, output_size=self.output_size, grid_steps=grid_steps,
            warning=warning,
        )


def _place(stacked: dict[str, np.ndarray], key: str, i: int, data: np.ndarray, n: int) -> None:
    """Put sample ``i``'s ``data`` into the batch array ``stacked[key]`` (made at the first
    sample: filling in place costs less than stacking, for every batch), widening its dtype
    when a sample needs it (labels of datasets with different dtypes)."""
    array = stacked.get(key)
    if array is None:
        array = stacked[key] = np.empty((n, *data.shape), data.dtype)
    elif not np.can_cast(data.dtype, array.dtype):
        array = stacked[key] = array.astype(np.result_type(array.dtype, data.dtype))
    if data.shape != array.shape[1:]:
        raise ValueError(f"Sample {i} has {key} of shape {data.shape}, not {array.shape[1:]}.")
    array[i] = data
