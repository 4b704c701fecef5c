"""The validation scores of one iteration (``dacapo.experiments.validation_iteration_scores``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ValidationIterationScores:
    """Scores of one validated iteration.

    Attributes
    ----------
    iteration
        The training iteration whose model was validated.
    scores
        ``scores[dataset][parameter][criterion]``: one value per validation dataset,
        post-processor parameter set and evaluation criterion, in the order of the
        run's :class:`~napari_dacapo.experiments.validation_scores.ValidationScores`.
        NaN marks a score that could not be computed.
    """

    iteration: int
    scores: list[list[list[float]]]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "iteration": int(self.iteration),
            "scores": [[[float(v) for v in p] for p in d] for d in self.scores],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationIterationScores:
        """Rebuild from :meth:`to_dict` output."""
        return cls(int(data["iteration"]), data["scores"])
