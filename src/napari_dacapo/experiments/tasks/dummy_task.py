"""The dummy task: foreground regression, for tests and quick checks of a pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .evaluators.dummy_evaluator import DummyEvaluator
from .losses.dummy_loss import DummyLoss
from .post_processors.dummy_post_processor import DummyPostProcessor
from .predictors.dummy_predictor import DummyPredictor
from .task import Task

if TYPE_CHECKING:
    from .dummy_task_config import DummyTaskConfig


class DummyTask(Task):
    """:class:`DummyPredictor` (foreground on every channel), :class:`DummyLoss` (weighted
    MSE), :class:`DummyPostProcessor` (threshold) and :class:`DummyEvaluator` (foreground
    dice, IoU and accuracy). Small and fast, but every score is real.

    Parameters
    ----------
    task_config
        The :class:`DummyTaskConfig` to build from.
    """

    def __init__(self, task_config: DummyTaskConfig) -> None:
        self.predictor = DummyPredictor(task_config.embedding_dims)
        self.loss = DummyLoss()
        self.post_processor = DummyPostProcessor(task_config.detection_threshold)
        self.evaluator = DummyEvaluator()
