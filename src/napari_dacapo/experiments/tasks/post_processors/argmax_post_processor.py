"""Semantic labels from per-class scores."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from .post_processor import PostProcessor
from .post_processor_parameters import PostProcessorParameters


@dataclasses.dataclass(frozen=True)
class ArgmaxPostProcessorParameters(PostProcessorParameters):
    """The argmax has nothing to tune: a single parameter set."""


class ArgmaxPostProcessor(PostProcessor):
    """The class index with the highest score per voxel: ``(C, *spatial)`` scores become
    ``(*spatial)`` labels, uint8 for up to 256 classes and uint16 beyond."""

    def enumerate_parameters(self) -> Iterable[ArgmaxPostProcessorParameters]:
        yield ArgmaxPostProcessorParameters(id=0)

    def process(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        dtype = np.uint8 if prediction.shape[0] <= 256 else np.uint16
        return np.argmax(prediction, axis=0).astype(dtype)
