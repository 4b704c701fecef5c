"""Scores of the dummy task."""

from __future__ import annotations

import numpy as np
from funlib.geometry import Coordinate

from .evaluation_scores import EvaluationScores
from .one_hot_evaluator import OneHotEvaluator


class DummyEvaluator(OneHotEvaluator):
    """Foreground detection scores: the binary prediction of the dummy post-processor
    against ``gt != 0``, as a two-class :class:`OneHotEvaluator` (``foreground__dice``,
    ``foreground__iou``, ``background__dice`` ..., ``mean_iou``, ``accuracy``)."""

    def __init__(self) -> None:
        super().__init__(["background", "foreground"])

    def evaluate(
        self,
        prediction: np.ndarray,
        gt: np.ndarray,
        voxel_size: Coordinate,
        mask: np.ndarray | None = None,
    ) -> EvaluationScores:
        return super().evaluate(
            (prediction != 0).astype(np.uint8), (gt != 0).astype(np.uint8), voxel_size, mask
        )
