"""Weighted cross entropy for semantic (one-hot) segmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .loss import Loss, weighted_mean


class CrossEntropyLoss(Loss):
    """Cross entropy between logits ``(B, C, *spatial)`` and class indices ``(B, 1, *spatial)``
    (float, as the trainer stores targets), weighted voxel by voxel with ``(B, 1, *spatial)``
    and normalised by the sum of the weights.

    DaCapo's one-hot task trains with an L1 placeholder instead; this is the loss the task
    actually needs.
    """

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        if target.shape[1] != 1 or target.shape[2:] != prediction.shape[2:]:
            raise ValueError(
                f"CrossEntropyLoss: target {tuple(target.shape)} must be class indices of shape "
                f"(B, 1, *spatial) matching the prediction {tuple(prediction.shape)}; use the "
                "OneHotPredictor's targets."
            )
        per_voxel = F.cross_entropy(
            prediction.float(), target[:, 0].round().long(), reduction="none"
        )
        return weighted_mean(per_voxel, None if weight is None else weight[:, 0])
