"""The DaCapo training panel: data, task, network, trainer and run settings, the run
controls, progress and plots; outputs stream into the viewer as layers.

The forms are generated from the config classes (:mod:`.forms`); the panel only
assembles a :class:`RunConfig` from them and the picked layers, says why it cannot train
(:meth:`TrainWidget._refresh_enabled`), and hands the config to its
:class:`~.controller.TrainingController`, which trains it on a worker thread.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QGroupBox, QScrollArea, QVBoxLayout, QWidget

from napari_dacapo._reader import NO_UNIT, run_units
from napari_dacapo.experiments import (
    AffinitiesTaskConfig,
    ConfigError,
    OneHotTaskConfig,
    RunConfig,
)
from napari_dacapo.experiments.configs import scale_world_lengths
from napari_dacapo.store.file_store import FileStore, StoreError, world_factor_of

from .controller import RunPrepared, TrainingController, ValidationSummary, trained_here
from .data_check import DataCheck
from .data_panel import DataPanel, DataProblem, DataSelection, made_from_layers
from .forms import FormError
from .intensities import IntensityMeasure, scaled_datasplit
from .live_view import LivePredictionReady, LiveView
from .outputs import OutputLayers
from .panel_close import when_closed
from .plots import TrainingPlots
from .presets import PRESETS, is_anisotropic
from .run_data import add_run_data
from .run_info import STORE_POLL_MS
from .settings_panel import SettingsPanel, channels_last, channels_last_problem, image_note
from .state import TrainingState
from .train_status import StatusPanel

if TYPE_CHECKING:
    import napari

__all__ = ["TrainWidget"]

REFRESH_MS = 150


class TrainWidget(QWidget):
    """Dock widget: configure a run on the viewer's layers and train it.

    Parameters
    ----------
    viewer
        The napari viewer whose layers are the data and receive the outputs.
    store
        Where runs are stored (default: :class:`FileStore`'s default root).
    """

    def __init__(self, viewer: napari.viewer.Viewer, store: FileStore | None = None) -> None:
        super().__init__()
        self.viewer = viewer
        self.store = store or FileStore()
        self.state = TrainingState()
        self.controller = TrainingController(self.state, self.store)
        self.controller.watch(self)
        self._config: RunConfig | None = None
        self._continue: RunConfig | None = None
        self._continue_until: int | None = None  # the iteration Continue stops at
        self._started_total: int | None = None  # num iterations once Continue's run starts
        self._selection: DataSelection | None = None

        self.data = DataPanel(viewer)
        self.data_check = DataCheck()
        self.intensities = IntensityMeasure()
        self._intensity_note = self._starts_over = ""
        self.settings = SettingsPanel(self.store)
        self.status = StatusPanel(self.state)
        status = self.status
        self.train_button, self.continue_button = status.train_button, status.continue_button
        self.pause_button, self.resume_button = status.pause_button, status.resume_button
        self.stop_button = status.stop_button
        self.plots = TrainingPlots()
        self.outputs = OutputLayers(viewer, parent=self)
        self.live = LiveView(viewer, self.controller.request_live, parent=self)
        self._build_layout()

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_enabled)
        self._checkpoints_seen: tuple[Any, ...] | None = None  # as the last refresh saw them
        self._store_timer = QTimer(self)
        self._store_timer.setInterval(STORE_POLL_MS)
        self._store_timer.timeout.connect(self._on_store_timer_timeout)
        self._store_timer.start()
        # Closed (its dock's ×) or destroyed (with the viewer): stop following the viewer's
        # layers and the store, and drop the outputs still to show (the controller stops
        # training, see TrainingController.watch). Once destroyed, Qt objects are gone.
        following = (self.data.close, self.data_check.close, self.intensities.close)
        when_closed(self, partial(_call_all, (
            *following, self.outputs.close, self.live.end, self._refresh_timer.stop,
            self._store_timer.stop,
        )), destroyed=partial(_call_all, following))
        self.settings.changed.connect(self._schedule_refresh)
        self.data.changed.connect(self._schedule_refresh)
        self.data.raw.changed.connect(self._on_raw_changed)
        self.status.more_iterations.valueChanged.connect(self._schedule_refresh)
        self.status.live.toggled.connect(self._on_live_toggled)
        self.train_button.clicked.connect(self.train)
        self.continue_button.clicked.connect(self.continue_training)
        self.pause_button.clicked.connect(self.controller.pause)
        self.resume_button.clicked.connect(self.controller.resume)
        self.stop_button.clicked.connect(self.controller.stop)
        self.controller.received.connect(self._on_controller_received)
        self.state.events.phase.connect(self._on_phase_changed)
        self.state.events.data_status.connect(self.data.show_status)
        self._on_raw_changed(self.data.raw.value)
        self._refresh_enabled()

    def _build_layout(self) -> None:
        def group(title: str, widget: Any) -> QGroupBox:
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(widget)
            return box

        self.inputs = [group("Data", self.data.widget.native), self.settings]
        content = QWidget()
        layout = QVBoxLayout(content)
        for widget in (*self.inputs, group("Train", self.status), group("Curves", self.plots)):
            layout.addWidget(widget)
        layout.addStretch()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    # -- configuration ---------------------------------------------------------------------

    def set_config(self, run_config: RunConfig) -> None:
        """Fill the forms from ``run_config``; its data are added as layers (and picked)
        when no raw layer is picked yet."""
        run_dir = self._stored_run_dir(run_config)
        factor = world_factor_of(run_dir) if run_dir is not None else 1.0
        if self.data.raw.value is None and run_config.datasplit_config is not None:
            # A stored run's data open where its outputs open, in the same units.
            try:
                layers = add_run_data(self.viewer, run_config, factor,
                                      run_units(run_dir) if run_dir is not None else ())
            except (OSError, ValueError, KeyError) as error:  # moved or deleted meanwhile
                layers = None
                show_warning(f"The data of run '{run_config.name}' cannot be opened "
                             f"({error}); only its settings are loaded. Open its image and "
                             f"labels and pick them here.")
            if layers is not None:
                self.data.reset_choices()
                # Picks the run has no data for are cleared: the panel must build the
                # stored datasplit again (e.g. no validation region of another run left
                # picked).
                for picker in self.data.pickers:
                    picker.value = None
                for role, layer in layers.items():
                    getattr(self.data, role).value = layer
        # The forms show lengths in the layers' units (see _run_config).
        task = scale_world_lengths(run_config.task_config, 1 / factor)
        self.settings.set_config(run_config.replace(task_config=task))
        self._refresh_enabled()

    def _stored_run_dir(self, run_config: RunConfig) -> Path | None:
        """The folder of the run (or, for a new run started from a stored one, of that
        run), whose display record says the world factor and units it was trained with
        (none for a run from elsewhere, a YAML file or the CLI); None if not stored."""
        start = getattr(run_config.start_config, "run", None)
        for name in (run_config.name, start):
            if name and self.store.has_run(name):
                return self.store.run_dir(name)
        return None

    def load_run(self, name: str) -> None:
        """Fill the forms from the stored run ``name``, to continue it (Continue trains it
        further on the labels as they are now)."""
        config = self.store.retrieve_run_config(name)
        self.set_config(config)
        if not made_from_layers(config):
            show_info(f"Loaded the settings of run '{name}', which was made from a config "
                      f"file: train it further with 'napari-dacapo train --run {name} "
                      f"--iterations N'; here, give the run a new name to train these "
                      f"settings on layers.")
            return
        if problem := self.store.resume_problem(name):
            show_warning(f"Loaded run '{name}'. {problem}")
        elif self.store.latest_iteration(name) is None:
            show_info(f"Loaded run '{name}', which has no checkpoint yet: press Train.")
        else:
            show_info(f"Loaded run '{name}'. Press Continue to train it further on the "
                      f"current labels.")

    def _on_raw_changed(self, layer: Any) -> None:
        self.settings.match_image(layer)  # None too: presets are then fitted to no image

    # -- checks ----------------------------------------------------------------------------

    def _schedule_refresh(self, *_: Any) -> None:
        self.data_check.invalidate()  # data, picks or task may have changed
        self._refresh_timer.start()

    def _refresh_enabled(self) -> str:
        """Build the run config from forms and layers; set why Train (and Continue) cannot
        run, shown next to the buttons. Returns Train's reason (empty: enabled)."""
        if self.state.phase.busy:
            return self.state.reason_disabled
        self._config = self._continue = None
        self._checkpoints_seen = None
        self._intensity_note, warnings = "", []
        self._image_note = self._starts_over = ""
        try:
            self._config, self._selection = self._run_config()
            reason, continue_reason = self._store_reasons(self._config)
            # Reading the data's content is slow for large layers: it runs in a worker and
            # refreshes this when done; until then training's own checks guard Train.
            problem = self.data_check.problem(self._config, self._schedule_check_refresh)
            if problem:
                reason = continue_reason = problem
                self._continue = None
            warnings = self.data_check.warnings()
        except (FormError, ConfigError, DataProblem, StoreError) as error:
            reason = continue_reason = str(error)
        self.state.data_status = "\n".join(
            filter(None, [self._image_note, self._intensity_note, self._starts_over,
                          *warnings]))
        self.state.reason_disabled = reason
        self.status.set_continue_reason(continue_reason)
        self._show_run(self._run_name())
        return reason

    def _run_name(self) -> str:
        """The run name in the form ("" while it cannot be read)."""
        try:
            return str(self.settings.run_form.values().get("name") or "")
        except (FormError, ConfigError):
            return ""

    def _show_run(self, name: str) -> None:
        """Show run ``name`` under Train once the form names another run than the one
        shown (loaded, or its name typed): its stored progress (latest checkpoint of its
        stored total), or a blank state for a run not stored, and no curves; never the
        progress, loss or outcome of the run trained before."""
        if not name or name == self.state.run or self.state.phase.busy:
            return
        iteration = total = 0
        message = ""
        try:
            if self.store.has_run(name):
                seen = self._checkpoints_seen  # listed by this refresh, if it got that far
                config = self._config
                iterations = (seen[0] if seen is not None and config is not None
                              and config.name == name
                              else self.store.checkpoint_iterations(name))
                total = self.store.retrieve_run_config(name).num_iterations
                iteration = iterations[-1] if iterations else 0
                message = (f"run '{name}' is stored at iteration {iteration} of {total}"
                           if iterations else f"run '{name}' is stored, with no checkpoint")
        except (StoreError, OSError, ValueError):  # e.g. a bad name: Train's reason says so
            iteration = total = 0
            message = ""
        self.state.show_stored(name, iteration, total, message)
        self.plots.reset()

    def _schedule_check_refresh(self) -> None:
        self._refresh_timer.start()  # the data did not change: keep the check's result

    def _checkpoints_state(self, name: str) -> tuple[Any, ...]:
        """What the buttons depend on in the store besides the config (cheap to read): the
        checkpoints, listed once, and why the run cannot continue from them."""
        iterations = tuple(self.store.checkpoint_iterations(name))
        return iterations, self.store.resume_problem(name, iterations)

    def _on_store_timer_timeout(self) -> None:
        config = self._config
        if self.state.phase.busy or config is None or self._checkpoints_seen is None:
            return
        if self._checkpoints_state(config.name) != self._checkpoints_seen:
            self._schedule_check_refresh()

    def _run_config(self) -> tuple[RunConfig, DataSelection]:
        settings = self.settings.settings()
        architecture = settings["architecture_config"]
        dims = len(architecture.input_shape)
        raw = self.data.raw.value
        # How the network reads the image, where that may surprise (under the pickers).
        self._image_note = image_note(raw, dims)
        if raw is not None and channels_last(raw):
            raise DataProblem(channels_last_problem(raw))
        selection = self.data.selection(dims)
        if architecture.fmaps_in != selection.channels:
            raise DataProblem(
                f"The raw image has {selection.channels} channel(s) but the network's fmaps "
                f"in is {architecture.fmaps_in}. Set fmaps in to {selection.channels}."
            )
        geometry = architecture.geometry()
        region = selection.region.shape / selection.voxel_size
        clip_raw = settings["trainer_config"].clip_raw
        needed = architecture.input_shape if clip_raw else geometry.output_shape(
            architecture.input_shape)
        if any(n > r for n, r in zip(needed, region)):
            # The nearest valid shape within both the region and the current input.
            below, _ = geometry.nearest_valid_input_shapes(
                [min(r, i) for r, i in zip(region, architecture.input_shape)])
            fixes = [f"use input shape {tuple(below)} or smaller" if below is not None
                     else "use fewer downsampling levels"]
            anisotropic = self._anisotropic_fix(selection.voxel_size, selection.factor,
                                                region, clip_raw)
            if anisotropic:
                fixes.insert(0, anisotropic)
            raise DataProblem(
                f"The network {'input' if clip_raw else 'output'} {tuple(needed)} is larger "
                f"than the annotated region {tuple(region)} (voxels where image and labels "
                f"overlap): {', or '.join(fixes)}, or annotate a larger region."
            )
        # The run is in integer world units (the layers' scale times selection.factor):
        # lengths the user gives in the layers' units (a clip distance) are scaled alike.
        settings["task_config"] = scale_world_lengths(settings["task_config"], selection.factor)
        datasplit, self._intensity_note = scaled_datasplit(
            selection, settings["name"], self.store, self.intensities,
            self._schedule_check_refresh,
        )
        return RunConfig(datasplit_config=datasplit, **settings), selection

    def _anisotropic_fix(self, voxel_size: Any, factor: int, region: Any,
                         clip_raw: bool) -> str:
        """For anisotropic voxels, the preset to pick whose network, fitted to them (see
        :meth:`SettingsPanel.preset_network`), fits ``region`` (empty if none does): the
        one shown first. ``voxel_size`` is in the run's units, ``factor`` times the
        layers'."""
        if not is_anisotropic(voxel_size):
            return ""
        shown = self.settings.presets.currentText()
        for name in sorted(PRESETS, key=lambda name: name != shown):
            if PRESETS[name].dims != len(region):
                continue
            network = self.settings.preset_network(name)
            needed = network.input_shape if clip_raw else network.geometry().output_shape(
                network.input_shape)
            if all(n <= r for n, r in zip(needed, region)):
                sizes = tuple(round(v / factor, 6) for v in voxel_size)
                sizes = tuple(int(v) if v == int(v) else v for v in sizes)
                again = " again" if name == shown else ""
                return (f"pick the preset '{name}'{again} to fit the network to these "
                        f"anisotropic voxels (voxel size {sizes})")
        return ""

    def _store_reasons(self, config: RunConfig) -> tuple[str, str]:
        """Why Train and why Continue cannot run ``config`` given the stored run of its
        name (a different config, trained already, no checkpoint); sets what Continue
        trains: the config (``num_iterations`` raised to cover the panel's "+N") and the
        iteration it stops at (``_continue_until``: exactly "+N" past the latest
        checkpoint)."""
        name = config.name
        if not self.store.has_run(name):
            return "", f"Run '{name}' is not stored yet: press Train first."
        self._checkpoints_seen = iterations, problem = self._checkpoints_state(name)
        done = iterations[-1] if iterations else None
        stored_config = self.store.retrieve_run_config(name)
        stored = stored_config.num_iterations
        self._continue_until = (done or 0) + self.status.more_iterations.value()
        # The store refuses a smaller num_iterations, so a Continue that ends before the
        # stored total keeps it and stops early through train_until instead.
        total = max(stored, self._continue_until)
        # Raises StoreError (for both buttons) when the config differs from the stored one.
        # Compared at the stored total unless the form asks for more, so the report never
        # names num_iterations when the user did not raise it (Continue's total is ours).
        try:
            self.store.check_run_config(
                config.replace(num_iterations=max(stored, config.num_iterations))
            )
        except StoreError as error:
            if made_from_layers(stored_config):
                if "datasplit_config" not in str(error):
                    raise
                raise StoreError(f"{error} {_other_data(stored_config, config)}") from None
            # Its datasplit cannot be made again from layers: say how it does continue.
            raise StoreError(
                f"{error} Run '{name}' was made from a config file, not from napari layers: "
                f"train it further with 'napari-dacapo train --run {name} --iterations N'."
            ) from None
        # No checkpoint left of a trained run (Train starts over), or the latest cut short
        # (Train would resume from it too).
        if problem:
            if done is None:  # Train starts over: said before it is pressed, and as it starts
                self._starts_over = f"Train: {problem}"
                return "", problem
            return problem, problem
        if done is None:
            return "", f"Run '{name}' has no checkpoint yet: press Train."
        self._continue = config.replace(num_iterations=total)
        if config.num_iterations < stored:
            return (f"Run '{name}' is stored to train {stored} iterations: set num iterations "
                    f"to {stored} or more, or press Continue."), ""
        if done >= config.num_iterations:
            return (f"Run '{name}' is trained ({done} of {config.num_iterations} iterations): "
                    f"press Continue to train it further, or choose a new run name."), ""
        return "", ""

    # -- running ---------------------------------------------------------------------------

    def train(self) -> bool:
        """Start training the configured run; shows why not if it cannot."""
        reason = self._refresh_enabled()
        if not reason and self._config is not None:
            reason = trained_here(self.store, self._config.name, but=self.controller)
        if reason or self._config is None:
            show_error(f"Cannot train: {reason}")
            return False
        self._started_total = None
        return self._start(self._config)

    def continue_training(self) -> bool:
        """Train the stored run further, on the labels as they are now."""
        self._refresh_enabled()
        if self._continue is None:
            show_error(f"Cannot continue: {self.status.continue_button.toolTip()}")
            return False
        if here := trained_here(self.store, self._continue.name, but=self.controller,
                                button="Continue"):
            show_error(f"Cannot continue: {here}")
            return False
        started = self._start(self._continue, self._continue_until)
        # The form shows the stored total once the run stored it (see RunStarted): a
        # Continue that fails before leaves the form as the user set it.
        self._started_total = self._continue.num_iterations if started else None
        return started

    def _start(self, config: RunConfig, train_until: int | None = None) -> bool:
        selection = self._selection
        assert selection is not None
        task = config.task_config
        rgb = isinstance(task, AffinitiesTaskConfig)
        raw_rgb = bool(getattr(selection.raw_layer, "rgb", False))
        value_range = (0.0, 1.0) if isinstance(task, (AffinitiesTaskConfig, OneHotTaskConfig)) \
            else (-1.0, 1.0)
        self.plots.reset()
        self.outputs.begin(config.name, selection.factor, selection.dims, rgb, value_range,
                           raw_rgb=raw_rgb)
        self.live.enabled = self.status.live.isChecked()
        self.live.begin(selection.raw_layer, selection.voxel_size, selection.offset,
                        selection.dims)
        display: dict[str, Any] = {"world_factor": selection.factor}
        units = [str(u) for u in selection.raw_layer.units[-selection.dims:]]
        if any(u != NO_UNIT for u in units):  # physical units: an export says them
            display["units"] = units
        if raw_rgb:  # the run folder opens its raw crops in RGB, as shown here
            display["rgb"] = True
        return self.controller.start(config, display, train_until)

    def _on_live_toggled(self, on: bool) -> None:
        self.live.enabled = on
        if not on:
            self.controller.forget_live()

    def _on_phase_changed(self, phase: Any) -> None:
        for widget in self.inputs:
            widget.setEnabled(not phase.busy)
        if not phase.busy:
            self.outputs.end()
            self.live.end()
            self._schedule_refresh()

    def _on_controller_received(self, event: Any) -> None:
        from napari_dacapo.train import IterationDone, RunStarted, SnapshotTaken, ValidationDone

        match event:
            case RunStarted() if self._started_total is not None:
                self.settings.set_settings({"num_iterations": self._started_total})
                self._started_total = None
            case IterationDone():
                self.plots.add_loss(event.iteration, event.loss)
                self.live.iteration = event.iteration + 1
            case SnapshotTaken():
                self.outputs.snapshot(event.arrays)
            case ValidationDone():
                self.outputs.validation(event.arrays)
                self.plots.set_best(event.best)
            case ValidationSummary():
                self.plots.add_scores(event.iteration, event.values)
            case LivePredictionReady():
                self.outputs.put("live", event.data, event.offset, event.voxel_size,
                                 predicted=True)
                self.live.shown(event)
            case RunPrepared():
                for iteration, loss in zip(event.loss_iterations, event.losses):
                    self.plots.add_loss(int(iteration), float(loss))
                for iteration, values in sorted(event.scores.items()):
                    self.plots.add_scores(iteration, values)
                self.plots.set_best(event.best)


def _call_all(callbacks: tuple[Any, ...]) -> None:
    for callback in callbacks:
        callback()


def _other_data(stored: RunConfig, config: RunConfig) -> str:
    """What to do when the layers picked do not make run ``stored``'s datasplit again (e.g.
    napari reopened without its validation region)."""
    held, picked = (len(c.datasplit_config.validate_configs) for c in (stored, config))
    what = (f"it was validated on {held} dataset(s) or region(s), {picked} are picked now"
            if held != picked else "the image, labels, mask or validation data picked are not "
            "those it was trained on")
    return (f"The data picked here are not the run's ({what}). To continue it on its own "
            f"data, set raw to empty and load the run again (runs browser > Continue): its "
            f"image, labels and validation region come back as layers.")
