"""The settings part of the training panel: task, network, trainer and run, as forms
generated from the config classes (:mod:`.forms`), with presets and settings files."""

from __future__ import annotations

from typing import Any

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QSignalBlocker, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_dacapo.experiments import (
    CNNectomeUNetConfig,
    ConfigError,
    DefaultTrainerConfig,
    RunConfig,
)
from napari_dacapo.experiments.tasks.task_config import TaskConfig
from napari_dacapo.store.file_store import FileStore

from . import config_files
from .forms import ConfigChoiceForm, ConfigForm, FormError
from .presets import PRESETS, task_defaults, task_for_dims

#: The preset box's entry for settings loaded from a file or a run.
LOADED = "(loaded settings)"
from .run_info import unique_run_name

__all__ = ["SettingsPanel"]

RUN_FIELDS = config_files.RUN_FIELDS
#: A first axis this short is taken as channels when the image has one axis too many.
MAX_CHANNELS = 8


class SettingsPanel(QWidget):
    """Forms for the task, the network (with presets), the trainer and the run.

    ``changed`` is emitted whenever a value changes.
    """

    changed = Signal()

    def __init__(self, store: FileStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        preset = PRESETS["2D small"]
        self.task_form = ConfigChoiceForm(TaskConfig, task_defaults(preset.dims))
        self.presets = QComboBox()
        # LOADED is shown for settings from a file or a run, so that picking any preset
        # then is a change (and applies it).
        self.presets.addItems([*PRESETS, LOADED])
        self.presets.setToolTip("Fill network and trainer with a preset for this kind of data.")
        self.architecture_form = ConfigForm(CNNectomeUNetConfig, preset.architecture())
        self.trainer_form = ConfigForm(DefaultTrainerConfig, preset.trainer())
        self.run_form = ConfigForm(RunConfig, fields=RUN_FIELDS, hidden=())
        self.run_form.set_value({
            "name": unique_run_name(store, "run"),
            "num_iterations": preset.num_iterations,
            "validation_interval": preset.validation_interval,
        })
        load, save = QPushButton("Load settings..."), QPushButton("Save settings...")
        load.setToolTip("Fill the forms from a YAML file: saved settings or a run config "
                        "(napari-dacapo's or DaCapo's).")
        save.setToolTip("Save task, network, trainer and run settings as YAML.")
        load.clicked.connect(self._on_load_clicked)
        save.clicked.connect(self._on_save_clicked)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for title, widgets in (("Task", [self.task_form]),
                               ("Network", [self.presets, self.architecture_form]),
                               ("Training", [self.trainer_form]), ("Run", [self.run_form])):
            box = QGroupBox(title)
            inner = QVBoxLayout(box)
            for widget in widgets:
                inner.addWidget(getattr(widget, "native", widget))
            layout.addWidget(box)
        files = QHBoxLayout()
        files.addWidget(load)
        files.addWidget(save)
        layout.addLayout(files)

        for form in (self.task_form, self.architecture_form, self.trainer_form, self.run_form):
            form.changed.connect(self._on_form_changed)
        self.presets.currentTextChanged.connect(self.apply_preset)

    def _on_form_changed(self, *_: Any) -> None:
        self.changed.emit()

    # -- values ----------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """Task, architecture and trainer configs and the run fields: a RunConfig's
        keyword arguments but its datasplit (raises FormError or ConfigError)."""
        return {
            "task_config": self.task_form.value(),
            "architecture_config": self.architecture_form.value(),
            "trainer_config": self.trainer_form.value(),
            **self.run_form.values(),
        }

    def set_settings(self, settings: dict[str, Any]) -> None:
        """Show ``settings`` (as :meth:`settings` gives them; missing keys stay)."""
        if "architecture_config" in settings:
            architecture = settings["architecture_config"]
            self.architecture_form.set_value(architecture)
            self.task_form.defaults = task_defaults(len(architecture.input_shape))
        if "trainer_config" in settings:
            self.trainer_form.set_value(settings["trainer_config"])
        if "task_config" in settings:
            self.task_form.set_value(settings["task_config"])
        self.run_form.set_value({k: v for k, v in settings.items() if k in RUN_FIELDS})

    def set_config(self, config: RunConfig) -> None:
        """Show the settings of ``config`` (its datasplit is not part of them)."""
        self.set_settings({key: getattr(config, key) for key in
                           ("task_config", "architecture_config", "trainer_config",
                            *RUN_FIELDS)})
        self._show_loaded()

    def apply_preset(self, name: str) -> None:
        """Fill network, trainer and schedule from the preset ``name`` (see PRESETS); the
        task is kept, made to fit the preset's number of axes."""
        if name not in PRESETS:  # LOADED: nothing to apply
            return
        preset = PRESETS[name]
        fmaps_in = self.architecture_form.values().get("fmaps_in", 1)
        try:
            task = self.task_form.value()
        except (FormError, ConfigError):
            task = None
        self.set_settings({
            "architecture_config": preset.architecture(fmaps_in),
            "trainer_config": preset.trainer(),
            "num_iterations": preset.num_iterations,
            "validation_interval": preset.validation_interval,
        })
        if isinstance(task, TaskConfig):
            self.task_form.set_value(task_for_dims(task, preset.dims))

    def match_image(self, layer: Any) -> None:
        """Fit the network to a newly picked image: a preset of its number of axes when
        the network has another, and ``fmaps_in`` = its channels."""
        try:
            dims = len(self.architecture_form.values()["input_shape"])
        except (FormError, TypeError):
            return
        channels = 3 if layer.rgb else 1
        if layer.ndim == dims + 1 and layer.data.shape[0] <= MAX_CHANNELS:
            channels = layer.data.shape[0]
        elif layer.ndim != dims and layer.ndim in (2, 3):
            name = f"{layer.ndim}D small"
            with QSignalBlocker(self.presets):
                self.presets.setCurrentText(name)
            self.apply_preset(name)
        self.architecture_form.set_value({"fmaps_in": channels})

    # -- files -----------------------------------------------------------------------------

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load settings", "", "YAML (*.yaml *.yml)")
        if path:
            self.load(path)

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save settings", "", "YAML (*.yaml)")
        if path:
            self.save(path)

    def load(self, path: str) -> bool:
        """Fill the forms from a YAML file (see :mod:`.config_files`)."""
        try:
            self.set_settings(config_files.load_settings(path))
        except (ConfigError, OSError) as error:
            show_error(f"Cannot load {path}: {error}")
            return False
        self._show_loaded()
        return True

    def _show_loaded(self) -> None:
        with QSignalBlocker(self.presets):
            self.presets.setCurrentText(LOADED)

    def save(self, path: str) -> bool:
        """Save the forms' settings as YAML (see :mod:`.config_files`)."""
        try:
            config_files.save_settings(path, self.settings())
        except (FormError, ConfigError, OSError) as error:
            show_error(f"Cannot save the settings: {error}")
            return False
        show_info(f"Saved the run settings to {path}.")
        return True
