"""Scores of one evaluation, with each criterion's direction and bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class EvaluationScores:
    """Named scores. ``higher_is_better`` and ``bounds`` are per criterion, so best-iteration
    selection can apply each criterion's own direction."""

    values: dict[str, float] = field(default_factory=dict)
    directions: dict[str, bool] = field(default_factory=dict)  # criterion -> higher is better
    bound_values: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def criteria(self) -> list[str]:
        return list(self.directions)

    def higher_is_better(self, criterion: str) -> bool:
        return self.directions[criterion]

    def bounds(self, criterion: str) -> tuple[float | None, float | None]:
        return self.bound_values.get(criterion, (None, None))

    def store_best(self, criterion: str) -> bool:
        return True

    def __getitem__(self, criterion: str) -> float:
        return self.values.get(criterion, math.nan)

    def to_list(self) -> list[float]:
        return [float(self[c]) for c in self.criteria]
