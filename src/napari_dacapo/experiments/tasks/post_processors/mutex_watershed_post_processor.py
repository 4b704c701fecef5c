"""Instance segmentation from predicted affinities by mutex watershed (the ``mwatershed``
package), with a bias sweep; the affinities task's default post-processor.

Mutex watershed (Wolf et al., 2018) treats every affinity as a signed edge between a voxel
and its neighbour at the channel's offset, and goes through the edges from the strongest
to the weakest: a positive edge joins its two voxels' clusters unless a negative edge
already processed forbids it; a negative edge forbids its two clusters from ever joining.
There are no seeds and no thresholds on cluster size, and the result is deterministic.

Edge weights, for an affinity ``a`` in ``[0, 1]`` and the swept ``bias`` ``b``:

- nearest-neighbour offsets (one step along one axis): ``a - b``, attractive where the
  network is more sure than ``b`` that both voxels belong together, repulsive elsewhere;
- longer offsets: ``min(a - b, 0)``, repulsive only. A long edge skips the voxels between
  its ends, so letting it attract could join two objects across a thin boundary that the
  short edges see; as a repulsion it keeps objects apart where the boundary between them
  is blurred (standard practice: short range attracts, long range repels).

The sweep tries ``b`` = 0.1, 0.2, ..., 0.9 (in mwatershed's additive terms, biases -0.1 to
-0.9): low biases merge more, high biases split more.

Background (0): a voxel joined to no neighbour (all its affinities below ``b``, or every
join forbidden), and, as in DaCapo, every object whose mean affinity is below ``b`` (the
mean over its voxels of each voxel's mean nearest-neighbour affinity). Noise in the
background makes small fragments whose few joining edges barely pass ``b``; their mean
affinity does not, so they are dropped. Objects one voxel thin have a mean affinity near
0.5 (high along, low across) and vanish at the highest biases.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage.segmentation import relabel_sequential

from .affinities_post_processor import AffinitiesPostProcessor, BiasParameters, is_nearest
from .agglom_process import agglom
from .post_processor_parameters import PostProcessorParameters


@dataclasses.dataclass(frozen=True)
class MutexWatershedPostProcessorParameters(BiasParameters):
    """``bias``: nearest-neighbour affinities above it join voxels, affinities below it
    (at any offset) keep them apart. Higher values split more."""


class MutexWatershedPostProcessor(AffinitiesPostProcessor):
    """Objects from affinities ``(C, *spatial)`` in ``[0, 1]`` (the first ``len(offsets)``
    channels; later channels such as LSDs are ignored), as uint64 labels ``(*spatial)``
    with ids 1..n (0 = background). See the module docstring for the edge weights and the
    background.

    Parameters
    ----------
    offsets
        The affinities task's neighborhood, in the order of the prediction's channels; the
        one-step offsets attract and repel, the longer ones only repel.
    """

    parameters_type = MutexWatershedPostProcessorParameters

    def process(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        affinities = self.affinities(prediction, parameters)
        assert isinstance(parameters, MutexWatershedPostProcessorParameters)
        # mwatershed takes float64 only; the subtraction makes the needed copy.
        weights = affinities.astype(np.float64) - parameters.bias
        for c, offset in enumerate(self.offsets):
            if not is_nearest(offset):
                np.minimum(weights[c], 0.0, out=weights[c])
        # mwatershed holds the GIL: from a worker thread (napari's), a large agglomeration
        # runs in a child process, so that the GUI thread is not stalled for seconds.
        labels = agglom(weights, self.offsets).astype(np.intp)
        # Objects with a mean affinity below the bias become background.
        mean = self.nearest_edge_statistics(affinities)[0]
        affinity_sum = np.bincount(labels.ravel(), weights=mean.ravel())
        faint = affinity_sum < parameters.bias * np.bincount(labels.ravel())
        faint[0] = True
        labels[faint[labels]] = 0
        # mwatershed's ids depend on voxel indices; consecutive ids read better.
        return relabel_sequential(labels)[0].astype(np.uint64)
