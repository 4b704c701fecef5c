"""Inner distances (DaCapo's ``InnerDistancePredictor``): how deep inside its own object a
voxel lies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from funlib.geometry import Coordinate

from .distance_predictor import (
    balanced_channel_weights,
    channel_labels,
    check_distance_parameters,
    clip_padding,
    inner_distances,
    known_region,
)
from .predictor import Predictor


class InnerDistancePredictor(Predictor):
    """Predict ``tanh(d / scale_factor)`` inside objects and 0 outside, per channel.

    ``d`` is the world-unit distance of an object voxel to the boundary of *its own* object
    (touching objects end at each other), clipped to ``clip_distance``. As in DaCapo, the
    value is not normalised per object: a large object's centre gets a larger target than a
    small one's, which lets a watershed or threshold split objects at their narrow necks.
    Ground truth may come in any form :func:`~.distance_predictor.channel_labels` accepts.

    Parameters
    ----------
    channels
        Names of the classes, one output channel each.
    scale_factor
        World-unit distance at which the target reaches ``tanh(1) ~ 0.76``.
    clip_distance
        Distances are clipped to ``clip_distance`` (world units).
    clipmin, clipmax
        Bounds on the class fractions used to balance foreground against background.
    """

    def __init__(
        self,
        channels: Sequence[str],
        scale_factor: float,
        clip_distance: float,
        clipmin: float = 0.05,
        clipmax: float = 0.95,
    ) -> None:
        check_distance_parameters(
            channels=channels, scale_factor=scale_factor, clip_distance=clip_distance,
            clipmin=clipmin, clipmax=clipmax,
        )
        self._channels = list(channels)
        self.scale_factor = float(scale_factor)
        self.clip_distance = float(clip_distance)
        self.clipmin = float(clipmin)
        self.clipmax = float(clipmax)

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        return clip_padding(self.clip_distance, gt_voxel_size)

    def create_target(self, gt: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        labels = channel_labels(gt, len(self._channels), len(voxel_size))
        depth = np.minimum(inner_distances(labels, voxel_size), self.clip_distance)
        return np.tanh(depth / self.scale_factor).astype(np.float32)

    def create_weight(
        self,
        gt: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray | None,
        voxel_size: Coordinate,
        region: tuple[slice, ...] | None = None,
    ) -> np.ndarray:
        """Foreground/background-balanced weights, 0 where ``mask`` is 0."""
        labels = channel_labels(gt, len(self._channels), len(voxel_size))
        known = known_region(mask, labels.shape)
        return balanced_channel_weights(
            labels != 0, known, self.clipmin, self.clipmax, region
        )
