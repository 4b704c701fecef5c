"""Post-processing of the dummy task."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from .post_processor import PostProcessor
from .post_processor_parameters import PostProcessorParameters


@dataclasses.dataclass(frozen=True)
class DummyPostProcessorParameters(PostProcessorParameters):
    """A threshold on the predicted foreground."""

    threshold: float = 0.5


class DummyPostProcessor(PostProcessor):
    """Foreground where the mean over channels exceeds the task's ``detection_threshold``:
    ``(C, *spatial)`` becomes uint8 ``(*spatial)`` with 1 = foreground."""

    def __init__(self, detection_threshold: float = 0.5) -> None:
        self.detection_threshold = detection_threshold

    def enumerate_parameters(self) -> Iterable[DummyPostProcessorParameters]:
        yield DummyPostProcessorParameters(id=0, threshold=self.detection_threshold)

    def process(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        assert isinstance(parameters, DummyPostProcessorParameters)
        return (prediction.mean(axis=0) > parameters.threshold).astype(np.uint8)
