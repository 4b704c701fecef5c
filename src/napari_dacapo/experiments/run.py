"""A Run: DataSplit + Task + Architecture + Trainer (+ Start), with its model, optimizer,
training stats and validation scores. Mirrors ``dacapo.experiments.run``."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

import torch

from .architectures.architecture import Architecture
from .datasplits.datasplit import DataSplit
from .model import Model
from .run_config import RunConfig
from .starts.start import Start
from .tasks.task import Task
from .trainers.trainer import Trainer
from .training_stats import TrainingStats
from .validation_scores import ValidationScores

if TYPE_CHECKING:
    from ..store.file_store import FileStore

__all__ = [
    "DataSplit",
    "Task",
    "Architecture",
    "Trainer",
    "TrainingStats",
    "ValidationScores",
    "Start",
    "Model",
    "Run",
]

logger = logging.getLogger(__name__)


class Run:
    """One training run.

    Constructing a Run for a run that is already stored resumes it: the model, optimizer
    and scheduler state, the training stats and the validation scores of the latest
    checkpoint are loaded (stats past that checkpoint are dropped, none duplicated; the last
    validation entry is kept). Otherwise, with a ``start_config`` and
    ``load_starter_model``, the weights are initialised from the starter run.

    Parameters
    ----------
    run_config
        The run's config.
    load_starter_model
        Initialise a new run from its ``start_config`` (ignored when resuming).
    store
        Where runs live; default :class:`~napari_dacapo.store.FileStore` at the root given
        by ``NAPARI_DACAPO_ROOT`` or the user data directory.
    resume
        Load the latest stored checkpoint of a run with this name (default True).

    The optimizer and learning-rate scheduler are made when first used: the first
    optimizer of a process imports ``torch._dynamo`` (about 0.8 s), which a run built only
    to predict or to be looked at does not need.
    """

    name: str
    train_until: int
    validation_interval: int
    task: Task
    architecture: Architecture
    trainer: Trainer
    model: Model
    training_stats: TrainingStats

    def __init__(
        self,
        run_config: RunConfig,
        load_starter_model: bool = True,
        store: FileStore | None = None,
        resume: bool = True,
    ) -> None:
        self.config = run_config
        self.name = run_config.name
        self.train_until = run_config.num_iterations
        self.validation_interval = run_config.validation_interval
        self._store = store

        self.task = run_config.task_config.task_type(run_config.task_config)
        self.architecture = run_config.architecture_config.architecture_type(
            run_config.architecture_config
        )
        self.trainer = run_config.trainer_config.trainer_type(run_config.trainer_config)
        self.model = self.task.create_model(self.architecture)
        self._optimizer: torch.optim.Optimizer | None = None
        self._lr_scheduler: Any = None
        self.training_stats = TrainingStats()
        self._datasplit: DataSplit | None = None
        self._validation_scores: ValidationScores | None = None
        self.start = (
            Start(run_config.start_config, store=store) if run_config.start_config else None
        )
        self.resumed_from: int | None = None

        if resume and self.store.has_run(self.name):
            self.store.check_run_config(run_config)
            if self.store.latest_iteration(self.name) is not None:
                self.resume()
                return
            if problem := self.store.resume_problem(self.name):  # trained, no checkpoint left
                warnings.warn(problem, stacklevel=2)
        if self.start is not None and load_starter_model:
            self.start.initialize_weights(self.model, new_head=self.task.predictor.channels)

    # -- lazily built parts ----------------------------------------------------------------

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = self.trainer.create_optimizer(self.model)
            self._lr_scheduler = self.trainer.create_scheduler(self._optimizer)
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self._optimizer = optimizer

    @property
    def lr_scheduler(self) -> Any:
        """The trainer's learning-rate scheduler of :attr:`optimizer` (None for a constant
        rate)."""
        self.optimizer  # noqa: B018 - made together
        return self._lr_scheduler

    @lr_scheduler.setter
    def lr_scheduler(self, scheduler: Any) -> None:
        self._lr_scheduler = scheduler

    @property
    def store(self) -> FileStore:
        if self._store is None:
            from ..store.file_store import FileStore

            self._store = FileStore()
        return self._store

    @property
    def datasplit(self) -> DataSplit:
        if self._datasplit is None:
            cfg = self.config.datasplit_config
            self._datasplit = cfg.datasplit_type(cfg)
        return self._datasplit

    @property
    def validation_scores(self) -> ValidationScores:
        if self._validation_scores is None:
            self._validation_scores = ValidationScores(
                self.task.parameters, self.datasplit.validate or [], self.task.evaluation_scores
            )
        return self._validation_scores

    @staticmethod
    def get_validation_scores(run_config: RunConfig) -> ValidationScores:
        """Validation scores of a run config without building the model or optimizer."""
        task = run_config.task_config.task_type(run_config.task_config)
        cfg = run_config.datasplit_config
        datasplit = cfg.datasplit_type(cfg)
        return ValidationScores(task.parameters, datasplit.validate or [], task.evaluation_scores)

    # -- state -----------------------------------------------------------------------------

    def resume(self, iteration: int | str = "latest") -> int:
        """Load a stored checkpoint with its optimizer, scheduler, stats and scores.

        Warns when the stored stats go past that checkpoint: those iterations are trained
        again (its checkpoint was deleted, or training ended without one, e.g. killed).

        Raises
        ------
        CheckpointError
            If the checkpoint is missing or unreadable (for ``"latest"``: saying how to
            continue from the one before).
        """
        from ..store.file_store import CheckpointError

        if iteration == "latest" and (problem := self.store.resume_problem(self.name)):
            raise CheckpointError(problem)
        checkpoint = self.store.retrieve_checkpoint(self.name, iteration)
        done = int(checkpoint["iteration"])
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.lr_scheduler is not None and checkpoint.get("scheduler") is not None:
            self.lr_scheduler.load_state_dict(checkpoint["scheduler"])
        self.trainer.iteration = done
        stats = self.store.retrieve_training_stats(self.name)
        if (reached := stats.trained_until()) > done:
            warnings.warn(self._lost_iterations(done, reached), stacklevel=3)
        stats.delete_after(done)
        self.training_stats = stats
        scores = self.validation_scores
        scores.scores = [
            s for s in self.store.retrieve_validation_iteration_scores(self.name)
            if s.iteration <= done
        ]
        self.resumed_from = done
        logger.info("Resumed run '%s' from iteration %d", self.name, done)
        return done

    def _lost_iterations(self, done: int, reached: int) -> str:
        """Why resuming from ``done`` trains the iterations up to ``reached`` again."""
        # A checkpoint is stored at every validation interval before the stats reach past
        # it, and the latest is never pruned: a later one missing was deleted.
        expected = reached // self.validation_interval * self.validation_interval
        why = (
            f"checkpoint {expected} ({self.store.checkpoint_path(self.name, expected)}) is "
            f"missing (pruned or deleted)" if expected > done else
            "training ended after it without storing one (e.g. the trainer was killed)"
        )
        return (
            f"Run '{self.name}' resumes from iteration {done}, its latest checkpoint, though "
            f"it was trained to iteration {reached}: {why}. The {reached - done} iterations "
            f"after {done} are trained again."
        )

    def move_optimizer(self, device: torch.device, empty_cuda_cache: bool = False) -> None:
        """Move the optimizer's state tensors to ``device``."""
        for state in self.optimizer.state.values():
            assert isinstance(state, dict)
            for key, value in state.items():
                # Adam's step counter stays on the CPU unless the optimizer is capturable.
                if torch.is_tensor(value) and key != "step":
                    state[key] = value.to(device)
        if empty_cuda_cache and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __str__(self) -> str:
        return self.name
