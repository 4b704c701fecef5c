"""The inner distance task: learn how deep inside its own object each voxel lies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .evaluators.binary_segmentation_evaluator import BinarySegmentationEvaluator
from .losses.mse_loss import MSELoss
from .post_processors.threshold_post_processor import (
    INNER_DISTANCE_THRESHOLDS,
    ThresholdPostProcessor,
)
from .predictors.inner_distance_predictor import InnerDistancePredictor
from .task import Task

if TYPE_CHECKING:
    from .inner_distance_task_config import InnerDistanceTaskConfig


class InnerDistanceTask(Task):
    """:class:`InnerDistancePredictor` targets (0 outside objects), :class:`MSELoss`, a
    threshold sweep over small positive values (:data:`INNER_DISTANCE_THRESHOLDS`) and
    :class:`BinarySegmentationEvaluator` per channel.

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
        self.post_processor = ThresholdPostProcessor(INNER_DISTANCE_THRESHOLDS)
        self.evaluator = BinarySegmentationEvaluator(
            clip_distance=task_config.clip_distance,
            tol_distance=task_config.tol_distance,
            channels=task_config.channels,
        )
