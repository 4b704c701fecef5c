"""Semantic segmentation: one output channel (a logit) per class."""

from __future__ import annotations

from collections.abc import Sequence
import numpy as np
import torch
from funlib.geometry import Coordinate

from .class_balance import balanced_weights
from .distance_predictor import known_region
from .predictor import Predictor

class OneHotPredictor(Predictor):
    """Predicts the class of every voxel; ``gt`` holds class indices ``0 .. n - 1``.

    The network outputs one logit per class. The target is *not* one-hot encoded: it is the
    class index, stored as float32 in a ``(1, *spatial)`` array (the trainer's targets are
    float32), which the cross-entropy loss turns back into integers. The weight
    ``(1, *spatial)`` balances the classes present in the sample (inverse frequency, averaging
    one over known voxels) and is zero where the mask is 0.

    Class 0 is a real class (usually background): voxels whose class is unknown must be
    excluded through the mask.

    Parameters
    ----------
    classes
        Class names; index ``i`` in ``gt`` means ``classes[i]``.
    kernel_size
        Size of the prediction head's convolution (odd; zero-padded, so the output keeps
        the body's spatial shape).
    """

    def __init__(self, classes: Sequence[str], kernel_size: int = 1) -> None:
        self.classes = list(classes)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"OneHotPredictor kernel_size must be an odd number >= 1, got {kernel_size}; "
                "use 1 (the default) or 3."
            )
        self.head_kernel_size = kernel_size

    @property
    def channels(self) -> list[str]:
        return self.classes

    def eval_activation(self) -> torch.nn.Module:
        return torch.nn.Softmax(dim=1)

    def create_target(self, gt: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        if gt.size and (gt.min() < 0 or gt.max() >= len(self.classes)):
            bad = gt.max() if gt.max() >= len(self.classes) else gt.min()
            raise ValueError(
                f"gt holds the value {bad}, but the task has "
                f"{len(self.classes)} classes ({', '.join(self.classes)}) and the labels "
                f"must be class indices 0..{len(self.classes) - 1}; add the missing classes "
                "to the task config or relabel the ground truth."
            )
        return gt.astype(np.float32)[np.newaxis]

    def create_weight(
        self,
        gt: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray,
        voxel_size: Coordinate,
        region: tuple[slice, ...] | None = None,
    ) -> np.ndarray:
        classes = target[0].astype(np.intp)
        known = known_region(mask, target.shape)[0]
        return balanced_weights(classes, known, len(self.classes), region=region)[np.newaxis]
