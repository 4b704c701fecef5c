"""Loss of the hot-distance task: binary cross-entropy on the hot half, MSE on the distances."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .loss import Loss, weighted_mean
from .mse_loss import check_same_shape


class HotDistanceLoss(Loss):
    """Weighted BCE-with-logits on the first half of the channels (the binary maps) plus
    weighted MSE on the second half (the signed distances), each normalised by the sum of
    its own weights as :class:`~.mse_loss.MSELoss` is.

    DaCapo applies ``BCELoss`` to weight-multiplied probabilities; here the network outputs
    logits (the predictor's eval activation adds the sigmoid), which is numerically stable,
    and the weights scale the per-voxel losses instead of the inputs.
    """

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_same_shape(self, prediction, target)
        channels = prediction.shape[1]
        if channels % 2:
            raise ValueError(
                f"HotDistanceLoss: the prediction has {channels} channels; it needs an even "
                "number (C binary channels, then C distance channels). Build the model with "
                "the HotDistanceTask."
            )
        c = channels // 2
        prediction, target = prediction.float(), target.float()
        hot = F.binary_cross_entropy_with_logits(prediction[:, :c], target[:, :c], reduction="none")
        distance = (prediction[:, c:] - target[:, c:]) ** 2
        hot_weight = None if weight is None else weight[:, :c]
        distance_weight = None if weight is None else weight[:, c:]
        return weighted_mean(hot, hot_weight) + weighted_mean(distance, distance_weight)
