"""The run controls of the training panel: Train / Pause / Resume / Stop / Continue,
progress (iteration, it/s, ETA), device, status line and the reason Train is disabled.

Everything shown here is rendered from the :class:`~.state.TrainingState`; the buttons
only call the panel's handlers, never set other widgets' text.
"""

from __future__ import annotations

import datetime
from typing import Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .state import Phase, TrainingState

__all__ = ["StatusPanel"]

PROGRESS_MS = 250


class StatusPanel(QWidget):
    """Run buttons and progress for one :class:`TrainingState`."""

    def __init__(self, state: TrainingState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.train_button = QPushButton("Train")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.continue_button = QPushButton("Continue")
        self.more_iterations = QSpinBox()
        self.more_iterations.setRange(1, 10**8)
        self.more_iterations.setValue(1000)
        self.more_iterations.setPrefix("+")
        self.more_iterations.setToolTip(
            "Continue trains the stored run this many more iterations, on the labels as they "
            "are now (painted labels are stored again under the run)."
        )
        self.train_button.setToolTip("Train the run configured above (or resume it).")
        self.stop_button.setToolTip("Finish the current iteration, save a checkpoint, stop.")
        self.live = QCheckBox("live prediction of the view")
        self.live.setChecked(True)
        self.live.setToolTip(
            "While training, predict the region in view every few seconds with the current "
            "model (a small region, a small share of the training time)."
        )
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet("color: #ff8a65;")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.speed = QLabel()
        self.device = QLabel()
        self.device.setToolTip("Device and precision the run trains with.")
        self.message = QLabel()
        self.message.setWordWrap(True)

        buttons = QGridLayout()
        for column, button in enumerate(
            (self.train_button, self.pause_button, self.resume_button, self.stop_button)
        ):
            buttons.addWidget(button, 0, column)
        continuing = QHBoxLayout()
        continuing.addWidget(self.continue_button)
        continuing.addWidget(self.more_iterations)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addLayout(continuing)
        for widget in (self.reason, self.progress, self.speed, self.device, self.message,
                       self.live):
            layout.addWidget(widget)

        events = state.events
        events.phase.connect(self._render_reason)
        events.phase.connect(self._render_message)
        events.reason_disabled.connect(self._render_reason)
        events.finishing.connect(self._render_reason)
        events.outcome.connect(self._render_reason)
        events.outcome.connect(self._render_message)
        # Progress changes every iteration; it is drawn a few times per second only (each
        # redraw of the panel costs the GUI thread a frame).
        self._progress_changed = False
        for name in ("iteration", "total", "start_iteration", "iterations_per_second",
                     "eta_seconds", "last_loss", "preparing"):
            getattr(events, name).connect(self._on_progress_changed)
        events.phase.connect(self._render_progress)
        self._timer = QTimer(self)
        self._timer.setInterval(PROGRESS_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._timer.start()
        events.device.connect(self._render_device)
        events.message.connect(self._render_message)
        self.continue_allowed = ""
        self.render()

    def render(self) -> None:
        self._render_buttons()
        self._render_reason()
        self._render_progress()
        self._render_device()
        self._render_message()

    def set_continue_reason(self, reason: str) -> None:
        """Why Continue is disabled when no run trains here (empty: enabled)."""
        self.continue_allowed = reason
        self._render_buttons()

    def continue_reason(self) -> str:
        """Why Continue is disabled now: while a run trains here (the panel's reason,
        computed before it started, no longer says why), that run; else the panel's
        reason. Empty when enabled."""
        s = self.state
        if not s.phase.busy:
            return self.continue_allowed
        if s.finishing:
            doing = "Stopping: finishing" if s.phase is Phase.STOPPING else "Finishing"
            return f"{doing} {s.finishing} ...; Continue is enabled when it has ended."
        return (f"Run '{s.run}' is {s.phase.value} in this panel; Continue is enabled when "
                f"its training has ended.")

    def _render_buttons(self, *_: Any) -> None:
        phase = self.state.phase
        ended = self.state.outcome is not None  # the worker finishes a last prediction
        self.train_button.setEnabled(not phase.busy and not self.state.reason_disabled)
        self.pause_button.setEnabled(phase is Phase.TRAINING and not ended)
        self.resume_button.setEnabled(phase is Phase.PAUSED)
        self.stop_button.setEnabled(phase in (Phase.TRAINING, Phase.PAUSED) and not ended)
        self.continue_button.setEnabled(not phase.busy and not self.continue_allowed)
        self.continue_button.setToolTip(
            self.continue_reason()
            or "Train the stored run further, on the labels as they are now."
        )
        self.more_iterations.setEnabled(not phase.busy)

    def _on_progress_changed(self, *_: Any) -> None:
        self._progress_changed = True

    def _on_timer_timeout(self) -> None:
        if self._progress_changed:
            self._render_progress()

    def train_reason(self) -> str:
        """Why Train is disabled: the panel's reason, or while the worker finishes (after
        Stop or the run's end) what it finishes. Empty when enabled."""
        s = self.state
        if s.phase.busy and s.finishing:
            doing = "Stopping: finishing" if s.phase is Phase.STOPPING else "Finishing"
            return f"{doing} {s.finishing} ...; Train is enabled when it has ended."
        return s.reason_disabled

    def _render_reason(self, *_: Any) -> None:
        reason = self.train_reason()
        self.reason.setText(reason)
        self.reason.setVisible(bool(reason))
        self.train_button.setToolTip(reason or "Train the run configured above (or resume it).")
        self._render_buttons()

    def _render_progress(self, *_: Any) -> None:
        self._progress_changed = False
        s = self.state
        self.progress.setRange(0, max(s.total, 1))
        self.progress.setValue(min(s.iteration, max(s.total, 1)))
        # The iteration a run resumes from is known only once it has started.
        self.progress.setFormat("preparing ..." if s.preparing
                                else f"iteration {s.iteration} / {s.total}")
        parts = []
        if s.iterations_per_second:
            parts.append(f"{s.iterations_per_second:.1f} it/s")
        # No ETA while paused: it would stand still and lie.
        if s.eta_seconds is not None and s.phase is Phase.TRAINING:
            parts.append(f"ETA {datetime.timedelta(seconds=round(s.eta_seconds))}")
        if s.last_loss is not None:  # "loss nan" / "loss inf" when it is not finite
            parts.append(f"loss {s.last_loss:.4g}")
        self.speed.setText(" · ".join(parts))

    def _render_device(self, *_: Any) -> None:
        self.device.setText(f"device: {self.state.device}" if self.state.device else "")

    def _render_message(self, *_: Any) -> None:
        phase = self.state.phase
        text = self.state.message
        # Messages that start with the phase name ("paused at ..."), and how the run ended
        # while its worker finishes ("stopped at ..."), stand on their own.
        if text and not text.startswith(phase.value) and self.state.outcome is None:
            text = f"{phase.value}: {text}"
        self.message.setText(text or phase.value)
