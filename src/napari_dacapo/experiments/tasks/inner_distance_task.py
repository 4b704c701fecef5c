"""The inner distance task: learn how deep inside its own object each voxel lies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .evaluators.binary_and_instance_evaluator import BinaryAndInstanceEvaluator
from .losses.mse_loss import MSELoss
from .post_processors.connected_components_post_processor import (
    ConnectedComponentsPostProcessor,
)
from .post_processors.threshold_post_processor import INNER_DISTANCE_THRESHOLDS
from .predictors.inner_distance_predictor import InnerDistancePredictor
from .task import Task

if TYPE_CHECKING:
    from .inner_distance_task_config import InnerDistanceTaskConfig


class InnerDistanceTask(Task):
    """:class:`InnerDistancePredictor` targets (0 outside objects), :class:`MSELoss`,
    connected components of the prediction thresholded at small positive values
    (:data:`INNER_DISTANCE_THRESHOLDS`; the values drop towards every object's own boundary,
    so higher thresholds split touching objects) and, per channel, binary and instance
    scores (:class:`BinaryAndInstanceEvaluator`).

    Parameters
    ----------
    task_config
        The :class:`InnerDistanceTaskConfig` to build from.
    """

    def __init__(self, task_config: InnerDistanceTaskConfig) -> None:
        self.predictor = InnerDistancePredictor(
            channels=task_config.channels,
            scale_factor=task_config.scale_factor,
            clip_distance=task_config.clip_distance,
        )
        self.loss = MSELoss()
        self.post_processor = ConnectedComponentsPostProcessor(INNER_DISTANCE_THRESHOLDS)
        self.evaluator = BinaryAndInstanceEvaluator(
            clip_distance=task_config.clip_distance,
            tol_distance=task_config.tol_distance,
            channels=task_config.channels,
        )
