"""Inner distances (DaCapo's ``InnerDistancePredictor``): how deep inside its own object a
voxel lies."""

from __future__ import annotations

import numpy as np
from funlib.geometry import Coordinate

from .distance_predictor import ClippedDistancePredictor, inner_distances


class InnerDistancePredictor(ClippedDistancePredictor):
    """Predict ``tanh(d / scale_factor)`` inside objects and 0 outside, per channel.

    ``d`` is the world-unit distance of an object voxel to the boundary of *its own* object
    (touching objects end at each other), clipped to ``clip_distance``. As in DaCapo, the
    value is not normalised per object: a large object's centre gets a larger target than a
    small one's, which lets a watershed or threshold split objects at their narrow necks.
    Ground truth may come in any form :func:`~.distance_predictor.channel_labels` accepts.

    Parameters are those of :class:`~.distance_predictor.ClippedDistancePredictor`.
    """

    def create_target(self, gt: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        depth = np.minimum(inner_distances(self.labels(gt, voxel_size), voxel_size),
                           self.clip_distance)
        return np.tanh(depth / self.scale_factor).astype(np.float32)
