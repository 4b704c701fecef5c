"""The training worker of a panel: one at a time, stoppable, never blocking the GUI.

:func:`training_events` is the worker's generator: it builds the :class:`Run` (which may
read data and load a checkpoint, so it runs off the GUI thread), consumes
:func:`napari_dacapo.train.train_run` and yields its events, plus a score summary after
each validation, a live prediction when one is asked for, and markers of what it is about
to do that the panel shows (:class:`WorkerFinishing`).
:class:`TrainingController` starts it on napari's generator worker, applies the events to
the :class:`~.state.TrainingState` in the GUI thread and passes them on through
:attr:`TrainingController.received`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error, show_info, show_warning
from psygnal import Signal
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_dacapo.experiments.configs import Config
from napari_dacapo.experiments.trainers import TrainingDiverged
from napari_dacapo.store.file_store import FileStore, RunLockedError
from napari_dacapo.train import (
    IterationDone,
    RunStarted,
    RunStopped,
    ValidationDone,
    ValidationSkipped,
    ValidationStarted,
)

from .data_check import DATA_PROBLEMS
from .live_view import LiveSlot, live_prediction
from .panel_close import when_closed
from .state import Phase, TrainingState

#: Where napari-dacapo's own modules are (warnings raised there are the user's to see).
_PACKAGE = str(Path(__file__).resolve().parent.parent)

__all__ = [
    "RunPrepared",
    "TrainingController",
    "TrainingError",
    "ValidationSummary",
    "WorkerFinishing",
    "trained_here",
    "training_events",
]

logger = logging.getLogger(__name__)

#: Seconds a closing panel waits for the worker to checkpoint and stop.
STOP_TIMEOUT_S = 10.0
#: Controllers whose worker runs: kept alive until it ends, so that their slots (stop on
#: close, event handling) outlive a panel whose Python object is collected first.
_ACTIVE: set[TrainingController] = set()


def trained_here(store: FileStore, name: str, but: TrainingController | None = None,
                 button: str = "Train") -> str:
    """Why run ``name`` of ``store`` cannot be trained now because a panel of this napari
    (other than ``but``'s) still trains it, or is stopping it after being closed; empty if
    none does. (The run's lock would otherwise refuse it as held by "another process":
    this one.)"""
    root = Path(store.root).resolve()
    for controller in _ACTIVE:
        if (controller is but or not controller.running or controller.state.run != name
                or Path(controller.store.root).resolve() != root):
            continue
        if controller._closed:
            return (f"Run '{name}' is still stopping in this napari: its training panel was "
                    f"closed, and it finishes its current iteration and saves a checkpoint. "
                    f"Press {button} again in a moment.")
        return (f"Run '{name}' is being trained by another training panel of this napari: "
                f"stop it there first, or give this run another name.")
    return ""


class TrainingError(Exception):
    """Training failed; wraps the cause (napari's worker would swallow a RuntimeError,
    which is what torch raises, e.g. when memory runs out)."""


@dataclass(frozen=True, slots=True)
class RunPrepared:
    """The run is built; its history so far (empty for a new run)."""

    run: str
    resumed_from: int | None
    loss_iterations: np.ndarray
    losses: np.ndarray
    scores: dict[int, dict[str, float]]  # iteration -> {criterion: value}
    best: dict[str, tuple[int, float]]


@dataclass(frozen=True, slots=True)
class ValidationSummary:
    """One value per criterion of a validated iteration: the best parameter set's score,
    averaged over the validation datasets."""

    iteration: int
    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class WorkerFinishing:
    """The run has ended; the worker still does ``what`` before it ends."""

    what: str


def training_events(
    config: Config,
    store: FileStore,
    stop: threading.Event,
    live: LiveSlot | None = None,
    display: dict[str, Any] | None = None,
    train_until: int | None = None,
) -> Any:
    """The worker's generator (see the module docstring). ``train_until`` stops training
    there instead of at the config's ``num_iterations`` (Continue's "+N" when that ends
    before the stored total, which the store never lowers)."""
    from napari_dacapo.experiments.device import device_plan_for
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.train import train_run

    # Leave a core to the GUI thread (and the batch-preparing thread): with every core
    # busy in the model step, the GUI waits for CPU time and training itself slows down.
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 2) - 1)))
    # While training, what is alive (napari's objects: hundreds of thousands; what the run
    # imports and keeps) is taken out of the cyclic garbage collector's reach, at the start
    # and at every event but iterations (gc.freeze takes constant time). Otherwise the full
    # collections that training's allocations trigger scan it all, holding the GIL (so
    # stalling the GUI) for hundreds of milliseconds. Frozen objects are still freed by
    # reference counting; gc.unfreeze() gives them back to the collector at the end.
    gc.freeze()
    run = None
    try:
        run = Run(config, store=store)
        if train_until is not None:
            run.train_until = train_until
        gc.freeze()
        yield _prepared(run)
        device, plan = device_plan_for(run.config.trainer_config)
        shown = None  # the iteration of the model the live layer shows
        # The panel showed the data's warnings under the data before Train.
        for event in train_run(run, store, stop, display=display, warn=False):
            if not isinstance(event, IterationDone):
                gc.freeze()
            yield event
            if isinstance(event, ValidationDone):
                yield ValidationSummary(event.iteration, _summary(run, event.scores.scores))
            elif isinstance(event, IterationDone) and live is not None:
                roi = live.take()
                if roi is not None:
                    yield (ready := live_prediction(run, roi, device, plan))
                    shown = ready.iteration
        if live is not None and live.last is not None and shown != run.trainer.iteration:
            # Finished or stopped: the live layer shows the model as it ends, not as it was
            # some iterations before (train_run has moved it back to the CPU).
            yield WorkerFinishing("the live prediction of the final model")
            yield live_prediction(run, live.last, *device_plan_for(run.config.trainer_config,
                                                                   "cpu"))
    except RuntimeError as error:
        raise TrainingError(f"{type(error).__name__}: {error}") from error
    finally:
        # Drop the run (model, optimizer, data) now, also when an error's traceback keeps
        # this frame alive (train_run has already moved the model off the accelerator).
        run = None  # noqa: F841
        torch.set_num_threads(threads)
        gc.unfreeze()


def _summary(run: Any, scores: list[list[list[float]]]) -> dict[str, float]:
    """Best over parameter sets (in each criterion's direction), mean over datasets."""
    criteria = run.validation_scores.criteria
    values = np.asarray(scores, dtype=float)  # dataset, parameter, criterion
    out = {}
    for k, criterion in enumerate(criteria):
        column = values[:, :, k]
        higher = run.task.evaluation_scores.higher_is_better(criterion)
        with np.errstate(all="ignore"):
            best = np.where(np.isnan(column), -np.inf if higher else np.inf, column)
            per_dataset = best.max(axis=1) if higher else best.min(axis=1)
        per_dataset = per_dataset[np.isfinite(per_dataset)]
        out[criterion] = float(per_dataset.mean()) if per_dataset.size else float("nan")
    return out


def _prepared(run: Any) -> RunPrepared:
    stats = run.training_stats.iteration_stats
    scores = {
        s.iteration: _summary(run, s.scores) for s in run.validation_scores.scores if s.scores
    }
    best = {}
    for criterion in run.validation_scores.criteria if scores else []:
        found = run.validation_scores.best(criterion)
        if found is not None:
            best[criterion] = (int(found[0]), float(found[2]))
    return RunPrepared(
        run.name,
        run.resumed_from,
        np.asarray([s.iteration for s in stats], dtype=int),
        np.asarray([s.loss for s in stats], dtype=float),
        scores,
        best,
    )


class TrainingController:
    """Owns the panel's one training worker and writes its events to the state.

    Parameters
    ----------
    state
        The state the events are applied to (in the GUI thread).
    store
        Where runs are stored.

    Attributes
    ----------
    worker
        The current (or last) worker, or None before the first start.
    received
        Signal emitted with every worker event after it was applied to the state.
    """

    received = Signal(object)

    def __init__(self, state: TrainingState, store: FileStore) -> None:
        self.state = state
        self.store = store
        self.worker: GeneratorWorker | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._live = LiveSlot()
        self._started = False
        self._validating = False
        self._closed = False
        self._app = QApplication.instance()
        if self._app is not None:
            self._app.aboutToQuit.connect(self.shutdown)

    @property
    def running(self) -> bool:
        """Whether a worker is alive."""
        return not self._done.is_set()

    def start(
        self, config: Config, display: dict[str, Any] | None = None,
        train_until: int | None = None,
    ) -> bool:
        """Train ``config`` (a RunConfig whose arrays reference layer data, copied on the
        GUI thread by the caller), storing ``display`` with it (e.g. the world factor of the
        layers), up to ``train_until`` (default: its ``num_iterations``). Refuses, with a
        notification, while a run trains."""
        if self.running or self._closed:
            show_warning(f"Run '{self.state.run}' is still training; stop it first.")
            return False
        self._stop = threading.Event()
        self._live = LiveSlot()
        self._done = threading.Event()
        self._started = False
        self._validating = False
        worker = GeneratorWorker(
            training_events, config, self.store, self._stop, self._live, display, train_until
        )
        # A direct connection sets the event in the worker thread, so a bounded wait on the
        # GUI thread (while closing) sees it without an event loop.
        worker.finished.connect(self._done.set, Qt.ConnectionType.DirectConnection)
        worker.yielded.connect(self._on_worker_yielded)
        worker.errored.connect(self._on_worker_errored)
        # napari's own notification of a worker's warnings is not connected (0.9): shown here
        # (e.g. a resume that lost iterations, a run that starts over).
        worker.warned.connect(self._on_worker_warned)
        worker.finished.connect(self._on_worker_finished)
        worker.paused.connect(self._on_worker_paused)
        worker.resumed.connect(self._on_worker_resumed)
        self.worker = worker
        total = train_until if train_until is not None else getattr(config, "num_iterations", 0)
        self.state.begin(config.name, int(total))
        _ACTIVE.add(self)
        worker.start()
        return True

    def _on_worker_warned(self, warning: tuple) -> None:
        # (message, category, filename, lineno, ...): ours are shown; a library's (torch's
        # deprecations, say) are only logged, as they tell the user nothing to do.
        message, category, filename = warning[:3]
        ours = category.__module__.startswith("napari_dacapo") or _PACKAGE in str(filename)
        if ours:
            show_warning(str(message))
        else:
            logger.warning("%s: %s", category.__name__, message)

    def pause(self) -> None:
        """Pause after the current iteration (the worker stops at its next yield)."""
        if self.worker is not None and self.state.phase is Phase.TRAINING:
            self.worker.pause()

    def resume(self) -> None:
        if self.worker is not None and self.state.phase is Phase.PAUSED:
            self.worker.resume()

    def stop(self) -> None:
        """Finish the current iteration, save a checkpoint and stop."""
        if not self.running:
            return
        self._stop.set()
        if self.worker is not None:
            self.worker.resume()  # a paused worker must run on to checkpoint
        state = self.state
        if state.phase.busy and state.outcome is None:
            # What Train waits for (a validation can take minutes; it is not cut short).
            state.finishing = ("the validation in progress" if self._validating
                               else "the current iteration and its checkpoint")
            state.phase = Phase.STOPPING
            if self._validating:
                state.message = "stopping after the validation in progress ..."


    def request_live(self, roi: Any) -> None:
        """Ask the worker for a live prediction of ``roi`` between two iterations."""
        self._live.put(roi)

    def forget_live(self) -> None:
        """No more live predictions, nor the last one at the end (live view off)."""
        self._live.forget()

    def watch(self, widget: Any) -> None:
        """Stop training when ``widget`` (the panel) is closed: taken out of its dock (its
        ×), without waiting (:meth:`close`), or destroyed with its viewer, waiting a
        bounded time for the checkpoint (:meth:`shutdown`). The slots live here, not on
        the panel."""
        when_closed(widget, self.close, destroyed=self.shutdown)

    def close(self) -> None:
        """The panel is going away: ask the worker to stop (it finishes the current
        iteration and saves a checkpoint) and return at once. The worker's remaining
        events still reach the state, but no listener: no more output layers, plots or
        notifications. A Train of the same run meanwhile is told that it is stopping here
        (:func:`trained_here`)."""
        if self._closed:
            return
        self._closed = True
        self.received.disconnect()
        self.state.events.disconnect()
        self.stop()
        if not self.running:
            self._forget_quit()

    def shutdown(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """:meth:`close`, then wait up to ``timeout`` seconds for the checkpoint (napari is
        closing); then give the worker up (``quit``). Returns whether the worker ended in
        time."""
        self.close()
        self._forget_quit()
        ended = self._done.wait(timeout)
        if not ended and self.worker is not None:
            logger.warning("Training worker did not stop within %.0f s; abandoning it.", timeout)
            self.worker.quit()
        return ended

    def _forget_quit(self) -> None:
        if self._app is not None:
            with contextlib.suppress(TypeError, RuntimeError):  # disconnected already
                self._app.aboutToQuit.disconnect(self.shutdown)
            self._app = None

    # -- worker signals (GUI thread) -------------------------------------------------------

    def _on_worker_yielded(self, event: Any) -> None:
        # The worker is alive until its finished signal, which comes after every event.
        self.state.apply(event, worker_alive=True)
        match event:
            case RunStarted():
                self._started = True
            case ValidationStarted():
                self._validating = True
                if self.state.phase is Phase.STOPPING:
                    self.state.finishing = "the validation in progress"
                    self.state.message = (f"stopping after validating iteration "
                                          f"{event.iteration} ...")
                else:
                    self.state.message = f"validating iteration {event.iteration} ..."
            case ValidationDone() | ValidationSkipped():
                self._validating = False
            case WorkerFinishing():
                self.state.finishing = event.what
        if self._closed:
            return
        if isinstance(event, RunStarted) and event.start_iteration:
            show_info(f"Run '{event.run}' resumed from iteration {event.start_iteration}.")
        elif isinstance(event, RunStopped):
            show_info(f"Run '{self.state.run}' stopped at iteration {event.iteration}; "
                      f"checkpoint saved.")
        self.received.emit(event)

    def _on_worker_errored(self, error: Exception) -> None:
        self.state.phase = Phase.CRASHED
        if isinstance(error, RunLockedError) and (here := trained_here(
                self.store, self.state.run, but=self)):
            # Held by this process (a closed panel's run stopping), not "another process".
            self.state.message = f"cannot train: {here}"
            if not self._closed:
                show_error(f"Cannot train run '{self.state.run}' yet. {here}")
            return
        if not self._started and isinstance(error, DATA_PROBLEMS):
            # Refused before anything was trained or stored: the message names the
            # problem and its fix; there is no checkpoint to resume from.
            self.state.message = f"cannot train: {error}"
            if not self._closed:
                show_error(f"Cannot train run '{self.state.run}': {error}\nNothing was "
                           f"trained or stored; fix the problem named above, then press "
                           f"Train again.")
            return
        self.state.message = f"crashed: {error}"
        if isinstance(error, TrainingDiverged):  # its loss, never sent as an iteration
            self.state.last_loss = math.nan
        if not self._closed:
            # A diverged run's message says what to do (a new run, where the learning rate
            # is the cause): resuming it as it is would diverge again.
            next_step = "" if isinstance(error, TrainingDiverged) else (
                "\nNext step: fix the cause named above and press Train again; the run "
                "resumes from its latest checkpoint, if one was saved.")
            show_error(f"Training run '{self.state.run}' failed: {error}{next_step}")

    def _on_worker_finished(self) -> None:
        _ACTIVE.discard(self)
        if self._closed:
            self._forget_quit()  # nothing left to wait for when napari quits
        self._validating = False
        self.state.worker_ended()

    def _on_worker_paused(self) -> None:
        if self._stop.is_set() and self.worker is not None:
            self.worker.resume()  # stop was pressed while the pause took effect
        elif self.state.phase is Phase.TRAINING:
            self.state.phase = Phase.PAUSED
            where = ("before its first iteration" if self.state.preparing
                     else f"at iteration {self.state.iteration}")
            self.state.message = f"paused {where}"

    def _on_worker_resumed(self) -> None:
        if self.state.phase is Phase.PAUSED:
            self.state.phase = Phase.TRAINING
            self.state.message = "training"
