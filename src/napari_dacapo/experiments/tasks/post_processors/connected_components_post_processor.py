"""Instances from a float prediction: threshold it, then label the connected components.

This turns any map that is high inside objects (signed or inner distances, probabilities)
into an instance segmentation. Objects count as connected through faces only (4-connected
in 2D, 6-connected in 3D), so two objects that meet at a corner stay apart.

Raising the threshold of a signed distance erodes the objects, and with them the bridges
between touching objects: the sweep lets validation find the threshold that separates
objects best (instance scores) next to the one that delineates them best (binary scores).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

from .post_processor_parameters import PostProcessorParameters
from .threshold_post_processor import (
    DISTANCE_THRESHOLDS,
    ThresholdPostProcessor,
    ThresholdPostProcessorParameters,
)


def connected_components(mask: np.ndarray, min_size: int = 1) -> np.ndarray:
    """Face-connected components of boolean ``mask`` as uint64 labels 1..n in raster order
    (0 = background); components of fewer than ``min_size`` voxels become background."""
    labels, count = ndimage.label(mask)
    labels = labels.astype(np.uint64)
    if min_size > 1 and count:
        keep = np.bincount(labels.ravel()) >= min_size
        keep[0] = False
        # Surviving components keep their order and get consecutive ids.
        labels = (np.cumsum(keep) * keep).astype(np.uint64)[labels]
    return labels


@dataclasses.dataclass(frozen=True)
class ConnectedComponentsPostProcessorParameters(ThresholdPostProcessorParameters):
    """One threshold of the sweep, and the smallest object kept (in voxels), so that a
    stored parameter set alone reproduces its segmentation."""

    min_size: int = 1


class ConnectedComponentsPostProcessor(ThresholdPostProcessor):
    """Connected components of ``prediction > threshold``, channel by channel.

    The result is uint64 labels: ``(*spatial)`` for a one-channel prediction, so that it
    shows as one napari Labels layer, and ``(C, *spatial)`` for several channels, each
    labelled on its own. Ids are 1..n per channel in raster order, so the result is
    deterministic. Parameter sets have ids 0, 1, ... in the order of ``thresholds``.

    Parameters
    ----------
    thresholds
        The sweep, in the prediction's value space (see
        :mod:`~.threshold_post_processor`'s constants).
    num_channels
        Label only the first ``num_channels`` channels; None labels all channels.
    min_size
        Components with fewer voxels are dropped (1 keeps every component).
    """

    parameters_type = ConnectedComponentsPostProcessorParameters

    def __init__(
        self,
        thresholds: Sequence[float] = DISTANCE_THRESHOLDS,
        num_channels: int | None = None,
        min_size: int = 1,
    ) -> None:
        super().__init__(thresholds, num_channels)
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise ValueError(
                f"min_size must be a whole number of voxels of at least 1, got {min_size!r}; "
                "use 1 to keep every component."
            )
        self.min_size = min_size

    def enumerate_parameters(self) -> Iterable[ConnectedComponentsPostProcessorParameters]:
        for i, threshold in enumerate(self.thresholds):
            yield ConnectedComponentsPostProcessorParameters(
                id=i, threshold=threshold, min_size=self.min_size
            )

    def process(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        """Label the components of ``prediction`` ``(C, *spatial)`` above the threshold."""
        masks = super().process(prediction, parameters)
        assert isinstance(parameters, ConnectedComponentsPostProcessorParameters)
        labels = np.stack([connected_components(m, parameters.min_size) for m in masks])
        return labels[0] if len(labels) == 1 else labels
