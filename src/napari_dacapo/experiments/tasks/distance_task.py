"""The distance task: learn signed distances to object boundaries, threshold them into
objects, score them as masks and as instances."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .evaluators.binary_and_instance_evaluator import BinaryAndInstanceEvaluator
from .losses.mse_loss import MSELoss
from .post_processors.connected_components_post_processor import (
    ConnectedComponentsPostProcessor,
)
from .post_processors.threshold_post_processor import DISTANCE_THRESHOLDS
from .predictors.distance_predictor import DistancePredictor
from .task import Task

if TYPE_CHECKING:
    from .distance_task_config import DistanceTaskConfig


class DistanceTask(Task):
    """:class:`DistancePredictor` targets, :class:`MSELoss`, connected components of the
    prediction thresholded around 0 (:data:`DISTANCE_THRESHOLDS`) and, per channel, binary
    and instance scores (:class:`BinaryAndInstanceEvaluator`).

    Parameters
    ----------
    task_config
        The :class:`DistanceTaskConfig` to build from.
    """

    def __init__(self, task_config: DistanceTaskConfig) -> None:
        self.predictor = DistancePredictor(
            channels=task_config.channels,
            scale_factor=task_config.scale_factor,
            mask_distances=task_config.mask_distances,
            clip_distance=task_config.clip_distance,
            clipmin=task_config.clipmin,
            clipmax=task_config.clipmax,
        )
        self.loss = MSELoss()
        self.post_processor = ConnectedComponentsPostProcessor(DISTANCE_THRESHOLDS)
        self.evaluator = BinaryAndInstanceEvaluator(
            clip_distance=task_config.clip_distance,
            tol_distance=task_config.tol_distance,
            channels=task_config.channels,
        )
