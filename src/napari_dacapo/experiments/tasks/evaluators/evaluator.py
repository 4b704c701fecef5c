from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from funlib.geometry import Coordinate

from .evaluation_scores import EvaluationScores


class Evaluator(ABC):
    """Scores a post-processed prediction against ground truth."""

    @property
    @abstractmethod
    def score(self) -> EvaluationScores:
        """An empty :class:`EvaluationScores` naming the criteria and their directions."""

    @abstractmethod
    def evaluate(
        self,
        prediction: np.ndarray,
        gt: np.ndarray,
        voxel_size: Coordinate,
        mask: np.ndarray | None = None,
    ) -> EvaluationScores:
        """Score ``prediction`` (the post-processor's output) against labels ``gt``."""
