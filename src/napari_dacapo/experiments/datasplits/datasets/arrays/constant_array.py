from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .array import DerivedArray

if TYPE_CHECKING:
    from .constant_array_config import ConstantArrayConfig


class ConstantArray(DerivedArray):
    """An array with the geometry and dtype of its source, holding one value everywhere
    (e.g. a mask of ones). The source's voxels are never read.

    Parameters
    ----------
    config
        A :class:`ConstantArrayConfig`.
    """

    def __init__(self, config: ConstantArrayConfig) -> None:
        super().__init__(config.source_array_config.array())
        self.config = config
        value = np.asarray(config.constant).astype(self.dtype)
        if value != config.constant:
            raise ValueError(
                f"ConstantArrayConfig '{config.name}': constant {config.constant} does not "
                f"fit the source's dtype {self.dtype}. Choose a value that dtype can hold."
            )

    def read_voxels(self, spatial_slices: tuple[slice, ...]) -> np.ndarray:
        channels = self.shape[: self.channel_dims]
        shape = (*channels, *(s.stop - s.start for s in spatial_slices))
        return np.full(shape, self.config.constant, dtype=self.dtype)

    def transform(self, data: np.ndarray) -> np.ndarray:
        return np.full_like(data, self.config.constant)
