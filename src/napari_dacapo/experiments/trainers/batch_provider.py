"""Training batches from datasets: sample, read, augment, make targets, crop, stack.

Geometry (world units): the network reads ``input_size = input_shape * raw voxel size`` and
predicts ``output_size = output_shape * output voxel size`` centred in it. A sample is
centred on an annotated voxel; its input ROI must lie inside the dataset's sampling region
(the raw data, intersected with the ground truth's ROI when ``clip_raw``). Augments that
need context read beyond the input ROI; where that context leaves the region, raw is
mirrored at the border and labels are unknown (mask 0). Ground truth and mask are read over
the whole input ROI (zero, i.e. unknown, outside their ROI) so that targets such as
distances or affinities are computed after augmentation with their surroundings, then
cropped to the output ROI.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate, Roi

from napari_dacapo.experiments.datasplits.datasets.arrays.array import raw_as_float32

from .augments.augment import AugmentPipeline, Augment, Sample, SampleArray
from .sampling import CentreSampler, annotated

if TYPE_CHECKING:
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import Array
    from napari_dacapo.experiments.datasplits.datasets.dataset import Dataset
    from napari_dacapo.experiments.model import Model
    from napari_dacapo.experiments.tasks.predictors.predictor import Predictor

__all__ = ["Batch", "BatchProvider", "SAMPLE_TRIES"]

logger = logging.getLogger(__name__)

#: Locations tried per sample before one below ``min_masked`` is accepted.
SAMPLE_TRIES = 50


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
    input_rois, output_rois
        World ROI of each sample's input and output (before augmentation).
    """

    raw: np.ndarray
    gt: np.ndarray
    mask: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    input_rois: list[Roi]
    output_rois: list[Roi]


class _Source:
    """One dataset with its sampling region and centre sampler."""

    def __init__(self, dataset: Dataset, region: Roi, sampler: CentreSampler) -> None:
        self.dataset = dataset
        self.region = region
        self.sampler = sampler


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
    ) -> None:
        if not datasets:
            raise ValueError("No training dataset was given. Add one to the datasplit.")
        self.datasets = list(datasets)
        self.predictor = predictor
        self.batch_size = batch_size
        self.min_masked = min_masked
        self.clip_raw = clip_raw
        self.rng = rng if rng is not None else np.random.default_rng()
        self._warned_min_masked = False

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
        grid = Coordinate(
            math.lcm(int(a), int(b)) for a, b in zip(self.raw_voxel_size, self.output_voxel_size)
        )
        self.pipeline = AugmentPipeline(augments, self.input_size, self.raw_voxel_size, grid)
        self.sources = [self._source(d, sample_from) for d in self.datasets]
        weights = np.asarray([float(getattr(d, "weight", 1.0)) for d in self.datasets])
        if np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(
                f"Dataset weights {weights.tolist()} must be >= 0 with a positive sum. Give "
                f"every training dataset a positive weight."
            )
        self.probabilities = weights / weights.sum()

    # -- set-up ----------------------------------------------------------------------------

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

    # -- one sample ------------------------------------------------------------------------

    def _rois(self, source: _Source, centre: Coordinate) -> tuple[Roi, Roi]:
        """Input and output ROI of a sample whose output has ``centre`` at its middle voxel."""
        raw = source.dataset.raw
        start = centre - self.half_output - self.margin - raw.offset
        begin = (start // raw.voxel_size) * raw.voxel_size + raw.offset
        return Roi(begin, self.input_size), Roi(begin + self.margin, self.output_size)

    def _known(self, source: _Source, roi: Roi) -> np.ndarray:
        """Mask over ``roi`` on the ground truth grid: 1 where labels are known (inside the
        ground truth's ROI and, if the dataset has one, its mask)."""
        dataset = source.dataset
        gt: Array = dataset.gt  # type: ignore[assignment]
        known = np.zeros(tuple(roi.shape / gt.voxel_size), dtype=np.uint8)
        inside = roi.intersect(gt.roi)
        if not inside.empty:
            known[_slices(inside, roi.begin, gt.voxel_size)] = 1
        if dataset.mask is not None:
            known &= annotated(dataset.mask.read(roi, fill=0), dataset.mask.channel_dims)
        return known

    def _read(self, source: _Source, roi: Roi) -> Sample:
        dataset = source.dataset
        gt: Array = dataset.gt  # type: ignore[assignment]
        raw = _read_padded(dataset.raw, roi, source.region)
        if dataset.raw.channel_dims == 0:
            raw = raw[None]
        return {
            "raw": SampleArray(raw_as_float32(raw), dataset.raw.voxel_size, True),
            "gt": SampleArray(gt.read(roi, fill=0), gt.voxel_size, False),
            "mask": SampleArray(self._known(source, roi), gt.voxel_size, False),
        }

    def sample(self) -> tuple[Sample, Roi, Roi]:
        """One augmented sample (input-sized), with its input and output ROI.

        A location whose output region is annotated below ``min_masked`` is drawn again
        (checked before augmentation, as DaCapo's ``Reject``, so that a retry costs only a
        mask read), up to :data:`SAMPLE_TRIES` times; then the last one is used and a
        warning logged once.
        """
        rng = self.rng
        for _ in range(SAMPLE_TRIES):
            source = self.sources[rng.choice(len(self.sources), p=self.probabilities)]
            input_roi, output_roi = self._rois(source, source.sampler.sample(rng))
            fraction = float(self._known(source, output_roi).mean())
            if fraction >= self.min_masked:
                break
        else:
            if not self._warned_min_masked:
                logger.warning(
                    "No location among %d tries had %.0f%% of its output annotated "
                    "(min_masked); using locations with less (last: %.1f%%). Annotate more "
                    "densely or lower min_masked. This warning is shown once.",
                    SAMPLE_TRIES, 100 * self.min_masked, 100 * fraction,
                )
                self._warned_min_masked = True
        read_roi = input_roi.grow(self.pipeline.context, self.pipeline.context)
        sample = self.pipeline(self._read(source, read_roi), rng)
        return sample, input_roi, output_roi

    def _crop_output(self, data: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        """The output region of an input-sized array (with any leading channel axes)."""
        begin = self.margin / voxel_size
        shape = self.output_size / voxel_size
        spatial = tuple(slice(int(b), int(b + s)) for b, s in zip(begin, shape))
        return data[(Ellipsis,) + spatial]

    def batch(self) -> Batch:
        """A batch of ``batch_size`` samples with targets and weights."""
        keys = ("raw", "gt", "mask", "target", "weight")
        entries: dict[str, list[np.ndarray]] = {key: [] for key in keys}
        input_rois, output_rois = [], []
        for _ in range(self.batch_size):
            sample, input_roi, output_roi = self.sample()
            gt, mask = sample["gt"], sample["mask"]
            target = self.predictor.create_target(gt.data, gt.voxel_size)
            weight = self.predictor.create_weight(gt.data, target, mask.data, gt.voxel_size)
            entries["raw"].append(sample["raw"].data)
            for key, data in (("gt", gt.data), ("mask", mask.data), ("target", target),
                              ("weight", weight)):
                entries[key].append(self._crop_output(data, gt.voxel_size))
            input_rois.append(input_roi)
            output_rois.append(output_roi)
        stacked = {k: np.stack(v) for k, v in entries.items()}
        for key in ("target", "weight"):
            stacked[key] = stacked[key].astype(np.float32, copy=False)
        return Batch(**stacked, input_rois=input_rois, output_rois=output_rois)


def _slices(roi: Roi, origin: Coordinate, voxel_size: Coordinate) -> tuple[slice, ...]:
    """Voxel slices of ``roi`` in an array that starts at world ``origin``."""
    begin = (roi.begin - origin) / voxel_size
    return tuple(slice(int(b), int(b + s)) for b, s in zip(begin, roi.shape / voxel_size))


def _read_padded(array: Array, roi: Roi, region: Roi) -> np.ndarray:
    """``array`` over ``roi``; the part outside ``region`` mirrors the data at its border."""
    inside = roi.intersect(region)
    data = array[inside]
    if inside == roi:
        return data
    before = (inside.begin - roi.begin) / array.voxel_size
    after = (roi.end - inside.end) / array.voxel_size
    pad = [(0, 0)] * array.channel_dims + [(int(b), int(a)) for b, a in zip(before, after)]
    # Reflection needs two voxels on an axis; a single plane can only be repeated.
    spatial = data.shape[array.channel_dims :]
    return np.pad(data, pad, mode="reflect" if min(spatial) > 1 else "edge")
