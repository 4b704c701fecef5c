from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .array import DerivedArray

if TYPE_CHECKING:
    from .intensity_array_config import IntensitiesArrayConfig


class IntensitiesArray(DerivedArray):
    """Intensities rescaled as ``(x - min) / (max - min)`` in float32: ``min`` maps to 0
    and ``max`` to 1. As in DaCapo, values outside ``[min, max]`` are not clipped.

    Parameters
    ----------
    config
        An :class:`IntensitiesArrayConfig`.
    """

    def __init__(self, config: IntensitiesArrayConfig) -> None:
        super().__init__(config.source_array_config.array())
        self.config = config

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def transform(self, data: np.ndarray) -> np.ndarray:
        lo, hi = np.float32(self.config.min), np.float32(self.config.max)
        return (data.astype(np.float32) - lo) / (hi - lo)
