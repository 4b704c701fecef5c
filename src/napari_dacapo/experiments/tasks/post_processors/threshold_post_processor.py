"""Binary masks from a float prediction by thresholding, swept over a few thresholds.

The thresholds are in the float space of the prediction. DaCapo sweeps the single threshold
127 over distance predictions in ``[-1, 1]``, which yields empty masks and NaN scores; the
sweeps here sit around each prediction's own decision value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from .post_processor import PostProcessor
from .post_processor_parameters import PostProcessorParameters

#: Signed distances, ``tanh(d / scale)`` in ``[-1, 1]``: the boundary is at 0; a threshold
#: above 0 erodes the objects, one below 0 dilates them.
DISTANCE_THRESHOLDS: tuple[float, ...] = (-0.5, -0.25, 0.0, 0.25, 0.5)
#: Probabilities in ``[0, 1]`` (after a sigmoid): 0.1 to 0.9, centred on the decision value
#: 0.5; low thresholds favour recall, high ones precision.
PROBABILITY_THRESHOLDS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 10))
#: Inner distances: 0 outside objects and ``tanh(d / scale) > 0`` inside. The first voxel
#: inside gets ``tanh(voxel_size / scale)``, between 0.1 (scale = 10 voxels) and 0.76
#: (scale = 1 voxel), so the sweep spans small positive values.
INNER_DISTANCE_THRESHOLDS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4)


@dataclasses.dataclass(frozen=True)
class ThresholdPostProcessorParameters(PostProcessorParameters):
    """One threshold of the sweep: a voxel is foreground where the prediction is above it."""

    threshold: float


class ThresholdPostProcessor(PostProcessor):
    """``prediction > threshold`` per channel, as uint8 masks ``(C, *spatial)``.

    Each parameter set is one threshold, ids 0, 1, ... in the order of ``thresholds``.

    Parameters
    ----------
    thresholds
        The sweep, in the prediction's value space (see the module constants).
    num_channels
        Threshold only the first ``num_channels`` channels (the hot half of a hot-distance
        prediction); None thresholds all channels.
    """

    #: The parameter sets :meth:`process` accepts (subclasses extend them).
    parameters_type: type[ThresholdPostProcessorParameters] = ThresholdPostProcessorParameters

    def __init__(
        self,
        thresholds: Sequence[float] = DISTANCE_THRESHOLDS,
        num_channels: int | None = None,
    ) -> None:
        values = [float(t) for t in thresholds]
        if not values or not all(np.isfinite(values)):
            raise ValueError(
                f"thresholds must be a non-empty list of finite numbers, got {thresholds!r}. "
                "Give thresholds in the prediction's value range, e.g. around 0 for distances."
            )
        if num_channels is not None and num_channels < 1:
            raise ValueError(
                f"num_channels must be at least 1 or None (all channels), got {num_channels}."
            )
        self.thresholds = tuple(values)
        self.num_channels = num_channels

    def enumerate_parameters(self) -> Iterable[ThresholdPostProcessorParameters]:
        for i, threshold in enumerate(self.thresholds):
            yield ThresholdPostProcessorParameters(id=i, threshold=threshold)

    def process(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        """Threshold ``prediction`` ``(C, *spatial)`` at ``parameters.threshold``."""
        if not isinstance(parameters, self.parameters_type):
            raise TypeError(
                f"{type(self).__name__} needs {self.parameters_type.__name__}, got "
                f"{type(parameters).__name__}; use the ones enumerate_parameters() yields."
            )
        prediction = np.asarray(prediction)
        n = self.num_channels or (prediction.shape[0] if prediction.ndim else 1)
        if prediction.ndim < 2 or prediction.shape[0] < n:
            raise ValueError(
                f"The prediction of shape {prediction.shape} must be (channels, *spatial) with "
                f"at least {n} channels; pass the model output of one sample."
            )
        return (prediction[:n] > parameters.threshold).astype(np.uint8)
