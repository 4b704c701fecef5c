"""What the training panel shows about a run, as one observable object.

Widgets subscribe to single fields (``state.events.iteration.connect(...)``) instead of
polling; only the GUI thread writes to the state (the controller applies the worker's
events to it in the GUI thread). Arrays never live here: they go to layers.
"""

from __future__ import annotations

import enum
import math
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
        Loss of the latest iteration (None before the first).
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

    def begin(self, run: str, total: int) -> None:
        """Reset the per-run fields for a new training of ``run``."""
        self.run = run
        self.total = total
        self.last_loss = None
        self.iterations_per_second = 0.0
        self.eta_seconds = None
        self.device = ""
        self.best_scores = {}
        self.message = f"preparing run '{run}' ..."
        self.phase = Phase.TRAINING

    def apply(self, event: Any) -> None:
        """Update the fields from one event of :func:`napari_dacapo.train.train_run`
        (other events are ignored)."""
        match event:
            case RunStarted():
                self.start_iteration = self.iteration = event.start_iteration
                self.total = event.train_until
                self.device = event.device
                resumed = f" (resumed from iteration {event.start_iteration})"
                self.message = "training" + (resumed if event.start_iteration else "")
            case IterationDone():
                self.iteration = event.iteration + 1
                if math.isfinite(event.loss):
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
                self.phase = Phase.STOPPED
            case RunFinished():
                self.iteration = event.iteration
                self.eta_seconds = 0.0
                self.message = f"finished at iteration {event.iteration}"
                self.phase = Phase.FINISHED
