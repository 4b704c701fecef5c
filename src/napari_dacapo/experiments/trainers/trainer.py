"""The Trainer ABC (DaCapo's interface)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..datasplits.datasets.dataset import Dataset
    from ..model import Model
    from ..tasks.task import Task
    from ..training_iteration_stats import TrainingIterationStats
    from ...store.array_store import LocalContainerIdentifier


class TrainingDiverged(ValueError):
    """Training gave a NaN or infinite loss (or weights); the message names the iteration,
    the likely cause and the fix. Raised before the model of that iteration is stored, so
    the latest checkpoint is the last good one. (A ValueError: the CLI shows those as a
    message.)"""


class Trainer(ABC):
    iteration: int
    batch_size: int
    learning_rate: float

    @abstractmethod
    def create_optimizer(self, model: Model) -> torch.optim.Optimizer: ...

    def create_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """A learning-rate scheduler stepped once per iteration (None for a constant rate)."""
        return None

    @abstractmethod
    def iterate(
        self,
        num_iterations: int,
        model: Model,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        stop: threading.Event | None = None,
    ) -> Iterator[TrainingIterationStats]:
        """Train, yielding each iteration's stats. ``stop`` (beyond DaCapo's signature):
        when set, report pending stats after the current step so the caller can stop.
        Raises :class:`TrainingDiverged` instead of yielding a NaN or infinite loss."""

    @abstractmethod
    def can_train(self, datasets: list[Dataset]) -> bool: ...

    @abstractmethod
    def build_batch_provider(
        self,
        datasets: list[Dataset],
        model: Model,
        task: Task,
        snapshot_container: LocalContainerIdentifier | None = None,
        device: torch.device | None = None,
    ) -> None:
        """Prepare sampling from ``datasets`` (``device``, beyond DaCapo's signature: the
        device training will run on, when known, to choose where batches are prepared)."""

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop background batch preparation."""
