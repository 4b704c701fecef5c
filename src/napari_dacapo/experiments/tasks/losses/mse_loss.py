"""Weighted mean squared error, the loss of the distance tasks."""

from __future__ import annotations

import torch

from .loss import Loss, weighted_mean


def check_same_shape(loss: Loss, prediction: torch.Tensor, target: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``loss`` if prediction and target shapes differ."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"{type(loss).__name__}: prediction {tuple(prediction.shape)} and target "
            f"{tuple(target.shape)} differ; the model's head must output one channel per "
            "target channel (build the model with task.create_model)."
        )


class MSELoss(Loss):
    """``sum(w * (p - t)**2) / sum(w)`` over the whole batch (all channels and voxels).

    Normalising by the total weight keeps the loss a weighted *mean*, on the same scale
    whatever the fraction of masked voxels; a batch whose weights are all 0 gives exactly 0
    with zero gradients (not NaN). Without weights it is the plain mean. DaCapo's MSELoss
    instead multiplies prediction and target by the weight, which squares the weights.
    """

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_same_shape(self, prediction, target)
        return weighted_mean((prediction.float() - target.float()) ** 2, weight)
