"""The runs browser: the runs of a store folder (e.g. a cluster's shared one), their loss
and validation curves, and what to do next (continue, fine-tune, open outputs as layers).

Every read runs in a worker; every few seconds a timer lists the store folder (runs that
appeared or went, and the progress of the runs whose files or trainer changed) and
re-reads the selected run, showing the latest snapshot of a run that trains, so runs
training in other processes can be followed (:mod:`.run_follow`). Nothing here writes to
a store; a run another process trains, of another store than the training panel's, or
made from a config file (not from layers) cannot be continued from here.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import FileEdit
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

from napari_dacapo.gui.data_panel import made_from_layers
from napari_dacapo.gui.layers import show
from napari_dacapo.gui.panel_close import when_closed
from napari_dacapo.gui.plots import TrainingPlots
from napari_dacapo.gui.run_follow import (
    FollowUpdate,
    SnapshotKey,
    follow_text,
    made_from_file,
    not_ours,
    poll_run,
)
from napari_dacapo.gui.run_info import RunInfo, RunsRead, fine_tune_config, read_runs
from napari_dacapo.store.file_store import FileStore

if TYPE_CHECKING:
    import napari

__all__ = ["RunsWidget", "training_panel"]

#: Display name of the training panel in the manifest (how napari docks it).
TRAINING_PANEL = "DaCapo training"
COLUMNS = ("run", "iterations", "best")


def training_panel(viewer: Any) -> Any:
    """The docked training panel of ``viewer``, docking one if there is none."""
    panel = docked_training_panel(viewer)
    if panel is None:
        panel = viewer.window.add_plugin_dock_widget("napari-dacapo", TRAINING_PANEL)[1]
    return panel


def docked_training_panel(viewer: Any) -> Any:
    """The training panel docked in ``viewer``, or None."""
    from napari_dacapo.gui.train_widget import TrainWidget

    widgets = viewer.window.dock_widgets.values()
    return next((w for w in widgets if isinstance(w, TrainWidget)), None)


class RunsWidget(QWidget):
    """Dock widget: browse the runs of a store folder, follow one, continue or fine-tune it.

    Parameters
    ----------
    viewer
        The napari viewer (outputs open as its layers; its training panel continues runs).
    store
        The store shown first (default: :class:`FileStore`'s default root); the store
        folder field opens another one.
    """

    #: How often the store folder and the followed run are checked, in milliseconds.
    FOLLOW_MS = 3000
    #: How long the store folder's text must stay unchanged before it is opened.
    TYPING_MS = 500

    def __init__(self, viewer: napari.viewer.Viewer, store: FileStore | None = None) -> None:
        super().__init__()
        self.viewer = viewer
        self.store = store or FileStore()
        self.runs: dict[str, RunInfo | str] = {}
        self.stamps: dict[str, tuple[Any, ...]] = {}  # per run, as last listed
        self.selected: RunInfo | None = None
        self.snapshot: SnapshotKey | None = None  # the latest snapshot of the selected run
        self.workers: set[Any] = set()
        # Set when the panel is closed (its dock's ×) or its Qt widget is gone: results of
        # late workers are then dropped, and following stops.
        self._closed = threading.Event()
        self._gone = ""  # a note on a selected run deleted meanwhile, shown once read
        when_closed(self, self._on_closed, destroyed=self._closed.set)

        self.store_edit = FileEdit(mode="d", value=self.store.root)
        self.store_edit.tooltip = ("The folder whose runs are listed, e.g. a cluster's shared "
                                   "store: runs are only read, never written")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.refresh_button = QPushButton("Refresh")
        self.follow_check = QCheckBox("Follow the runs")
        self.follow_check.setChecked(True)
        self.follow_check.setToolTip("Every few seconds, list runs that appeared or went and "
                                     "update the progress of the others; re-read the selected"
                                     " run's curves and best checkpoint and, while it trains "
                                     "(e.g. in another process), show its latest snapshot as "
                                     "layers")
        self.follow_label = QLabel()
        self.follow_label.setWordWrap(True)
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
        for item in (self.store_edit.native, self.refresh_button, self.table,
                     self.follow_check, self.follow_label, self.plots, buttons, self.status):
            (layout.addLayout if isinstance(item, QGridLayout) else layout.addWidget)(item)

        self.timer = QTimer(self)
        self.timer.setInterval(self.FOLLOW_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        # Typing a path changes it per key: open the folder once the typing pauses.
        self.store_timer = QTimer(self, singleShot=True, interval=self.TYPING_MS)
        self.store_timer.timeout.connect(self._on_store_timer_timeout)
        self.store_edit.changed.connect(self._on_store_edit_changed)
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.follow_check.toggled.connect(self._on_follow_check_toggled)
        self.continue_button.clicked.connect(self.continue_run)
        self.finetune_button.clicked.connect(self.fine_tune)
        self.open_button.clicked.connect(self.open_outputs)
        self._on_follow_check_toggled(True)
        self.refresh()

    # -- reading -------------------------------------------------------------------------------

    def _read(self, function: Any, *args: Any, done: Any, what: str) -> Any:
        """Run ``function(*args)`` in a worker; ``done`` gets its result in the GUI thread.
        A failure is shown in the status, saying it could not read ``what``."""
        # Errors are shown by _on_read_errored, not re-raised (a traceback on stderr).
        worker = create_worker(function, *args, _start_thread=False,
                               _connect={"errored": lambda e: self._on_read_errored(what, e)})
        self.workers.add(worker)
        worker.returned.connect(lambda result: None if self._closed.is_set() else done(result))
        worker.finished.connect(lambda: self.workers.discard(worker))
        worker.start()
        return worker

    def _on_read_errored(self, what: str, error: Exception) -> None:
        if not self._closed.is_set():  # kept next to the table, where it is read
            self.status.setText(f"Cannot read {what} ({type(error).__name__}: {error}). "
                                f"Check that the store folder is readable, then press "
                                f"Refresh.")

    def set_store(self, store: FileStore) -> None:
        """Show the runs of ``store`` instead (opening it creates nothing there)."""
        self.store = store
        if Path(self.store_edit.value) != store.root:
            self.store_edit.value = store.root
        self.runs, self.stamps, self.selected, self.snapshot = {}, {}, None, None
        self.table.setRowCount(0)
        self.follow_label.clear()
        self.plots.reset()
        self.refresh()

    def _on_store_edit_changed(self, _: Any) -> None:
        self.store_timer.start()

    def _on_store_timer_timeout(self) -> None:
        if Path(self.store_edit.value).expanduser().absolute() != self.store.root:
            self.set_store(FileStore(self.store_edit.value))

    def refresh(self) -> None:
        """Re-list the stored runs and re-read them all (in a worker)."""
        self.status.setText(f"Reading runs in {self.store.root}…")
        self._list(None)

    def _list(self, stamps: dict[str, tuple[Any, ...]] | None) -> None:
        """List the runs, reading those whose stamp is not in ``stamps`` (None: all), but
        the selected run, which :meth:`_poll` reads."""
        store = self.store
        skip = None if stamps is None or self.selected is None else self.selected.name
        self._read(read_runs, store, stamps, skip,
                   done=lambda read: self._on_runs_read(store, read, full=stamps is None),
                   what=f"the runs in {store.root}")

    def _on_runs_read(self, store: FileStore, read: RunsRead, full: bool) -> None:
        if store is not self.store:
            return  # another store was opened meanwhile
        current = self.selected_name()
        gone = current is not None and current not in read.names
        if gone and not self._gone:
            self._gone = f"Run '{current}' is no longer in {self.store.root}."
        previous = {} if full else self.runs
        runs = {n: read.runs[n] if n in read.runs else previous[n]
                for n in read.names if n in read.runs or n in previous}
        # A run not read now (the selected one) keeps its stamp: read again once it changed.
        stamps = {n: read.stamps.get(n, self.stamps.get(n)) for n in runs}
        self.stamps = {n: stamp for n, stamp in stamps.items() if stamp is not None}
        listed, self.runs = list(self.runs) != list(runs), runs
        if full or listed:
            self._fill_table(current, quiet=not full)
        else:
            for name in read.runs:  # progress of the other runs, selection kept
                self._fill_row(list(runs).index(name), runs[name])
        empty = f"No runs stored in {self.store.root} yet."
        text = self.status.text()
        # Said once: a later listing replaces only what a listing said.
        if full or self._gone or (listed and (not runs or text == empty)) or text.startswith(
                f"Cannot read the runs in {self.store.root}"):
            self.status.setText(self._gone or ("" if runs else empty))
        self._gone = ""
        if gone:
            self.plots.reset()
        name = self.selected_name()
        if not full and name is not None:  # (a full listing selects it again: read then)
            if self.selected is not None:
                self._poll(name, self.selected.stamp, first=False)
            elif name in read.runs:
                self._on_table_selection_changed()  # it was unreadable
        self._refresh_enabled()

    def _fill_table(self, current: str | None, quiet: bool) -> None:
        """Fill the table with :attr:`runs`, ``current`` selected if still listed; when
        ``quiet``, a run kept selected is not read again from scratch."""
        self.table.blockSignals(quiet)
        try:
            self.table.setRowCount(len(self.runs))
            # Rows are refilled in place, and removing a selected last row selects the row
            # above: a selection left would name another run, so it is made again below.
            self.table.setCurrentCell(-1, -1)
            self.table.clearSelection()
            for row, name in enumerate(self.runs):
                self._fill_row(row, self.runs[name])
            if current in self.runs:
                self.table.selectRow(list(self.runs).index(current))
        finally:
            self.table.blockSignals(False)
        if quiet and current is not None and current not in self.runs:
            self._on_table_selection_changed()  # it went

    def _fill_row(self, row: int, info: RunInfo | str) -> None:
        name = info.name if isinstance(info, RunInfo) else list(self.runs)[row]
        cells = (name, info.iterations_text(), info.best_text()) if isinstance(
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
        self.selected, self.snapshot = None, None
        self.follow_label.clear()
        name = self.selected_name()
        if name is not None and isinstance(self.runs.get(name), RunInfo):
            self._poll(name, (), first=True)
        self._refresh_enabled()

    def _on_timer_timeout(self) -> None:
        # One read at a time: a slow disk must not pile up workers.
        if not self.workers:
            self._list(dict(self.stamps))

    def _poll(self, name: str, stamp: tuple[Any, ...], first: bool) -> None:
        """Read what changed in run ``name`` since ``stamp`` (in a worker)."""
        store = self.store
        self._read(poll_run, store, name, stamp, self.snapshot, self.follow_check.isChecked(),
                   first, done=lambda update: self._on_run_polled(store, name, update),
                   what=f"run '{name}'")

    def _on_closed(self) -> None:
        self._closed.set()
        self.timer.stop()
        self.store_timer.stop()

    def _on_follow_check_toggled(self, checked: bool) -> None:
        (self.timer.start if checked else self.timer.stop)()

    def _on_run_polled(self, store: FileStore, name: str, update: FollowUpdate) -> None:
        if store is not self.store or name != self.selected_name():
            return  # the selection (or the store) moved on meanwhile
        self._show_layers(update.layers or [])
        info = update.info
        if info is not None:
            previous, self.selected = self.selected, info
            self.runs[name] = info
            self._fill_row(list(self.runs).index(name), info)
            self.plots.show_run(info, previous)
            self.status.setText(info.note)
        if info is not None or update.snapshot != self.snapshot:
            self.snapshot = update.snapshot
            self.follow_label.setText(follow_text(
                self.selected, self.plots.criterion.currentText(), self.snapshot))
        self._refresh_enabled()

    # -- actions -------------------------------------------------------------------------------

    def _refresh_enabled(self) -> None:
        name, info = self.selected_name(), self.selected
        if name is None:
            reason = "Select a run in the table."
        elif isinstance(self.runs.get(name), str):
            reason = f"Run '{name}' is {self.runs[name]}"
        else:
            reason = f"Reading run '{name}'…" if info is None else ""
        opened = reason
        if not reason:
            panel = docked_training_panel(self.viewer)
            # A panel docked later gets the default store.
            reason = not_ours(info, self.store.root,
                              FileStore().root if panel is None else panel.store.root)
        finetune = reason or ("" if info.checkpoints else
                              f"Run '{name}' has no checkpoint to start from "
                              f"{'(pruned or deleted)' if info.done else 'yet'}.")
        resume = reason or " ".join(filter(None, (
            info.resume_problem, "" if made_from_layers(info.config) else
            made_from_file(info, self.store.root, fine_tune=not finetune))))
        for button, why, tip in (
            (self.continue_button, resume, "Train this run further in the training panel"),
            (self.finetune_button, finetune,
             "A new run in the training panel, starting from this run's weights"),
            (self.open_button, opened, "Open its snapshots, validation outputs and "
             "predictions as layers"),
        ):
            button.setEnabled(not why)
            button.setToolTip(why or tip)

    def continue_run(self) -> None:
        """Load the selected run into the training panel, to train it further."""
        if self.continue_button.isEnabled():
            training_panel(self.viewer).load_run(self.selected.name)

    def fine_tune(self) -> None:
        """Fill the training panel with a new run that starts from the selected run's best
        checkpoint for the chosen criterion (its latest one before any validation)."""
        if self.finetune_button.isEnabled():
            config = fine_tune_config(self.store, self.selected,
                                      self.plots.criterion.currentText())
            training_panel(self.viewer).set_config(config)
            show_info(f"Training panel: new run '{config.name}' starting from "
                      f"'{self.selected.name}' ({config.start_config.criterion}). Pick its "
                      f"data and press Train.")

    def open_outputs(self) -> None:
        """Open the selected run's outputs as layers (read in a worker)."""
        from napari_dacapo._reader import read_run

        if self.selected is not None:
            name = self.selected.name
            self._read(read_run, self.store.run_dir(name), done=self._on_outputs_read,
                       what=f"the outputs of run '{name}'")

    def _on_outputs_read(self, layers: list[tuple[Any, dict[str, Any], str]]) -> None:
        if not layers:
            show_info("This run has no snapshots, validation outputs or predictions yet.")
        self._show_layers(layers)

    def _show_layers(self, layers: list[tuple[Any, dict[str, Any], str]]) -> None:
        for data, meta, kind in layers:
            meta = dict(meta)
            show(self.viewer, meta.pop("name"), data, kind, **meta)
