from __future__ import annotations

from abc import ABC

from funlib.geometry import Coordinate

from .arrays.array import Array


class Dataset(ABC):
    """Raw data with optional ground truth and mask, as the trainer and validation read it."""

    name: str
    raw: Array
    gt: Array | None
    mask: Array | None
    weight: float
    sample_points: list[Coordinate] | None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __str__(self) -> str:
        return self.name
