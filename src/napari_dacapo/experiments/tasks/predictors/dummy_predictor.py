"""The simplest real predictor: foreground regression, for tests and quick checks."""

from __future__ import annotations

import numpy as np
from funlib.geometry import Coordinate

from .predictor import Predictor


class DummyPredictor(Predictor):
    """Regresses the binary foreground (``gt != 0``), repeated on ``embedding_dims``
    channels ``e0, e1, ...``; every known voxel has weight 1.

    DaCapo's dummy task trains on all-zero targets; this one learns something real, so a
    pipeline test with it shows that training actually moves the scores.

    Parameters
    ----------
    embedding_dims
        Number of output channels.
    """

    def __init__(self, embedding_dims: int = 1) -> None:
        if embedding_dims < 1:
            raise ValueError(
                f"DummyPredictor embedding_dims must be >= 1, got {embedding_dims}; use 1."
            )
        self._embedding_dims = embedding_dims

    @property
    def channels(self) -> list[str]:
        return [f"e{i}" for i in range(self._embedding_dims)]

    def create_target(self, gt: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        foreground = (gt != 0).astype(np.float32)
        return np.broadcast_to(foreground, (self._embedding_dims,) + gt.shape).copy()

    def create_weight(
        self,
        gt: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray,
        voxel_size: Coordinate,
        region: tuple[slice, ...] | None = None,
    ) -> np.ndarray:
        known = np.asarray(mask, dtype=np.float32)
        return np.broadcast_to(known, target.shape).copy()
