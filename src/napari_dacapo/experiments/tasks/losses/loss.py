from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Loss(ABC):
    """A weighted loss: ``compute(prediction, target, weight)`` on ``(B, C, *spatial)``."""

    @abstractmethod
    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor: ...
