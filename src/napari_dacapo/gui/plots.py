"""Loss and validation-score plots (pyqtgraph), redrawn at most a few times per second.

Points are collected as they arrive (one per iteration can be hundreds per second); a
timer redraws only when something changed, so plotting never costs the GUI thread more
than one small ``setData`` per interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QComboBox, QLabel, QVBoxLayout, QWidget

__all__ = ["TrainingPlots"]

REDRAW_MS = 250


class TrainingPlots(QWidget):
    """The loss curve and one validation criterion's curve with its best iteration marked.
    A loss that is not finite (NaN, infinite) cannot be drawn as a point: it is marked by a
    red line at its iteration and said under the plot, never silently left out.

    Parameters
    ----------
    redraw_ms
        Shortest time between two redraws.
    """

    def __init__(self, parent: QWidget | None = None, redraw_ms: int = REDRAW_MS) -> None:
        super().__init__(parent)
        self._loss_x: list[int] = []
        self._loss_y: list[float] = []
        self._nonfinite: list[tuple[int, float]] = []  # (iteration, loss) not drawable
        self._scores: dict[str, dict[int, float]] = {}
        self._best: dict[str, tuple[int, float]] = {}
        self._dirty = False

        self.loss_plot = pg.PlotWidget(title="loss")
        self.loss_plot.setLabel("bottom", "iteration")
        self.loss_plot.setMinimumHeight(140)
        self.loss_plot.setDownsampling(auto=True, mode="peak")
        self.loss_plot.setClipToView(True)
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("#4fc3f7", width=1.5))
        self.nonfinite_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen("#ff5252", style=Qt.PenStyle.DashLine))
        self.nonfinite_line.setVisible(False)
        self.loss_plot.addItem(self.nonfinite_line)
        self.loss_note = QLabel()
        self.loss_note.setWordWrap(True)
        self.loss_note.setStyleSheet("color: #ff8a65;")
        self.loss_note.setVisible(False)

        self.criterion = QComboBox()
        self.criterion.setToolTip("Validation criterion shown in the plot below.")
        self.criterion.currentTextChanged.connect(self._on_criterion_currentTextChanged)
        self.score_plot = pg.PlotWidget(title="validation")
        self.score_plot.setLabel("bottom", "iteration")
        self.score_plot.setMinimumHeight(140)
        self.score_curve = self.score_plot.plot(
            pen=pg.mkPen("#aed581", width=1.5), symbol="o", symbolSize=5
        )
        self.best_marker = pg.ScatterPlotItem(
            symbol="star", size=16, brush=pg.mkBrush("#ffd54f"), pen=pg.mkPen(None)
        )
        dashed = pg.mkPen("#ffd54f", style=Qt.PenStyle.DashLine)
        self.best_line = pg.InfiniteLine(angle=90, pen=dashed)
        self.best_line.setVisible(False)
        self.score_plot.addItem(self.best_marker)
        self.score_plot.addItem(self.best_line)
        self.best_label = QLabel("no validation yet")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.loss_plot, self.loss_note, self.criterion, self.score_plot,
                       self.best_label):
            layout.addWidget(widget)

        self._timer = QTimer(self)
        self._timer.setInterval(redraw_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._timer.start()

    # -- data ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all points (a new run)."""
        self._loss_x, self._loss_y, self._nonfinite = [], [], []
        self._scores, self._best = {}, {}
        self.criterion.clear()
        self._dirty = True

    def add_loss(self, iteration: int, loss: float) -> None:
        if math.isfinite(loss):
            self._loss_x.append(iteration)
            self._loss_y.append(loss)
        else:
            self._nonfinite.append((int(iteration), float(loss)))
        self._dirty = True

    def add_scores(self, iteration: int, values: dict[str, float]) -> None:
        """One validated iteration: ``{criterion: value}``."""
        for criterion, value in values.items():
            if criterion not in self._scores:
                self._scores[criterion] = {}
                self.criterion.addItem(criterion)
            self._scores[criterion][iteration] = value
        self._dirty = True

    def set_best(self, best: dict[str, tuple[int, float]]) -> None:
        """``{criterion: (iteration, value)}``."""
        self._best = dict(best)
        self._dirty = True

    def show_run(self, info: Any, previous: Any = None) -> None:
        """Show a stored run's curves (a :class:`~napari_dacapo.gui.run_info.RunInfo` read
        with curves). When ``previous`` is an earlier read of the same run, only the
        iterations trained since are added: a followed run's long loss curve is not
        rebuilt every few seconds."""
        loss = info.loss
        shown = loss.iterations[:0]
        if previous is not None and previous.name == info.name:
            shown = previous.loss.iterations
        if shown.size > loss.iterations.size or not np.array_equal(
                shown, loss.iterations[: shown.size]) or shown.size == 0:
            self.reset()
            shown = shown[:0]
        new = slice(shown.size, None)
        finite = np.isfinite(loss.values[new])
        self._loss_x += loss.iterations[new][finite].tolist()
        self._loss_y += loss.values[new][finite].tolist()
        self._nonfinite += zip(loss.iterations[new][~finite].tolist(),
                               loss.values[new][~finite].tolist())
        self._dirty = True
        for criterion, curve in info.scores.items():
            for iteration, value in zip(curve.iterations, curve.values):
                self.add_scores(int(iteration), {criterion: float(value)})
        self.set_best(info.best)

    # -- drawing ---------------------------------------------------------------------------

    def _on_timer_timeout(self) -> None:
        if self._dirty:
            self.redraw()

    def _on_criterion_currentTextChanged(self, _: str) -> None:
        self.redraw()

    def _draw_nonfinite(self) -> None:
        shown = bool(self._nonfinite)
        self.nonfinite_line.setVisible(shown)
        self.loss_note.setVisible(shown)
        if not shown:
            self.loss_note.setText("")
            return
        iteration, loss = self._nonfinite[0]
        self.nonfinite_line.setPos(iteration)
        more = len(self._nonfinite) - 1
        self.loss_note.setText(
            f"loss {loss} at iteration {iteration} (red line), not drawn"
            + (f"; {more} later loss(es) not finite either" if more else "")
        )

    def redraw(self) -> None:
        """Draw the collected points now."""
        self._dirty = False
        self.loss_curve.setData(np.asarray(self._loss_x), np.asarray(self._loss_y))
        self._draw_nonfinite()
        criterion = self.criterion.currentText()
        points = sorted(self._scores.get(criterion, {}).items())
        xs = np.asarray([p[0] for p in points], dtype=float)
        ys = np.asarray([p[1] for p in points], dtype=float)
        finite = np.isfinite(ys)
        self.score_curve.setData(xs[finite], ys[finite])
        best = self._best.get(criterion)
        if best is None or not math.isfinite(best[1]):
            self.best_marker.setData([], [])
            self.best_line.setVisible(False)
            self.best_label.setText(
                f"{criterion}: no best yet" if criterion else "no validation yet"
            )
            return
        iteration, value = best
        self.best_marker.setData([iteration], [value])
        self.best_line.setPos(iteration)
        self.best_line.setVisible(True)
        self.best_label.setText(f"best {criterion}: {value:.4g} at iteration {iteration}")
