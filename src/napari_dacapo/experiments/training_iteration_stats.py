from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingIterationStats:
    """The loss of one training iteration and the time it took (seconds)."""

    iteration: int
    loss: float
    time: float = 0.0
