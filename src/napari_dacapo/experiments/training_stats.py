"""The loss of every training iteration of a run, in order
(``dacapo.experiments.training_stats``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .training_iteration_stats import TrainingIterationStats


@dataclass
class TrainingStats:
    """An ordered, append-only record of training iterations.

    Iterations are consecutive: each added iteration must directly follow the last one
    (the first may be any iteration, e.g. when a run's stats start at a resumed
    checkpoint). A gap or a repeat means two trainers wrote the same run, or a resume went
    wrong, so it is refused instead of silently producing a misleading loss curve.

    Attributes
    ----------
    iteration_stats
        The stats of each iteration, in increasing iteration order.

    Examples
    --------
    >>> stats = TrainingStats()
    >>> stats.add_iteration_stats(TrainingIterationStats(0, 0.5))
    >>> stats.add_iteration_stats(TrainingIterationStats(1, 0.4))
    >>> stats.trained_until()
    2
    """

    iteration_stats: list[TrainingIterationStats] = field(default_factory=list)

    def __post_init__(self) -> None:
        given, self.iteration_stats = list(self.iteration_stats), []
        for stats in given:
            self.add_iteration_stats(stats)

    def add_iteration_stats(self, iteration_stats: TrainingIterationStats) -> None:
        """Append the stats of the iteration that directly follows the last one.

        Raises
        ------
        ValueError
            If the iteration is not ``trained_until()`` (when stats exist already).
        """
        if self.iteration_stats and iteration_stats.iteration != self.trained_until():
            raise ValueError(
                f"Training stats of iteration {iteration_stats.iteration} do not follow the "
                f"last recorded iteration {self.iteration_stats[-1].iteration}: expected "
                f"iteration {self.trained_until()}. Call delete_after({iteration_stats.iteration})"
                f" first when re-training from an earlier checkpoint."
            )
        self.iteration_stats.append(iteration_stats)

    def delete_after(self, iteration: int) -> None:
        """Keep only the stats of iterations before ``iteration``."""
        self.iteration_stats = [s for s in self.iteration_stats if s.iteration < iteration]

    def trained_until(self) -> int:
        """The number of iterations trained for: the last iteration plus one, 0 if none."""
        return self.iteration_stats[-1].iteration + 1 if self.iteration_stats else 0

    def to_xarray(self) -> xr.DataArray:
        """The losses as a DataArray with dimension ``iterations`` (iteration numbers)."""
        return xr.DataArray(
            np.array([s.loss for s in self.iteration_stats], dtype=float),
            dims=("iterations",),
            coords={"iterations": [s.iteration for s in self.iteration_stats]},
            name="loss",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (losses may be NaN)."""
        return {"iteration_stats": [dataclasses.asdict(s) for s in self.iteration_stats]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingStats:
        """Rebuild from :meth:`to_dict` output."""
        return cls([TrainingIterationStats(**s) for s in data["iteration_stats"]])
