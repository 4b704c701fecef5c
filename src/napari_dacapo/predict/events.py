"""What a prediction yields: :class:`PredictionStarted`, then one :class:`TilePredicted`
per tile (see :func:`~napari_dacapo.predict.blocks.predict_blocks`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from funlib.geometry import Coordinate, Roi

__all__ = ["PredictionStarted", "TilePredicted", "PredictEvent"]


@dataclass(frozen=True, slots=True)
class PredictionStarted:
    """A prediction begins: where it lies and how many tiles will fill it.

    Attributes
    ----------
    roi
        World ROI of the whole prediction (the input's ROI, on the output voxel grid).
    voxel_size
        Output voxel size (finer than the input's for upsampling networks).
    num_channels
        Output channels.
    num_tiles
        How many :class:`TilePredicted` events follow.
    tile_shape
        Spatial shape of a whole tile in output voxels (tiles start at the ROI's begin;
        the last ones are cut at its end).
    iteration
        The checkpoint's iteration, or None for a model passed as it is.
    """

    roi: Roi
    voxel_size: Coordinate
    num_channels: int
    num_tiles: int
    tile_shape: tuple[int, ...]
    iteration: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the whole prediction, ``(channels, *spatial)``."""
        return (self.num_channels, *(int(s) for s in self.roi.shape / self.voxel_size))


@dataclass(frozen=True, slots=True)
class TilePredicted:
    """One tile of the prediction.

    Attributes
    ----------
    index
        Tiles done so far, 1 to ``num_tiles``.
    roi
        World ROI of ``data``, inside the prediction's ROI.
    data
        The prediction there, ``(channels, *spatial)`` float32.
    """

    index: int
    roi: Roi
    data: np.ndarray


PredictEvent = PredictionStarted | TilePredicted
