"""Loss of the affinities task: weighted BCE on affinities, weighted MSE on LSDs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .loss import Loss, weighted_mean
from .mse_loss import check_same_shape


class AffinitiesLoss(Loss):
    """Binary cross entropy (from logits) on the first ``num_affinities`` channels plus, when
    there are more channels (local shape descriptors), ``lsds_to_affs_weight_ratio`` times
    the mean squared error between their sigmoid and the descriptors.

    Each part is weighted voxel by voxel and normalised by the sum of its weights, so masked
    and out-of-crop voxels (weight 0) never count. DaCapo drops the weights when there are no
    LSD channels; here they always apply.

    Parameters
    ----------
    num_affinities
        Number of affinity channels (the neighborhood's length); later channels are LSDs.
    lsds_to_affs_weight_ratio
        Weight of the LSD part relative to the affinity part.
    """

    def __init__(self, num_affinities: int, lsds_to_affs_weight_ratio: float = 1) -> None:
        self.num_affinities = num_affinities
        self.lsds_to_affs_weight_ratio = lsds_to_affs_weight_ratio

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        n = self.num_affinities
        check_same_shape(self, prediction, target)
        prediction = prediction.float()
        affs = F.binary_cross_entropy_with_logits(
            prediction[:, :n], target[:, :n].float(), reduction="none"
        )
        loss = weighted_mean(affs, None if weight is None else weight[:, :n])
        if prediction.shape[1] > n:
            lsds = (torch.sigmoid(prediction[:, n:]) - target[:, n:].float()) ** 2
            lsd_loss = weighted_mean(lsds, None if weight is None else weight[:, n:])
            loss = loss + self.lsds_to_affs_weight_ratio * lsd_loss
        return loss
