"""Semantic segmentation: one output channel (a logit) per class."""

from __future__ import annotations

from collections.abc import Sequence
import numpy as np
import torch
from funlib.geometry import Coordinate

from .class_balance import balanced_weights
from .distance_predictor import known_region
from .predictor import Predictor

class ClassIndexError(ValueError):
    """Labels hold a value that is no class index of a one-hot task.

    The message names the labels as ``labels`` (default "The labels"); a caller that
    knows the name the user gave them (a napari layer, an array) says it with
    :meth:`naming`.

    Attributes
    ----------
    value
        The value found (the highest, or a negative one).
    classes
        The task's class names, index ``i`` meaning ``classes[i]``.
    """

    def __init__(self, value: int, classes: Sequence[str], labels: str = "The labels") -> None:
        self.value, self.classes, self.labels = int(value), list(classes), labels
        super().__init__(class_index_problem(self.value, self.classes, labels))

    def naming(self, labels: str) -> ClassIndexError:
        """The same problem, the labels called ``labels`` (e.g. "Labels 'scribbles'")."""
        return ClassIndexError(self.value, self.classes, labels)

    def __reduce__(self) -> tuple:  # a worker process may pickle it
        return type(self), (self.value, self.classes, self.labels)


def class_index_problem(value: int, classes: Sequence[str], labels: str = "The labels") -> str:
    """Why labels holding ``value`` cannot train a one-hot task of ``classes``, with the
    fix: class indices are 0..n-1, 0 being the first class, so a voxel left unpainted (0)
    is that class wherever the mask (if any) lets it count."""
    n = len(classes)
    first = classes[0] if classes else "the first class"
    unpainted = (f"0 is the first class ({first}), so voxels left unpainted (0) count as "
                 f"{first} unless a mask is picked (1 where the labels are painted)")
    if value == n:  # classes painted 1..n over unpainted 0, as scribbles often are
        fix = (f"If the classes are painted as 1..{n} over unpainted 0, subtract 1 where "
               f"painted and pick a mask of the painted voxels; or add the missing classes "
               f"to the task config")
    elif value > n:
        fix = (f"Relabel them as class indices 0..{n - 1}, or add the missing classes to the "
               f"task config")
    else:
        fix = f"Relabel them as class indices 0..{n - 1}"
    return (
        f"{labels} hold the value {value}, but the task has {n} classes ({', '.join(classes)}) "
        f"and the labels must be class indices 0..{n - 1}: {unpainted}. {fix}."
    )


class OneHotPredictor(Predictor):
    """Predicts the class of every voxel; ``gt`` holds class indices ``0 .. n - 1``.

    The network outputs one logit per class. The target is *not* one-hot encoded: it is the
    class index, stored as float32 in a ``(1, *spatial)`` array (the trainer's targets are
    float32), which the cross-entropy loss turns back into integers. The weight
    ``(1, *spatial)`` balances the classes present in the sample (inverse frequency, averaging
    one over known voxels) and is zero where the mask is 0.

    Class 0 is a real class (usually background): voxels whose class is unknown must be
    excluded through the mask. Other values raise :class:`ClassIndexError`.

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
            raise ClassIndexError(int(bad), self.classes)
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
