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
from .layer_arrays import (
    channels_last,
    channels_last_problem,
    first_axis_is_time,
    frame_split_fix,
    layer_data,
    layer_leading_channels,
    short_first_axis,
    stack_as_volume,
)
from .presets import PRESETS, fit_to_voxels, task_defaults, task_for_dims

#: The preset box's entry for settings loaded from a file or a run.
LOADED = "(loaded settings)"
from .run_info import unique_run_name

__all__ = ["SettingsPanel", "channels_last", "channels_last_problem", "image_note"]

RUN_FIELDS = config_files.RUN_FIELDS


def image_note(layer: Any, dims: int) -> str:
    """What to know about how a ``dims``-D network reads the raw image ``layer`` (empty
    when nothing): a channels-last image; a first axis read as channels, which a time
    series or a stack of 2D frames is not; or a stack read as a volume that may be one."""
    if layer is None or getattr(layer, "rgb", False):
        return ""
    shape = tuple(layer_data(layer).shape)
    if channels_last(layer):
        return (f"'{layer.name}' {shape}: its last axis looks like {shape[-1]} channels, but "
                f"channels are read from the first axis (see the reason under Train).")
    time = first_axis_is_time(layer)
    if len(shape) == dims and dims == 3 and stack_as_volume(layer):
        why = ("its first axis is labelled time" if time else
               "its first axis is much shorter than the others and not placed as z")
        return (
            f"'{layer.name}' {shape} is read as a 3D volume of {shape[0]} z-slices (the "
            f"network is 3D), but {why}. If it is time or a stack of 2D frames, split a "
            f"frame into its own layer and paint labels on that frame (a 2D network learns "
            f"from single frames), {frame_split_fix(layer)}. If it is a volume, give its "
            f"first axis the z spacing as scale, or label it z (in napari's console: "
            f"viewer.layers['{layer.name}'].axis_labels = ('z', 'y', 'x'))."
        )
    if len(shape) != dims + 1:
        return ""
    # A 3D network is no answer for a few frames, nor for a first axis labelled time.
    as_3d = (" Or train it as a 3D volume (a 3D preset)."
             if dims == 2 and not time and not short_first_axis(shape) else "")
    lead = ("Its first axis is labelled time: split" if time else
            f"If its first axis is time or a stack of {dims}D frames, split")
    return (
        f"'{layer.name}' {shape} is read as {shape[0]} channels of one {dims}D image (fmaps "
        f"in {shape[0]}): a model trained on it predicts only {shape[0]}-channel images. "
        f"{lead} it into {dims}D frames and paint labels on one, {frame_split_fix(layer)}."
        f"{as_3d}"
    )


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
        # The preset and network the panel set last (by a preset or fitted to an image):
        # a network still so is fitted again to the next image picked.
        self._automatic: tuple[str, CNNectomeUNetConfig] | None = (
            "2D small", preset.architecture())
        # The picked image's spatial voxel size and shape (see match_image): a preset picked
        # later is fitted to them as the first automatic fit was.
        self._image: tuple[tuple[float, ...], tuple[int, ...]] | None = None
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
        # Picking the preset shown (after the network was edited) applies it again, which
        # currentTextChanged does not say.
        self.presets.textActivated.connect(self._on_presets_text_activated)

    def _on_form_changed(self, *_: Any) -> None:
        self.changed.emit()

    def _on_presets_text_activated(self, name: str) -> None:
        if self._automatic_preset() != name:  # else currentTextChanged has just applied it
            self.apply_preset(name)

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
            "architecture_config": self.preset_network(name, fmaps_in),
            "trainer_config": preset.trainer(),
            "num_iterations": preset.num_iterations,
            "validation_interval": preset.validation_interval,
        })
        if isinstance(task, TaskConfig):
            self.task_form.set_value(task_for_dims(task, preset.dims))
        self._automatic = (name, self.architecture_form.value())

    def preset_network(self, name: str, fmaps_in: int = 1) -> CNNectomeUNetConfig:
        """The network the preset ``name`` sets: its own, fitted to the voxels and extent of
        the image picked last (see :meth:`match_image` and
        :func:`~.presets.fit_to_voxels`; unchanged for isotropic voxels)."""
        preset = PRESETS[name]
        network = preset.architecture(fmaps_in)
        if self._image is None or len(self._image[0]) < preset.dims:
            return network
        voxel_size, shape = self._image
        return fit_to_voxels(network, voxel_size[-preset.dims:], shape[-preset.dims:])

    def _automatic_preset(self) -> str | None:
        """The preset the network was set from, by the panel, if it is still unchanged
        (``fmaps_in`` aside)."""
        if self._automatic is None:
            return None
        name, network = self._automatic
        try:
            current = self.architecture_form.value()
        except (FormError, ConfigError):
            return None
        same = isinstance(current, CNNectomeUNetConfig) and \
            current.replace(fmaps_in=1) == network.replace(fmaps_in=1)
        return name if same else None

    def match_image(self, layer: Any) -> None:
        """Fit the network to a newly picked image: a preset of its number of axes when
        the network has another, and ``fmaps_in`` = its channels. A preset's network (one
        the panel set and nobody changed) is fitted to anisotropic voxels (see
        :func:`~.presets.fit_to_voxels`); a channels-last image changes no preset (the
        Train reason says to move its channels first). None: no image is picked."""
        self._image = None
        if layer is None:
            return
        shape = layer_data(layer).shape
        spatial = shape[:-1] if layer.rgb else shape
        if not channels_last(layer):
            self._image = tuple(float(v) for v in layer.scale), tuple(int(n) for n in spatial)
        try:
            dims = len(self.architecture_form.values()["input_shape"])
        except (FormError, TypeError):
            return
        channels = shape[-1] if layer.rgb else 1
        if channels_last(layer):
            self.architecture_form.set_value({"fmaps_in": shape[-1]})
            return
        # Channels first as the writer saves them (leading_channels): a short first axis
        # placed with a z spacing, or named z by our reader, is a volume, not channels.
        if layer.ndim == dims + 1 and layer_leading_channels(layer):
            channels = shape[0]
        elif layer.ndim != dims and layer.ndim in (2, 3):
            name = f"{layer.ndim}D small"
            with QSignalBlocker(self.presets):
                self.presets.setCurrentText(name)
            self.apply_preset(name)
            dims = layer.ndim
        preset = self._automatic_preset()
        if preset is not None and PRESETS[preset].dims == dims:
            fitted = self.preset_network(preset, channels)
            self.architecture_form.set_value(fitted)
            self._automatic = (preset, fitted)
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
        self._automatic = None  # loaded settings stay as they are
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
