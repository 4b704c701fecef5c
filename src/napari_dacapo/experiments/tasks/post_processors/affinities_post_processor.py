"""What the post-processors of predicted affinities share: the offsets, the bias sweep and
the checks of the prediction."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import ClassVar

import numpy as np

from ..predictors.affinities_predictor import offset_slices
from .post_processor import PostProcessor
from .post_processor_parameters import PostProcessorParameters

#: The bias sweep, in affinity (probability) space: 0.1, 0.2, ..., 0.9.
BIASES: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 10))


@dataclasses.dataclass(frozen=True)
class BiasParameters(PostProcessorParameters):
    """``bias``: the affinity above which two neighbouring voxels are taken to belong to
    the same object. Higher values split more."""

    bias: float = 0.5


def is_nearest(offset: Sequence[int]) -> bool:
    """Whether ``offset`` is one step along one axis (a face neighbour)."""
    return sum(abs(int(v)) for v in offset) == 1


class AffinitiesPostProcessor(PostProcessor):
    """Base of the affinity agglomerations: the bias sweep :data:`BIASES` (parameter ids
    0..8 in that order) and the offsets of the affinities task's neighborhood.

    Parameters
    ----------
    offsets
        The affinities task's neighborhood, in the order of the prediction's channels; at
        least one must be a one-step offset (nearest neighbours are what joins voxels).
    """

    parameters_type: ClassVar[type[BiasParameters]] = BiasParameters
    biases: tuple[float, ...] = BIASES

    def __init__(self, offsets: Sequence[Sequence[int]]) -> None:
        self.offsets = [tuple(int(v) for v in o) for o in offsets]
        dims = {len(o) for o in self.offsets}
        if len(dims) != 1:
            raise ValueError(
                f"{type(self).__name__} needs offsets with one entry per spatial axis, all of "
                f"the same length, got {self.offsets}; use the affinities task's neighborhood."
            )
        self.nearest = [c for c, o in enumerate(self.offsets) if is_nearest(o)]
        if not self.nearest:
            (n,) = dims
            raise ValueError(
                f"{type(self).__name__} needs at least one nearest-neighbour offset (one "
                f"step along one axis) in the neighborhood, got {self.offsets}; add e.g. "
                f"{[0] * (n - 1) + [1]}."
            )

    def enumerate_parameters(self) -> Iterable[BiasParameters]:
        for i, bias in enumerate(self.biases):
            yield self.parameters_type(id=i, bias=bias)

    def affinities(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        """The affinity channels of ``prediction`` (later ones, such as LSDs, are dropped),
        after checking the prediction and the parameters."""
        if not isinstance(parameters, self.parameters_type):
            raise TypeError(
                f"{type(self).__name__} needs {self.parameters_type.__name__}, got "
                f"{type(parameters).__name__}; use the ones enumerate_parameters() yields."
            )
        prediction = np.asarray(prediction)
        dims = len(self.offsets[0])
        if prediction.ndim != dims + 1 or prediction.shape[0] < len(self.offsets):
            raise ValueError(
                f"{type(self).__name__}: prediction of shape {prediction.shape} does not hold "
                f"{len(self.offsets)} affinity channels of {dims}-D offsets; post-process the "
                "output of the matching affinities model."
            )
        return prediction[: len(self.offsets)]

    def nearest_edge_statistics(
        self, affinities: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per voxel, the mean, weakest and strongest affinity of its nearest-neighbour
        edges (an edge ``(v, v + o)`` is stored at ``v`` and counts for both ends; a voxel
        without edges gets mean 0, weakest 1 and strongest 0)."""
        spatial = affinities.shape[1:]
        total = np.zeros(spatial, dtype=np.float64)
        count = np.zeros(spatial, dtype=np.int32)
        weakest = np.ones(spatial, dtype=np.float64)
        strongest = np.zeros(spatial, dtype=np.float64)
        for c in self.nearest:
            here, there = offset_slices(spatial, self.offsets[c])
            edge = affinities[c][here]
            for end in (here, there):
                total[end] += edge
                count[end] += 1
                np.minimum(weakest[end], edge, out=weakest[end])
                np.maximum(strongest[end], edge, out=strongest[end])
        return total / np.maximum(count, 1), weakest, strongest
