from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .array import DerivedArray

if TYPE_CHECKING:
    from .binarize_array_config import BinarizeArrayConfig


class BinarizeArray(DerivedArray):
    """One uint8 channel (axis ``'c^'``) per grouping of label ids: 1 where a voxel's id is
    in the group (any id but background for an empty group), else 0. Background is never 1.

    Parameters
    ----------
    config
        A :class:`BinarizeArrayConfig`; its source must be a label volume without a
        channel axis.
    """

    def __init__(self, config: BinarizeArrayConfig) -> None:
        super().__init__(config.source_array_config.array())
        self.config = config
        if self.source.channel_dims:
            raise ValueError(
                f"BinarizeArrayConfig '{config.name}': the source array has a channel axis "
                f"({self.source.axis_names}). Binarize needs a label volume with one id per "
                f"voxel: give it the labels array without channels."
            )

    @property
    def axis_names(self) -> list[str]:
        return ["c^", *self.source.axis_names]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.config.groupings), *self.source.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def transform(self, data: np.ndarray) -> np.ndarray:
        foreground = data != self.config.background
        return np.stack(
            [
                foreground & np.isin(data, ids) if ids else foreground
                for _, ids in self.config.groupings
            ]
        ).astype(np.uint8)
