"""What the runs browser and the predict panel show about a stored run, read from its
folder without writing to it (the run may be training in another process).

Reading runs in worker threads; nothing here imports Qt or napari.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_dacapo.store.file_store import (
    BEST_FILE,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    TRAINING_STATS_FILE,
    VALIDATION_SCORES_FILE,
    FileStore,
    StoreError,
)

#: The files whose change means the run moved on (training stats, scores, checkpoints).
WATCHED = (TRAINING_STATS_FILE, VALIDATION_SCORES_FILE, BEST_FILE, CHECKPOINTS_DIR)
#: How often panels look at a run's checkpoints for files deleted or damaged behind their
#: back (a directory listing and a zip-directory check: cheap on the GUI thread).
STORE_POLL_MS = 3000


@dataclass(frozen=True)
class Curve:
    """Values over iterations (loss, or a validation score)."""

    iterations: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class RunInfo:
    """A stored run at the moment it was read.

    Attributes
    ----------
    config
        The stored run config.
    name, total
        The run's name and the iteration it trains until.
    done
        Iterations trained: the training stats' end, or the latest checkpoint if later.
    dims, in_channels
        Spatial dimensions and input channels of the run's network (None where its
        architecture config does not say).
    checkpoints
        Iterations with a stored checkpoint.
    criteria
        The task's validation criteria, in its order (the first is the main one).
    best
        ``{criterion: (iteration, value)}`` over all validation datasets, as stored.
    loss
        The loss per iteration (empty unless read with ``curves=True``).
    scores
        ``{criterion: Curve}``: per validated iteration, the value of the best
        post-processing parameters (mean over datasets); empty unless ``curves=True``.
    higher_is_better
        ``{criterion: bool}``, the direction of each criterion.
    trainer
        The pid of the process training the run now (holding its lock), or None.
    stamp
        Modification times of the run's watched files and its trainer (see
        :func:`run_stamp`).
    note
        Why part of the run could not be read (e.g. scores stored by an older version
        with other criteria), empty if all was read.
    resume_problem
        Why the run cannot be continued from its checkpoints (none left, or the latest
        cut short), with the fix; empty if it can or was never trained.
    """

    config: Any
    name: str
    total: int
    done: int
    dims: int | None
    in_channels: int | None
    checkpoints: list[int]
    criteria: list[str]
    best: dict[str, tuple[int, float]]
    loss: Curve = field(default_factory=lambda: Curve(np.zeros(0, int), np.zeros(0)))
    scores: dict[str, Curve] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    trainer: str | None = None
    stamp: tuple[Any, ...] = ()
    note: str = ""
    resume_problem: str = ""

    @property
    def checkpoint_choices(self) -> list[str]:
        """Checkpoints a user may pick: ``latest``, ``best:<criterion>`` for every
        criterion with a stored best, then the stored iterations, newest first."""
        if not self.checkpoints:
            return []
        best = [f"best:{c}" for c in self.criteria if c in self.best]
        return ["latest", *best, *(str(i) for i in reversed(self.checkpoints))]

    def iterations_text(self) -> str:
        """``"<done>/<total>"``, saying when no checkpoint is left of the iterations done
        (they cannot be continued)."""
        gone = self.done and not self.checkpoints
        return f"{self.done}/{self.total}" + (" (no checkpoint)" if gone else "")

    def best_text(self, criterion: str | None = None) -> str:
        """``"<criterion> <value> @ <iteration>"`` for ``criterion`` (default: the main
        criterion), or ``"not validated"``."""
        criterion = criterion or (self.criteria[0] if self.criteria else None)
        if criterion not in self.best:
            return "not validated"
        iteration, value = self.best[criterion]
        return f"{criterion} {value:.3g} @ {iteration}"


def run_stamp(store: FileStore, name: str) -> tuple[Any, ...]:
    """Modification times of a run's stats, scores, bests and checkpoints folder (0 for a
    missing one), the latest checkpoint's time and size (a file cut short in place leaves
    its folder's time as it was), then its trainer's pid (or None): equal stamps mean
    nothing new to read."""
    folder = store.run_dir(name)
    latest = store.latest_iteration(name)
    try:
        file = store.checkpoint_path(name, latest).stat() if latest is not None else None
    except OSError:
        file = None
    checkpoint = (file.st_mtime_ns, file.st_size) if file is not None else None
    return (*(_mtime(folder / entry) for entry in WATCHED), checkpoint, store.lock_holder(name))


def read_run_info(store: FileStore, name: str, curves: bool = False) -> RunInfo:
    """Read run ``name`` from ``store`` (see :class:`RunInfo`); ``curves`` also reads the
    loss and validation curves (larger files, for plots)."""
    stamp = run_stamp(store, name)
    config = store.retrieve_run_config(name)
    task = config.task_config.task_type(config.task_config)
    evaluation = task.evaluation_scores
    criteria = list(evaluation.criteria)
    best = {}
    for criterion in criteria:
        record = store.retrieve_best(name, criterion)
        if record is not None:
            best[criterion] = (int(record["iteration"]), float(record["value"]))
    checkpoints = store.checkpoint_iterations(name)
    architecture = config.architecture_config
    stats = store.retrieve_training_stats(name)
    info = RunInfo(
        config=config,
        name=name,
        total=int(config.num_iterations),
        done=max(stats.trained_until(), max(checkpoints, default=0)),
        dims=len(getattr(architecture, "input_shape", None) or ()) or None,
        in_channels=getattr(architecture, "fmaps_in", None),
        checkpoints=checkpoints,
        criteria=criteria,
        best=best,
        higher_is_better={c: bool(evaluation.higher_is_better(c)) for c in criteria},
        trainer=stamp[-1],
        stamp=stamp,
        resume_problem=store.resume_problem(name),
    )
    if not curves:
        return info
    loss = Curve(
        np.array([s.iteration for s in stats.iteration_stats], dtype=int),
        np.array([s.loss for s in stats.iteration_stats], dtype=float),
    )
    note = ""
    try:
        scores = _score_curves(store.retrieve_validation_iteration_scores(name), task)
    except ValueError as e:  # scores written for other criteria or parameters
        scores, note = {}, f"validation scores not shown: {e}"
    return dataclasses.replace(info, loss=loss, scores=scores, note=note)


@dataclass(frozen=True)
class RunsRead:
    """What :func:`read_runs` found.

    Attributes
    ----------
    names
        Every run stored now, sorted.
    stamps
        ``{name: stamp}`` of the runs it looked at (see :func:`listing_stamp`).
    runs
        The runs read (their stamp was not the one given), each a :class:`RunInfo`
        without curves, or why it cannot be read.
    """

    names: list[str]
    stamps: dict[str, tuple[Any, ...]]
    runs: dict[str, RunInfo | str]


def listing_stamp(store: FileStore, name: str) -> tuple[Any, ...]:
    """:func:`run_stamp`, after the modification time of the run's config (a run listed
    while its config is being written reads as unreadable until it is written)."""
    return (_mtime(store.run_dir(name) / CONFIG_FILE), *run_stamp(store, name))


def read_runs(
    store: FileStore, stamps: dict[str, tuple[Any, ...]] | None = None, skip: str | None = None
) -> RunsRead:
    """List the stored runs and read those whose stamp is not in ``stamps`` (all of them
    by default), except ``skip``, whose stamp is not taken either (it is read elsewhere).
    Looking at unchanged runs costs a few file stats each; a damaged run folder must not
    hide the others."""
    names = store.list_runs()
    found: dict[str, tuple[Any, ...]] = {}
    runs: dict[str, RunInfo | str] = {}
    for name in names:
        if name == skip:
            continue
        try:
            found[name] = listing_stamp(store, name)
        except (StoreError, OSError):
            found[name] = ()  # read below, which says why
        if stamps is not None and name in stamps and stamps[name] == found[name]:
            continue
        try:
            runs[name] = read_run_info(store, name)
        except (StoreError, ValueError, OSError) as e:
            runs[name] = f"unreadable: {e}"
    return RunsRead(names, found, runs)


def read_if_changed(
    store: FileStore, name: str, stamp: tuple[float, ...]
) -> RunInfo | None:
    """:func:`read_run_info` with curves, or None when the run's files still have
    ``stamp`` (nothing new to show)."""
    if run_stamp(store, name) == stamp:
        return None
    return read_run_info(store, name, curves=True)


def _score_curves(iteration_scores: list[Any], task: Any) -> dict[str, Curve]:
    """Per criterion, the best parameter set's score (mean over datasets) per iteration,
    chosen in each criterion's direction by :meth:`ValidationScores.get_best`."""
    from napari_dacapo.experiments.validation_scores import ValidationScores

    if not iteration_scores:
        return {}
    datasets = [f"dataset {i}" for i in range(len(iteration_scores[0].scores))]
    scores = ValidationScores(task.parameters, datasets, task.evaluation_scores,
                              scores=iteration_scores)
    data = scores.to_xarray().mean("datasets", skipna=True)
    _, values = scores.get_best(data, "parameters")
    iterations = np.asarray(values["iterations"].values, dtype=int)
    return {
        str(c): Curve(iterations, np.asarray(values.sel(criteria=c).values, dtype=float))
        for c in values["criteria"].values
    }


def fine_tune_config(store: FileStore, info: RunInfo, criterion: str) -> Any:
    """A new run config like run ``info``'s, named to be unique in ``store``, that starts
    from ``info``'s best checkpoint for ``criterion`` (its latest one when that criterion
    has no best yet)."""
    from napari_dacapo.experiments.starts.start_config import StartConfig

    start = f"best:{criterion}" if criterion in info.best else "latest"
    return info.config.replace(
        name=unique_run_name(store, f"{info.name}_finetune"),
        start_config=StartConfig(run=info.name, criterion=start),
    )


def unique_run_name(store: FileStore, base: str) -> str:
    """``base``, or ``base_2``, ``base_3`` ... : the first name no stored run has."""
    taken = set(store.list_runs())
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
