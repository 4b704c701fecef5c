"""Instance segmentation from predicted affinities by seeded watershed."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from napari_dacapo.experiments.tasks.predictors.affinities_predictor import offset_slices

from .post_processor import PostProcessor
from .post_processor_parameters import PostProcessorParameters

#: A voxel belongs to an object when its affinity to some neighbour reaches this value.
FOREGROUND_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class WatershedPostProcessorParameters(PostProcessorParameters):
    """``bias``: the affinity above which two neighbouring voxels are trusted to belong to
    the same object when growing seeds. Higher values split more."""

    bias: float = 0.5


class WatershedPostProcessor(PostProcessor):
    """Objects from affinities ``(C, *spatial)`` in ``[0, 1]`` (the first ``len(offsets)``
    channels; later channels such as LSDs are ignored), as uint64 labels ``(*spatial)``.

    Only the nearest-neighbour offsets (one step along one axis) are used:

    1. each voxel's nearest-neighbour edges are gathered (an edge ``(v, v + o)`` is stored
       at ``v`` and counts for both ends);
    2. foreground: voxels with at least one edge of affinity 0.5 or more, i.e. likely in the
       same object as some neighbour (this keeps one-voxel-thin objects; isolated single
       voxels are dropped);
    3. seeds: connected foreground voxels all of whose edges exceed ``bias`` (so a seed never
       crosses a low-affinity border between two objects);
    4. the seeds flood the foreground over ``1 - mean edge affinity`` (skimage's watershed);
       foreground pieces that no seed reaches (thin objects) become objects of their own.

    The result is deterministic. The sweep tries ``bias`` 0.1, 0.2, ..., 0.9.

    Parameters
    ----------
    offsets
        The affinities task's neighborhood, in the order of the prediction's channels.
    """

    biases: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 10))

    def __init__(self, offsets: Sequence[Sequence[int]]) -> None:
        self.offsets = [tuple(int(v) for v in o) for o in offsets]
        self.nearest = [
            c for c, o in enumerate(self.offsets) if sum(abs(v) for v in o) == 1
        ]
        if not self.nearest:
            dims = len(self.offsets[0]) if self.offsets else 3
            raise ValueError(
                f"WatershedPostProcessor needs at least one nearest-neighbour offset (one "
                f"step along one axis) in the neighborhood, got {self.offsets}; add e.g. "
                f"{[0] * (dims - 1) + [1]}."
            )

    def enumerate_parameters(self) -> Iterable[WatershedPostProcessorParameters]:
        for i, bias in enumerate(self.biases):
            yield WatershedPostProcessorParameters(id=i, bias=bias)

    def process(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        assert isinstance(parameters, WatershedPostProcessorParameters)
        spatial = prediction.shape[1:]
        if len(spatial) != len(self.offsets[0]) or prediction.shape[0] < len(self.offsets):
            raise ValueError(
                f"WatershedPostProcessor: prediction of shape {prediction.shape} does not hold "
                f"{len(self.offsets)} affinity channels of {len(self.offsets[0])}-D offsets; "
                "post-process the output of the matching affinities model."
            )
        total = np.zeros(spatial, dtype=np.float64)
        count = np.zeros(spatial, dtype=np.int32)
        weakest = np.ones(spatial, dtype=np.float64)
        strongest = np.zeros(spatial, dtype=np.float64)
        for c in self.nearest:
            here, there = offset_slices(spatial, self.offsets[c])
            edge = prediction[c][here]
            for end in (here, there):
                total[end] += edge
                count[end] += 1
                np.minimum(weakest[end], edge, out=weakest[end])
                np.maximum(strongest[end], edge, out=strongest[end])
        mean = total / np.maximum(count, 1)
        foreground = strongest >= FOREGROUND_THRESHOLD
        seeds, _ = ndimage.label(foreground & (weakest > parameters.bias))
        labels = watershed(1.0 - mean, markers=seeds, mask=foreground, connectivity=1)
        orphans, _ = ndimage.label(foreground & (labels == 0))
        labels = labels.astype(np.uint64)
        is_orphan = orphans > 0
        labels[is_orphan] = orphans[is_orphan].astype(np.uint64) + labels.max()
        return labels
