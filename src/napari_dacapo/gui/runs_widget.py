"""The runs browser: stored runs, their loss and validation curves, and what to do next
(continue training, fine-tune from one, open its outputs as layers).

Every read of the store runs in a worker; a timer re-reads the selected run every few
seconds (when its files changed), so a run training in another process (the CLI, a
cluster node) can be watched. Nothing here writes to a run.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_dacapo.gui.layers import show
from napari_dacapo.gui.plots import TrainingPlots
from napari_dacapo.gui.run_info import (
    RunInfo,
    read_if_changed,
    read_run_info,
    read_runs,
    unique_run_name,
)
from napari_dacapo.store.file_store import FileStore

if TYPE_CHECKING:
    import napari

__all__ = ["RunsWidget", "training_panel"]

#: Display name of the training panel in the manifest (how napari docks it).
TRAINING_PANEL = "DaCapo training"
COLUMNS = ("run", "iterations", "best")


def training_panel(viewer: Any) -> Any:
    """The docked training panel of ``viewer``, docking one if there is none."""
    from napari_dacapo.gui.train_widget import TrainWidget

    for widget in viewer.window.dock_widgets.values():
        if isinstance(widget, TrainWidget):
            return widget
    return viewer.window.add_plugin_dock_widget("napari-dacapo", TRAINING_PANEL)[1]


class RunsWidget(QWidget):
    """Dock widget: browse the stored runs, follow one, continue or fine-tune it.

    Parameters
    ----------
    viewer
        The napari viewer (outputs open as its layers; its training panel continues runs).
    store
        Where runs are stored (default: :class:`FileStore`'s default root).
    """

    #: How often a followed run's files are checked, in milliseconds.
    FOLLOW_MS = 3000

    def __init__(self, viewer: napari.viewer.Viewer, store: FileStore | None = None) -> None:
        super().__init__()
        self.viewer = viewer
        self.store = store or FileStore()
        self.runs: dict[str, RunInfo | str] = {}
        self.selected: RunInfo | None = None
        self.workers: set[Any] = set()
        # Set when the Qt widget is gone: results of late workers are then dropped.
        self._closed = threading.Event()
        self.destroyed.connect(self._closed.set)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.refresh_button = QPushButton("Refresh")
        self.follow_check = QCheckBox("Follow the selected run")
        self.follow_check.setChecked(True)
        self.follow_check.setToolTip("Re-read its loss and scores every few seconds, e.g. "
                                     "while it trains in another process")
        self.plots = TrainingPlots()
        self.plots.criterion.setToolTip("Validation criterion to plot and to fine-tune from")
        self.continue_button = QPushButton("Continue")
        self.finetune_button = QPushButton("Fine-tune")
        self.open_button = QPushButton("Open outputs")
        self.status = QLabel()
        self.status.setWordWrap(True)

        buttons = QGridLayout()
        for column, button in enumerate((self.continue_button, self.finetune_button,
                                         self.open_button)):
            buttons.addWidget(button, 0, column)
        layout = QVBoxLayout(self)
        for item in (self.refresh_button, self.table, self.follow_check, self.plots, buttons,
                     self.status):
            (layout.addLayout if isinstance(item, QGridLayout) else layout.addWidget)(item)

        self.timer = QTimer(self)
        self.timer.setInterval(self.FOLLOW_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.follow_check.toggled.connect(self._on_follow_check_toggled)
        self.continue_button.clicked.connect(self.continue_run)
        self.finetune_button.clicked.connect(self.fine_tune)
        self.open_button.clicked.connect(self.open_outputs)
        self._on_follow_check_toggled(True)
        self.refresh()

    # -- reading -------------------------------------------------------------------------------

    def _read(self, function: Any, *args: Any, done: Any) -> Any:
        """Run ``function(*args)`` in a worker; ``done`` gets its result in the GUI thread."""
        worker = create_worker(function, *args, _start_thread=False)
        self.workers.add(worker)
        worker.returned.connect(lambda result: None if self._closed.is_set() else done(result))
        # napari notifies the error itself; the status keeps it next to the table.
        worker.errored.connect(lambda error: None if self._closed.is_set() else
                               self.status.setText(f"Reading failed: {error}"))
        worker.finished.connect(lambda: self.workers.discard(worker))
        worker.start()
        return worker

    def refresh(self) -> None:
        """Re-list the stored runs (in a worker)."""
        self.status.setText(f"Reading runs in {self.store.root}…")
        self._read(read_runs, self.store, done=self._on_runs_read)

    def _on_runs_read(self, runs: dict[str, RunInfo | str]) -> None:
        current = self.selected_name()
        self.runs = runs
        self.table.setRowCount(len(runs))
        for row, name in enumerate(runs):
            self._fill_row(row, runs[name])
        self.status.setText("" if runs else f"No runs stored in {self.store.root} yet.")
        if current in runs:
            self.table.selectRow(list(runs).index(current))
        self._refresh_enabled()

    def _fill_row(self, row: int, info: RunInfo | str) -> None:
        name = info.name if isinstance(info, RunInfo) else list(self.runs)[row]
        cells = (name, f"{info.done}/{info.total}", info.best_text()) if isinstance(
            info, RunInfo) else (name, "—", info)
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            self.table.setItem(row, column, item)

    def selected_name(self) -> str | None:
        """The name of the run selected in the table, or None."""
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).text() if rows else None

    def _on_table_selection_changed(self) -> None:
        self.selected = None
        name = self.selected_name()
        if name is not None and isinstance(self.runs.get(name), RunInfo):
            self._read(read_run_info, self.store, name, True, done=self._on_run_read)
        self._refresh_enabled()

    def _on_timer_timeout(self) -> None:
        # One read at a time: a slow disk must not pile up workers.
        if self.selected is not None and not self.workers:
            self._read(read_if_changed, self.store, self.selected.name, self.selected.stamp,
                       done=self._on_run_read)

    def _on_follow_check_toggled(self, checked: bool) -> None:
        (self.timer.start if checked else self.timer.stop)()

    def _on_run_read(self, info: RunInfo | None) -> None:
        if info is None or info.name != self.selected_name():
            return  # unchanged, or the selection moved on meanwhile
        previous, self.selected = self.selected, info
        self.runs[info.name] = info
        self._fill_row(list(self.runs).index(info.name), info)
        self._plot(info, previous)
        self.status.setText(info.note)
        self._refresh_enabled()

    def _plot(self, info: RunInfo, previous: RunInfo | None) -> None:
        """Show ``info``'s curves; a followed run only adds the iterations it trained since
        ``previous`` was read (a long loss curve is not re-added every few seconds)."""
        loss = info.loss
        shown = previous.loss.iterations if previous is not None else loss.iterations[:0]
        extends = shown.size <= loss.iterations.size and np.array_equal(
            shown, loss.iterations[: shown.size])
        if previous is None or previous.name != info.name or not extends:
            self.plots.reset()
            shown = shown[:0]
        for iteration, value in zip(loss.iterations[shown.size:], loss.values[shown.size:]):
            self.plots.add_loss(int(iteration), float(value))
        for criterion, curve in info.scores.items():
            for iteration, value in zip(curve.iterations, curve.values):
                self.plots.add_scores(int(iteration), {criterion: float(value)})
        self.plots.set_best(info.best)

    # -- actions -------------------------------------------------------------------------------

    def _refresh_enabled(self) -> None:
        name, info = self.selected_name(), self.selected
        if name is None:
            reason = "Select a run in the table."
        elif isinstance(self.runs.get(name), str):
            reason = f"Run '{name}' is {self.runs[name]}"
        else:
            reason = f"Reading run '{name}'…" if info is None else ""
        finetune = reason or ("" if info.checkpoints else
                              f"Run '{name}' has no checkpoint to start from yet.")
        for button, why, tip in (
            (self.continue_button, reason, "Train this run further in the training panel"),
            (self.finetune_button, finetune,
             "A new run in the training panel, starting from this run's weights"),
            (self.open_button, reason, "Open its snapshots, validation outputs and "
             "predictions as layers"),
        ):
            button.setEnabled(not why)
            button.setToolTip(why or tip)

    def continue_run(self) -> None:
        """Load the selected run into the training panel, to train it further."""
        if self.selected is not None:
            training_panel(self.viewer).load_run(self.selected.name)

    def fine_tune(self) -> None:
        """Fill the training panel with a new run that starts from the selected run's best
        checkpoint for the chosen criterion (its latest one before any validation)."""
        from napari_dacapo.experiments.starts.start_config import StartConfig

        info = self.selected
        if info is None or not info.checkpoints:
            return
        criterion = self.plots.criterion.currentText()
        start = f"best:{criterion}" if criterion in info.best else "latest"
        config = info.config.replace(
            name=unique_run_name(self.store, f"{info.name}_finetune"),
            start_config=StartConfig(run=info.name, criterion=start),
        )
        training_panel(self.viewer).set_config(config)
        show_info(f"Training panel: new run '{config.name}' starting from '{info.name}' "
                  f"({start}). Pick its data and press Train.")

    def open_outputs(self) -> None:
        """Open the selected run's outputs as layers (read in a worker)."""
        from napari_dacapo._reader import read_run

        if self.selected is not None:
            self._read(read_run, self.store.run_dir(self.selected.name),
                       done=self._on_outputs_read)

    def _on_outputs_read(self, layers: list[tuple[Any, dict[str, Any], str]]) -> None:
        if not layers:
            show_info("This run has no snapshots, validation outputs or predictions yet.")
        for data, meta, kind in layers:
            meta = dict(meta)
            show(self.viewer, meta.pop("name"), data, kind, **meta)

