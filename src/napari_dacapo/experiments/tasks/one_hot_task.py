"""The one-hot task: semantic segmentation into named classes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .evaluators.one_hot_evaluator import OneHotEvaluator
from .losses.cross_entropy_loss import CrossEntropyLoss
from .post_processors.argmax_post_processor import ArgmaxPostProcessor
from .predictors.one_hot_predictor import OneHotPredictor
from .task import Task

if TYPE_CHECKING:
    from .one_hot_task_config import OneHotTaskConfig


class OneHotTask(Task):
    """:class:`OneHotPredictor` (class-balanced weights), :class:`CrossEntropyLoss`,
    :class:`ArgmaxPostProcessor` and the :class:`OneHotEvaluator`.

    DaCapo's one-hot task trains with an L1 placeholder loss and reports random scores; this
    one trains and scores for real.

    Parameters
    ----------
    task_config
        The :class:`OneHotTaskConfig` to build from.
    """

    def __init__(self, task_config: OneHotTaskConfig) -> None:
        self.predictor = OneHotPredictor(
            classes=task_config.classes, kernel_size=task_config.head_kernel_size
        )
        self.loss = CrossEntropyLoss()
        self.post_processor = ArgmaxPostProcessor()
        self.evaluator = OneHotEvaluator(task_config.classes)
