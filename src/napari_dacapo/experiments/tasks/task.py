"""The Task ABC: what the network predicts, how it is trained, post-processed and scored."""

from __future__ import annotations

from abc import ABC
from collections.abc import Iterable

from ..architectures.architecture import Architecture
from ..model import Model

from .evaluators.evaluation_scores import EvaluationScores
from .evaluators.evaluator import Evaluator
from .losses.loss import Loss
from .post_processors.post_processor import PostProcessor
from .post_processors.post_processor_parameters import PostProcessorParameters
from .predictors.predictor import Predictor


class Task(ABC):
    predictor: Predictor
    loss: Loss
    evaluator: Evaluator
    post_processor: PostProcessor

    @property
    def parameters(self) -> Iterable[PostProcessorParameters]:
        return list(self.post_processor.enumerate_parameters())

    @property
    def evaluation_scores(self) -> EvaluationScores:
        return self.evaluator.score

    def create_model(self, architecture: Architecture) -> Model:
        return self.predictor.create_model(architecture=architecture)
