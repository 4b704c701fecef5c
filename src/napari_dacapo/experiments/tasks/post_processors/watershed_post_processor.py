"""Instance segmentation from predicted affinities by seeded watershed (scikit-image); the
fallback to :mod:`~.mutex_watershed_post_processor`."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from .affinities_post_processor import AffinitiesPostProcessor, BiasParameters
from .post_processor_parameters import PostProcessorParameters

#: A voxel belongs to an object when its affinity to some neighbour reaches this value.
FOREGROUND_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class WatershedPostProcessorParameters(BiasParameters):
    """``bias``: the affinity above which two neighbouring voxels are trusted to belong to
    the same object when growing seeds. Higher values split more."""


class WatershedPostProcessor(AffinitiesPostProcessor):
    """Objects from affinities ``(C, *spatial)`` in ``[0, 1]`` (the first ``len(offsets)``
    channels; later channels such as LSDs are ignored), as uint64 labels ``(*spatial)``.

    Only the nearest-neighbour offsets (one step along one axis) are used:

    1. each voxel's nearest-neighbour edges are gathered
       (:meth:`~.AffinitiesPostProcessor.nearest_edge_statistics`);
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

    parameters_type = WatershedPostProcessorParameters

    def process(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        affinities = self.affinities(prediction, parameters)
        assert isinstance(parameters, WatershedPostProcessorParameters)
        mean, weakest, strongest = self.nearest_edge_statistics(affinities)
        foreground = strongest >= FOREGROUND_THRESHOLD
        seeds, _ = ndimage.label(foreground & (weakest > parameters.bias))
        labels = watershed(1.0 - mean, markers=seeds, mask=foreground, connectivity=1)
        orphans, _ = ndimage.label(foreground & (labels == 0))
        labels = labels.astype(np.uint64)
        is_orphan = orphans > 0
        labels[is_orphan] = orphans[is_orphan].astype(np.uint64) + labels.max()
        return labels
