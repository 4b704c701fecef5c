"""Binary and instance scores of per-channel label images, for distance tasks whose
post-processing yields instances (connected components of a thresholded distance).

Every channel gets the binary criteria of
:mod:`~.binary_segmentation_evaluator` (from ``labels != 0``) and the instance criteria of
:mod:`~.instance_evaluator` (from the labels), both named ``"<channel>__<criterion>"``. The
instance variation of information is called ``instance_voi`` there, since ``voi`` is the
binary one (as in DaCapo); the other instance names (``voi_split``, ``voi_merge``,
``adapted_rand_error``, ``object_precision``, ``object_recall``, ``object_f1``) are unique.
Empty masks give the values documented in both modules.

Ground-truth objects: distinct ids are distinct objects, so touching objects of a napari
Labels layer stay apart. A channel whose foreground holds a single id (a binary mask, or
one class of a class image) cannot tell its objects apart by id; its objects are then its
connected components, as the post-processor finds them in the prediction.
"""

from __future__ import annotations

import numpy as np
from funlib.geometry import Coordinate

from ..post_processors.connected_components_post_processor import connected_components
from .binary_segmentation_evaluator import BinarySegmentationEvaluator
from .instance_evaluator import INSTANCE_CRITERIA, instance_scores

#: Instance criterion -> its per-channel name (only where it would clash with a binary one).
INSTANCE_NAMES: dict[str, str] = {name: name for name in INSTANCE_CRITERIA} | {
    "voi": "instance_voi"
}


def ground_truth_objects(labels: np.ndarray) -> np.ndarray:
    """Objects of one ground-truth channel: its ids, or its connected components when its
    foreground holds a single id (see the module docstring)."""
    foreground = labels[labels != 0]
    if foreground.size == 0 or (foreground == foreground[0]).all():
        return connected_components(labels != 0)
    return labels


class BinaryAndInstanceEvaluator(BinarySegmentationEvaluator):
    """Score label images ``(C, *spatial)`` (or ``(*spatial)`` for one channel) as binary
    masks and as instances, channel by channel.

    Parameters
    ----------
    clip_distance, tol_distance, channels
        As for :class:`BinarySegmentationEvaluator`.
    """

    def channel_criteria(self) -> dict[str, tuple[bool, tuple[float | None, float | None]]]:
        instance = {INSTANCE_NAMES[k]: v for k, v in INSTANCE_CRITERIA.items()}
        return super().channel_criteria() | instance

    def channel_scores(
        self, truth: np.ndarray, test: np.ndarray, known: np.ndarray, voxel_size: Coordinate
    ) -> dict[str, float]:
        values = super().channel_scores(truth, test, known, voxel_size)
        instances = instance_scores(test, ground_truth_objects(truth), known)
        return values | {INSTANCE_NAMES[k]: v for k, v in instances.items()}
