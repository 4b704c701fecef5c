"""The hot-distance task: a binary map and a signed distance per class, learned together;
the binary maps are thresholded and scored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .evaluators.binary_segmentation_evaluator import BinarySegmentationEvaluator
from .losses.hot_distance_loss import HotDistanceLoss
from .post_processors.threshold_post_processor import (
    PROBABILITY_THRESHOLDS,
    ThresholdPostProcessor,
)
from .predictors.hot_distance_predictor import HotDistancePredictor
from .task import Task

if TYPE_CHECKING:
    from .hot_distance_task_config import HotDistanceTaskConfig


class HotDistanceTask(Task):
    """:class:`HotDistancePredictor` (``2 * C`` channels), :class:`HotDistanceLoss`, and a
    probability threshold sweep (:data:`PROBABILITY_THRESHOLDS`) over the ``C`` hot channels
    only, scored per class by :class:`BinarySegmentationEvaluator`.

    Parameters
    ----------
    task_config
        The :class:`HotDistanceTaskConfig` to build from.
    """

    def __init__(self, task_config: HotDistanceTaskConfig) -> None:
        self.predictor = HotDistancePredictor(
            channels=task_config.channels,
            scale_factor=task_config.scale_factor,
            mask_distances=task_config.mask_distances,
            clip_distance=task_config.clip_distance,
        )
        self.loss = HotDistanceLoss()
        self.post_processor = ThresholdPostProcessor(
            PROBABILITY_THRESHOLDS, num_channels=len(task_config.channels)
        )
        self.evaluator = BinarySegmentationEvaluator(
            clip_distance=task_config.clip_distance,
            tol_distance=task_config.tol_distance,
            channels=task_config.channels,
        )
