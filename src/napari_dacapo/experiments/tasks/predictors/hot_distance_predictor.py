"""One-hot plus signed distance (DaCapo's ``HotDistancePredictor``): a binary map per class,
learned next to the class's signed distance as an auxiliary task."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from funlib.geometry import Coordinate

from .distance_predictor import DistancePredictor, known_region
from .predictor import Predictor


class SigmoidFirstChannels(torch.nn.Module):
    """Sigmoid on the first ``num_channels`` channels (axis 1), identity on the rest."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hot, rest = x[:, : self.num_channels], x[:, self.num_channels :]
        return torch.cat([torch.sigmoid(hot), rest], dim=1)


class HotDistancePredictor(Predictor):
    """Predict, for ``C`` classes, ``2 * C`` channels: ``C`` binary ("hot") maps, then the
    ``C`` signed-distance maps of :class:`DistancePredictor`.

    The hot channels are trained as logits (binary cross-entropy), so in eval mode a sigmoid
    turns them into probabilities; the distance channels stay in ``[-1, 1]``. Channel names
    are ``"<class>_hot"`` then ``"<class>_distance"``, and ``embedding_dims`` is ``2 * C``
    everywhere (DaCapo doubles the names without telling them apart).

    Parameters
    ----------
    channels
        Names of the classes.
    scale_factor, mask_distances, clip_distance, clipmin, clipmax
        As for :class:`DistancePredictor` (which makes the distance half). The hot half is
        weighted with the same class balance but is never distance-masked: whether a known
        voxel is foreground does not depend on what lies beyond the known region.
    """

    def __init__(
        self,
        channels: Sequence[str],
        scale_factor: float,
        mask_distances: bool,
        clip_distance: float,
        clipmin: float = 0.05,
        clipmax: float = 0.95,
    ) -> None:
        self.distance = DistancePredictor(
            channels, scale_factor, mask_distances, clip_distance, clipmin, clipmax
        )

    @property
    def classes(self) -> list[str]:
        """The class names, one per hot channel and one per distance channel."""
        return self.distance.channels

    @property
    def channels(self) -> list[str]:
        return [f"{c}_hot" for c in self.classes] + [f"{c}_distance" for c in self.classes]

    def eval_activation(self) -> torch.nn.Module:
        return SigmoidFirstChannels(len(self.classes))

    #: Its hot channels are voxel-wise and its distance channels a DistancePredictor's.
    precomputable_target = True

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        return self.distance.padding(gt_voxel_size)

    def create_target(self, gt: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        hot = self.distance.labels(gt, voxel_size) != 0
        distance = self.distance.create_target(gt, voxel_size)
        return np.concatenate([hot.astype(np.float32), distance])

    def create_weight(
        self,
        gt: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray | None,
        voxel_size: Coordinate,
        region: tuple[slice, ...] | None = None,
    ) -> np.ndarray:
        d = self.distance
        labels = d.labels(gt, voxel_size)
        # The hot half is never distance-masked: only the mask limits where it is known.
        hot = d.balanced_weights(labels, known_region(mask, labels.shape), region)
        distance = d.create_weight(gt, target[len(self.classes) :], mask, voxel_size, region)
        return np.concatenate([hot, distance])
