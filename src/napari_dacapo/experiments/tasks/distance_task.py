"""The distance task: learn signed distances to object boundaries, threshold them into
masks, score the masks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .evaluators.binary_segmentation_evaluator import BinarySegmentationEvaluator
from .losses.mse_loss import MSELoss
from .post_processors.threshold_post_processor import DISTANCE_THRESHOLDS, ThresholdPostProcessor
from .predictors.distance_predictor import DistancePredictor
from .task import Task

if TYPE_CHECKING:
    from .distance_task_config import DistanceTaskConfig


class DistanceTask(Task):
    """:class:`DistancePredictor` targets, :class:`MSELoss`, a threshold sweep around 0
    (:data:`DISTANCE_THRESHOLDS`) and :class:`BinarySegmentationEvaluator` per channel.

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
        self.post_processor = ThresholdPostProcessor(DISTANCE_THRESHOLDS)
        self.evaluator = BinarySegmentationEvaluator(
            clip_distance=task_config.clip_distance,
            tol_distance=task_config.tol_distance,
            channels=task_config.channels,
        )
