from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Loss(ABC):
    """A weighted loss: ``compute(prediction, target, weight)`` on ``(B, C, *spatial)``."""

    @abstractmethod
    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor: ...


def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``sum(values * weight) / sum(weight)``, or the plain mean without weights.

    All-zero weights give a loss of exactly 0 with zero (not NaN) gradients, so a sample
    without known voxels does no harm. Computed in float32 even under bf16 autocast, where
    large sums lose too much precision.
    """
    values = values.float()
    if weight is None:
        return values.mean()
    weight = weight.float()
    total = weight.sum()
    # The clamp only matters when every weight is 0; then the numerator is 0 as well.
    return (values * weight).sum() / total.clamp_min(torch.finfo(total.dtype).tiny)
