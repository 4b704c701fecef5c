"""Training as one operation: a generator of typed events.

The CLI, the GUI worker and the tests all consume :func:`train_run`; none of them holds
training logic of its own.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from napari_dacapo.experiments.run import Run
from napari_dacapo.store.file_store import FileStore

logger = logging.getLogger(__name__)

#: Training stats are written at least this often (seconds), so a run can be followed.
STATS_WRITE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class RunStarted:
    run: str
    start_iteration: int
    train_until: int
    device: str


@dataclass(frozen=True, slots=True)
class IterationDone:
    iteration: int
    loss: float
    time: float
    iterations_per_second: float


@dataclass(frozen=True, slots=True)
class SnapshotTaken:
    iteration: int
    arrays: dict[str, Any]  # name -> SnapshotArray(data, offset, voxel_size)


@dataclass(frozen=True, slots=True)
class CheckpointSaved:
    iteration: int


@dataclass(frozen=True, slots=True)
class ValidationDone:
    iteration: int
    scores: Any  # ValidationIterationScores
    criteria: list[str]
    best: dict[str, Any] = field(default_factory=dict)  # criterion -> (iteration, value)
    arrays: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ValidationStarted:
    """Validation of ``iteration``'s checkpoint begins (seconds to minutes; a stop waits
    for it)."""

    iteration: int


@dataclass(frozen=True, slots=True)
class ValidationSkipped:
    iteration: int
    reason: str


@dataclass(frozen=True, slots=True)
class RunStopped:
    iteration: int


@dataclass(frozen=True, slots=True)
class RunFinished:
    iteration: int


TrainEvent = (
    RunStarted
    | IterationDone
    | SnapshotTaken
    | CheckpointSaved
    | ValidationStarted
    | ValidationDone
    | ValidationSkipped
    | RunStopped
    | RunFinished
)


def check_run(run: Run) -> None:
    """Refuse bad input before any work starts, naming the problem and the fix."""
    from napari_dacapo.experiments.datasplits.datasets.checks import (
        check_training_dataset,
        check_validation_dataset,
    )

    datasets = run.datasplit.train
    if not datasets:
        raise ValueError(
            f"Run '{run.name}' has no training dataset. Add one to the datasplit config."
        )
    for dataset in datasets:
        check_training_dataset(dataset)
    for dataset in run.datasplit.validate or []:
        check_validation_dataset(dataset)
    if not run.trainer.can_train(datasets):
        raise ValueError(
            f"The trainer of run '{run.name}' cannot train on {[str(d) for d in datasets]}: "
            f"every training dataset needs ground truth."
        )
    run.architecture.check_input_shape(run.model.input_shape)


def train_run(
    run: Run,
    store: FileStore | None = None,
    stop: threading.Event | None = None,
    device: torch.device | str | None = None,
    validate: bool = True,
    display: dict[str, Any] | None = None,
    warn: bool = True,
) -> Iterator[TrainEvent]:
    """Train ``run`` up to ``run.train_until``, yielding events.

    Validates (and checkpoints) every ``run.validation_interval`` iterations and at the end.
    Setting ``stop`` ends training within one iteration, after a checkpoint is saved.
    ``display`` is stored with the run for viewers (:meth:`FileStore.store_display`);
    by default, the world factor recorded with the training raw data (a zarr array saved
    from napari layers), so that the run's outputs open over that data.

    Raises
    ------
    TrainingDiverged
        At the first NaN or infinite loss (or weights), naming the iteration and the likely
        cause, before that model is stored as a checkpoint.

    Warns
    -----
    DataWarning
        Before training (unless ``warn`` is False: for callers that showed
        :func:`~.checks.data_warnings` already), for what in the data trains but likely not
        as meant, e.g. a class that no training label holds.
    """
    from napari_dacapo.experiments.datasplits.datasets.checks import (
        DataWarning,
        data_warnings,
    )
    from napari_dacapo.experiments.device import describe_device, device_plan_for
    from napari_dacapo.predict import training_data_record
    from napari_dacapo.validate import validate_run

    store = store or run.store
    stop = stop or threading.Event()
    check_run(run)
    if warn:
        for warning in data_warnings(run.config):
            warnings.warn(warning, DataWarning, stacklevel=2)
    device, plan = device_plan_for(run.config.trainer_config, device)

    # Everything that can refuse the input runs before the store is written.
    run.trainer.build_batch_provider(
        run.datasplit.train, run.model, run.task, store.snapshot_container(run.name),
        device=device,
    )
    store.check_run_config(run.config)

    with store.lock(run.name, to_train=True), _on_device(run, device):
        run.config = store.store_run_config(run.config)
        display = display or _display_of_data(run)
        if display:
            store.store_display(run.name, display)
        if record := training_data_record(run):  # for predictions that cannot open the data
            store.store_training_data(run.name, record)
        start = run.trainer.iteration
        yield RunStarted(run.name, start, run.train_until, describe_device(device, plan))
        if start >= run.train_until:
            yield RunFinished(start)
            return

        def checkpoint(done: int) -> CheckpointSaved:
            _check_weights(run, done)
            store.store_checkpoint(
                run.name, done, run.model, run.optimizer, run.lr_scheduler,
            )
            store.store_training_stats(run.name, run.training_stats)
            return CheckpointSaved(done)

        def validation(done: int) -> Iterator[TrainEvent]:
            if not validate:
                yield ValidationSkipped(done, "validation is switched off for this training")
            elif not run.datasplit.validate:
                yield ValidationSkipped(
                    done, "the run has no validation data (add validate_configs to validate)"
                )
            else:
                yield ValidationStarted(done)
                yield validate_run(run, done, store=store, device=device, plan=plan)

        last_write = time.monotonic()
        rate = _Rate()
        last_snapshot = None
        with run.trainer as trainer:
            for stats in trainer.iterate(
                run.train_until - trainer.iteration, run.model, run.optimizer, device, stop=stop
            ):
                run.training_stats.add_iteration_stats(stats)
                yield IterationDone(stats.iteration, stats.loss, stats.time, rate.tick())
                snapshot = getattr(trainer, "latest_snapshot", None)
                if snapshot is not None and snapshot is not last_snapshot:
                    last_snapshot = snapshot
                    yield SnapshotTaken(snapshot.iteration, dict(snapshot.arrays))
                done = trainer.iteration
                if done != stats.iteration + 1:
                    continue  # stats of steps already taken are still being reported
                if done % run.validation_interval == 0 or done >= run.train_until:
                    yield checkpoint(done)
                    yield from validation(done)
                    store.apply_retention(run.name)
                    last_write = time.monotonic()
                elif stop.is_set():
                    yield checkpoint(done)
                    # The checkpoint of an earlier stop is neither latest nor best now:
                    # runs stopped and continued again and again (preemptible cluster
                    # jobs) must not pile them up.
                    store.apply_retention(run.name)
                elif time.monotonic() - last_write > STATS_WRITE_SECONDS:
                    store.store_training_stats(run.name, run.training_stats)
                    last_write = time.monotonic()
                if stop.is_set():
                    yield RunStopped(done)
                    return
                if done >= run.train_until:
                    break
        done = run.trainer.iteration
        if stop.is_set() and done < run.train_until:
            # Stopped while no batch came (the trainer gave up waiting for one).
            if done > start:
                yield checkpoint(done)
                store.apply_retention(run.name)
            yield RunStopped(done)
            return
        yield RunFinished(done)


def _check_weights(run: Run, iteration: int) -> None:
    """Refuse to store weights that are NaN or infinite (the trainer stops at a NaN loss,
    but a step can spoil the weights while its own loss was finite); one device sync per
    checkpoint."""
    from napari_dacapo.experiments.trainers import TrainingDiverged

    finite = [torch.isfinite(p).all() for p in run.model.parameters()]
    if finite and not bool(torch.stack(finite).all()):
        raise TrainingDiverged(
            f"Training stopped at iteration {iteration}: the model's weights hold NaN or "
            f"infinite values, although its losses were finite, so the model diverged: the "
            f"learning rate ({run.trainer.learning_rate}) is likely too high. Fix: train a "
            f"new run with a lower learning_rate (e.g. a tenth) or warmup_iterations. "
            f"These weights were not stored: the run's latest checkpoint, if any, is from "
            f"before."
        )


def _display_of_data(run: Run) -> dict[str, Any]:
    """The world factor recorded with the zarr array of the run's first training raw data
    (the napari writer records it for layers at a fractional scale), or ``{}``."""
    from napari_dacapo._reader import recorded_display_of
    from napari_dacapo.predict import training_raw_configs

    configs = training_raw_configs(run)
    factor = recorded_display_of(configs[0] if configs else None).get("world_factor")
    return {"world_factor": factor} if factor not in (None, 1) else {}


@contextlib.contextmanager
def _on_device(run: Run, device: torch.device) -> Iterator[None]:
    """Train on ``device``; afterwards (finished, stopped, crashed or closed) move the model
    and optimizer back to the CPU and release the device's cached memory, so a GPU is free
    for other work as soon as training ends."""
    from napari_dacapo.experiments.device import release_device_memory

    run.model.to(device)
    run.move_optimizer(device)
    try:
        yield
    finally:
        if device.type != "cpu":
            run.model.to("cpu")
            run.move_optimizer(torch.device("cpu"))
            release_device_memory(device)


class _Rate:
    """Iterations per second over a sliding window of recent iterations."""

    def __init__(self, window: int = 20) -> None:
        self.times: list[float] = []
        self.window = window

    def tick(self) -> float:
        self.times.append(time.perf_counter())
        self.times = self.times[-self.window :]
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)
