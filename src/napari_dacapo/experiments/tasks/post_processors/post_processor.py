from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np

from .post_processor_parameters import PostProcessorParameters


class PostProcessor(ABC):
    """Turns a network prediction ``(channels, *spatial)`` into a segmentation."""

    @abstractmethod
    def enumerate_parameters(self) -> Iterable[PostProcessorParameters]: ...

    @abstractmethod
    def process(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        ...
