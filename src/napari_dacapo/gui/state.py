"""What the training panel shows about a run, as one observable object.

Widgets subscribe to single fields (``state.events.iteration.connect(...)``) instead of
polling; only the GUI thread writes to the state (the controller applies the worker's
events to it in the GUI thread). Arrays never live here: they go to layers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

from psygnal import SignalGroupDescriptor

from napari_dacapo.train import (
    CheckpointSaved,
    IterationDone,
    RunFinished,
    RunStarted,
    RunStopped,
    ValidationDone,
    ValidationSkipped,
)

__all__ = ["Phase", "TrainingState"]


class Phase(enum.Enum):
    """Where a training run is in its life."""

    IDLE = "idle"
    TRAINING = "training"
    PAUSED = "paused"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    CRASHED = "crashed"

    @property
    def busy(self) -> bool:
        """Whether a worker is alive in this phase (inputs are locked)."""
        return self in (Phase.TRAINING, Phase.PAUSED, Phase.STOPPING)


@dataclass
class TrainingState:
    """The status of the panel's training run; every field is an observable signal.

    Attributes
    ----------
    phase
        Lifecycle of the run (see :class:`Phase`).
    run
        Name of the run being (or last) trained.
    iteration
        Iterations done so far (the next iteration to train).
    start_iteration
        Iteration the current training started from (> 0 when resumed).
    total
        Iteration the run trains until.
    last_loss
        Loss of the latest iteration (None before the first); NaN or infinite when it was
        (shown as such, never hidden behind the last finite one).
    iterations_per_second
        Recent training speed.
    eta_seconds
        Estimated seconds until ``total`` (None while unknown).
    device
        Device and precision in use, e.g. ``"cpu (bf16 autocast, channels-last)"``.
    best_scores
        ``{criterion: (iteration, value)}``: the best validated iteration per criterion.
    reason_disabled
        Why Train is disabled (empty when it is enabled).
    data_status
        What the run makes of the picked data that the user should know (how the image's
        intensities are scaled, classes without a labelled voxel); shown under the pickers.
    message
        The latest user-facing status line (checkpoint saved, validation skipped ...).
    finishing
        What the worker still does before it ends, once Stop was pressed or the run ended
        (e.g. "the validation in progress"); Train waits for it. Empty otherwise.
    outcome
        How the run ended (FINISHED or STOPPED) while its worker still finishes (a last
        live prediction): :meth:`worker_ended` makes it the phase. None otherwise.
    preparing
        Whether the run is being prepared (data read, checkpoint loaded): from
        :meth:`begin` until its :class:`RunStarted`, which says the iteration it starts at.
    """

    events: ClassVar[SignalGroupDescriptor] = SignalGroupDescriptor()

    phase: Phase = Phase.IDLE
    run: str = ""
    iteration: int = 0
    start_iteration: int = 0
    total: int = 0
    last_loss: float | None = None
    iterations_per_second: float = 0.0
    eta_seconds: float | None = None
    device: str = ""
    best_scores: dict[str, tuple[int, float]] = field(default_factory=dict)
    reason_disabled: str = ""
    data_status: str = ""
    message: str = ""
    finishing: str = ""
    outcome: Phase | None = None
    preparing: bool = False

    def begin(self, run: str, total: int) -> None:
        """Reset the per-run fields for a new training of ``run``: nothing of the run
        trained before is shown while this one is prepared."""
        self.preparing = True
        self._show_only(run, 0, total)  # the iteration is unknown until RunStarted
        self.message = f"preparing run '{run}' ..."
        self.phase = Phase.TRAINING

    def show_stored(self, run: str, iteration: int = 0, total: int = 0,
                    message: str = "") -> None:
        """Show ``run`` as it is stored, not training (the panel now configures it: it was
        loaded, or its name typed): ``iteration`` of ``total`` trained (0 of 0 for a run
        not stored), and nothing of the run shown before (its loss, speed, outcome). Only
        while no worker is alive (then the phase says the training run's state)."""
        if self.phase.busy:
            raise RuntimeError(f"Run '{self.run}' is training: its state is shown.")
        self.preparing = False
        self._show_only(run, iteration, total)
        self.message = message
        self.phase = Phase.IDLE

    def _show_only(self, run: str, iteration: int, total: int) -> None:
        """``run`` at ``iteration`` of ``total``, and nothing of the run shown before."""
        self.run = run
        self.start_iteration = self.iteration = iteration
        self.total = total
        self.last_loss = None
        self.iterations_per_second = 0.0
        self.eta_seconds = None
        self.device = ""
        self.best_scores = {}
        self.finishing = ""
        self.outcome = None

    def apply(self, event: Any, worker_alive: bool = False) -> None:
        """Update the fields from one event of :func:`napari_dacapo.train.train_run`
        (other events are ignored). With ``worker_alive``, the end of the run
        (:class:`RunStopped`, :class:`RunFinished`) keeps the phase busy, with the run's
        :attr:`outcome`, until :meth:`worker_ended`: the worker may still predict the
        live view, and a new training cannot start before it has ended."""
        match event:
            case RunStarted():
                self.preparing = False
                self.start_iteration = self.iteration = event.start_iteration
                self.total = event.train_until
                self.device = event.device
                resumed = f" (resumed from iteration {event.start_iteration})"
                self.message = "training" + (resumed if event.start_iteration else "")
            case IterationDone():
                self.iteration = event.iteration + 1
                self.last_loss = float(event.loss)
                self.iterations_per_second = float(event.iterations_per_second)
                remaining = max(self.total - self.iteration, 0)
                speed = self.iterations_per_second
                self.eta_seconds = remaining / speed if speed > 0 else None
            case CheckpointSaved():
                self.message = f"checkpoint saved at iteration {event.iteration}"
            case ValidationDone():
                self.best_scores = {k: (int(i), float(v)) for k, (i, v) in event.best.items()}
                self.message = f"validated iteration {event.iteration}"
            case ValidationSkipped():
                self.message = f"validation skipped: {event.reason}"
            case RunStopped():
                self.iteration = event.iteration
                self.message = f"stopped at iteration {event.iteration} (checkpoint saved)"
                self._end(Phase.STOPPED, worker_alive)
            case RunFinished():
                self.iteration = event.iteration
                self.eta_seconds = 0.0
                self.message = f"finished at iteration {event.iteration}"
                self._end(Phase.FINISHED, worker_alive)

    def _end(self, outcome: Phase, worker_alive: bool) -> None:
        if not worker_alive:
            self.phase = outcome
            return
        self.outcome = outcome
        self.finishing = "the run's last step"
        if outcome is Phase.STOPPED:
            self.phase = Phase.STOPPING

    def worker_ended(self) -> None:
        """The worker has ended: the phase becomes the run's outcome (STOPPED when it
        ended without one, e.g. given up while closing; CRASHED stays)."""
        outcome, self.outcome = self.outcome, None
        self.finishing = ""
        self.preparing = False  # e.g. refused before it started
        if self.phase.busy:
            self.phase = outcome or Phase.STOPPED
