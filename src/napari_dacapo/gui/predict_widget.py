"""The predict panel: a stored run's checkpoint applied to an image layer, tile by tile.

The inputs (run, checkpoint, the image's data reference and geometry, the region) are
taken on the GUI thread; :func:`prediction_events` runs in a worker and yields each tile;
the GUI writes it into the output layers' arrays and refreshes them. Cancel sets an event
the worker checks between tiles, so the prediction generator is closed at once (releasing
the device) instead of whenever it is garbage-collected.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from funlib.geometry import Roi
from magicgui.widgets import CheckBox, ComboBox, Container, Label, ProgressBar, PushButton
from napari.layers import Image, Shapes
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from napari_dacapo.experiments.datasplits.datasets.arrays.array import voxel_slices
from napari_dacapo.gui.layer_arrays import (
    layer_array_config,
    layer_geometry_values,
    napari_geometry,
    spatial_dims,
    world_factor,
)
from napari_dacapo.gui.layers import layer_name, show
from napari_dacapo.gui.prediction_job import (
    LabelsDone,
    PredictJob,
    TileDone,
    image_mismatch,
    prediction_events,
)
from napari_dacapo.gui.regions import region_roi
from napari_dacapo.gui.run_info import RunInfo, read_run_info
from napari_dacapo.predict import PredictionStarted
from napari_dacapo.store.file_store import FileStore

if TYPE_CHECKING:
    import napari

__all__ = ["PredictWidget"]

WHOLE, VIEW = "whole image", "current view"
#: Least time between two redraws of the output layers while tiles arrive.
REFRESH_SECONDS = 0.1


class PredictWidget(Container):
    """Dock widget: predict an image layer with a stored run's checkpoint.

    Parameters
    ----------
    viewer
        The napari viewer whose layers are read and written.
    store
        Where runs are stored (default: :class:`FileStore`'s default root).
    """

    def __init__(self, viewer: napari.viewer.Viewer, store: FileStore | None = None) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.store = store or FileStore()
        self.info: RunInfo | None = None
        self.worker: Any = None
        self._info_worker: Any = None
        self._cancel = threading.Event()
        # Set when the panel's Qt widget is gone: late worker signals are then ignored.
        self._closed = threading.Event()
        self._outputs: dict[str, np.ndarray] = {}
        self._names: dict[str, str] = {}
        self._start: PredictionStarted | None = None
        self._factor = 1
        self._last_refresh = 0.0
        self._range = (np.inf, -np.inf)  # of the prediction's values so far
        self._outcome = ""  # how the last prediction ended, shown while nothing is wrong

        self.run_choice = ComboBox(label="run", choices=lambda _: self.store.list_runs(),
                                   tooltip=f"Runs stored in {self.store.root}")
        self.refresh_button = PushButton(text="Refresh runs")
        self.checkpoint_choice = ComboBox(
            label="checkpoint", choices=self._checkpoint_choices,
            tooltip="latest, best:<criterion> (best validated iteration) or an iteration",
        )
        self.image_choice = ComboBox(label="image", choices=self._image_layers)
        self.region_choice = ComboBox(label="region", choices=self._regions,
                                      tooltip="Predict everything, the part in view, or the "
                                      "box around a Shapes layer's (selected) shapes")
        self.labels_check = CheckBox(text="labels (best post-processing)", value=True)
        self.predict_button = PushButton(text="Predict")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="tiles", min=0, max=1, value=0)
        self.status = Label(value="")
        self.native.destroyed.connect(self._closed.set)
        self.extend([
            self.run_choice, self.refresh_button, self.checkpoint_choice, self.image_choice,
            self.region_choice, self.labels_check, self.predict_button, self.cancel_button,
            self.progress, self.status,
        ])

        self.refresh_button.clicked.connect(self.refresh_runs)
        self.run_choice.changed.connect(self._on_run_choice_changed)
        self.predict_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        for widget in (self.checkpoint_choice, self.image_choice, self.region_choice,
                       self.labels_check):
            widget.changed.connect(self._refresh_enabled)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._on_layers_changed)
        self._on_run_choice_changed()

    # -- choices -------------------------------------------------------------------------------

    def _checkpoint_choices(self, _: Any = None) -> list[str]:
        return self.info.checkpoint_choices if self.info else []

    def _image_layers(self, _: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _regions(self, _: Any = None) -> list[tuple[str, Any]]:
        shapes = [(f"shapes in '{layer.name}'", layer) for layer in self.viewer.layers
                  if isinstance(layer, Shapes)]
        return [(WHOLE, WHOLE), (VIEW, VIEW), *shapes]

    def _on_layers_changed(self, _: Any = None) -> None:
        for widget in (self.image_choice, self.region_choice):
            widget.reset_choices()
        self._refresh_enabled()

    def refresh_runs(self, _: Any = None) -> None:
        """Re-list the stored runs and re-read the chosen one."""
        self.run_choice.reset_choices()
        self._on_run_choice_changed()

    def _on_run_choice_changed(self, _: Any = None) -> None:
        self.info = None
        self.checkpoint_choice.reset_choices()
        name = self.run_choice.value
        if name is not None:
            # Read off the GUI thread: the run may live on a slow (network) disk.
            self._info_worker = create_worker(read_run_info, self.store, name,
                                              _start_thread=False)
            self._info_worker.returned.connect(self._on_info_worker_returned)
            self._info_worker.start()
        self._refresh_enabled()

    def _on_info_worker_returned(self, info: RunInfo) -> None:
        if self._closed.is_set() or info.name != self.run_choice.value:
            return  # the user picked another run meanwhile
        self.info = info
        self.checkpoint_choice.reset_choices()
        self._refresh_enabled()

    # -- enabling ------------------------------------------------------------------------------

    def reason_disabled(self) -> str:
        """Why Predict cannot start now ('' when it can)."""
        image = self.image_choice.value
        if self.worker is not None:
            return "Predicting… (Cancel stops after the current tile)"
        if self.run_choice.value is None:
            return (f"No runs are stored in {self.store.root}. Train one in the DaCapo "
                    f"training panel, then press Refresh runs.")
        if self.info is None:
            return f"Reading run '{self.run_choice.value}'…"
        if not self.info.checkpoints:
            return f"Run '{self.info.name}' has no checkpoint yet: train it first."
        if image is None:
            return "Add or open an image layer to predict."
        return image_mismatch(image, self.info)

    def _refresh_enabled(self, _: Any = None) -> None:
        labelled = bool(self.info and self.info.best)
        self.labels_check.enabled = labelled and self.worker is None
        self.labels_check.tooltip = "" if labelled else (
            "Labels need the run's best post-processing parameters: validate the run first.")
        reason = self.reason_disabled()
        self.predict_button.enabled = not reason
        self.predict_button.tooltip = reason or "Predict the image with this checkpoint"
        self.cancel_button.enabled = self.worker is not None
        self.status.value = reason or self._outcome

    # -- running -------------------------------------------------------------------------------

    def job(self) -> PredictJob:
        """The prediction the current choices describe (GUI thread: reads layers)."""
        image = self.image_choice.value
        dims = self.info.dims or spatial_dims(image)
        factor = world_factor(layer_geometry_values(image, dims))
        raw = layer_array_config(image, "input", dims, factor, channels_first=True)
        region = self.region_choice.value
        roi = None if region == WHOLE else region_roi(
            self.viewer, image, None if region == VIEW else region, raw.array())
        criterion = None
        if self.labels_check.value and self.labels_check.enabled:
            checkpoint = self.checkpoint_choice.value
            chosen = checkpoint[5:] if checkpoint.startswith("best:") else None
            criterion = chosen or next(c for c in self.info.criteria if c in self.info.best)
        self._factor = factor
        return PredictJob(self.store, self.info.name, self.checkpoint_choice.value, raw, roi,
                          criterion)

    def start(self, _: Any = None) -> None:
        """Start predicting with the current choices (does nothing while one runs)."""
        if self.reason_disabled():
            return
        try:
            job = self.job()
        except ValueError as e:  # e.g. no shapes drawn, or they miss the image
            self._outcome = str(e)
            show_error(str(e))
            self._refresh_enabled()
            return
        image = self.image_choice.value
        self._names = {
            "prediction": layer_name(job.run, f"prediction {image.name}"),
            "labels": layer_name(job.run, f"labels {image.name}"),
        }
        self._outputs = {}
        self._cancel = threading.Event()
        # Closing the panel (or napari) ends the prediction at its next tile.
        self.native.destroyed.connect(self._cancel.set)
        self._outcome = ""
        self.worker = create_worker(prediction_events, job, self._cancel, _start_thread=False)
        self.worker.yielded.connect(self._on_worker_yielded)
        self.worker.errored.connect(self._on_worker_errored)
        self.worker.finished.connect(self._on_worker_finished)
        self.progress.value = 0
        self._last_refresh = 0.0
        self._range = (np.inf, -np.inf)
        self._refresh_enabled()
        self.worker.start()

    def cancel(self, _: Any = None) -> None:
        """Stop the running prediction after its current tile."""
        if self.worker is not None:
            self._cancel.set()
            self.status.value = "Cancelling after the current tile…"

    def _on_worker_yielded(self, event: Any) -> None:
        if self._closed.is_set():
            return
        match event:
            case PredictionStarted():
                self._start = event
                self.progress.max = max(event.num_tiles, 1)
                self._outputs["prediction"] = np.zeros(event.shape, np.float32)
                self._show("prediction", self._outputs["prediction"], "image")
            case TileDone():
                self._write("prediction", event.roi, event.prediction, "image")
                if event.labels is not None:
                    self._write("labels", event.roi, event.labels, "labels")
                self.progress.value = event.index
                low, high = float(event.prediction.min()), float(event.prediction.max())
                self._range = (min(self._range[0], low), max(self._range[1], high))
                if time.monotonic() - self._last_refresh > REFRESH_SECONDS:
                    self._refresh_outputs()
            case LabelsDone():
                self._outputs["labels"] = event.labels
                self._show("labels", event.labels, "labels")

    def _write(self, output: str, roi: Roi, data: np.ndarray, kind: str) -> None:
        start = self._start
        if output not in self._outputs:
            shape = (data.shape[0], *start.shape[1:])
            self._outputs[output] = np.zeros(shape, data.dtype)
            self._show(output, self._outputs[output], kind)
        target = self._outputs[output]
        target[(slice(None), *voxel_slices(roi, start.roi.begin, start.voxel_size))] = data

    def _show(self, output: str, data: np.ndarray, kind: str) -> None:
        """Show ``(channels, *spatial)`` data (a lone channel dropped) over the image."""
        geometry = napari_geometry(self._start.voxel_size, self._start.roi.offset, self._factor)
        if data.ndim > len(geometry["scale"]):
            if data.shape[0] == 1:
                data = data[0]
            else:  # channels get an axis (a slider) of their own
                geometry = {k: ((1.0 if k == "scale" else 0.0), *v) for k, v in geometry.items()}
        kwargs = {"blending": "additive"} if kind == "image" else {"opacity": 0.6}
        show(self.viewer, self._names[output], data, kind, **geometry, **kwargs)

    def _refresh_outputs(self) -> None:
        """Redraw the output layers; the prediction's contrast spans the values of the tiles
        so far (known from the tiles: no scan of the whole array on the GUI thread)."""
        self._last_refresh = time.monotonic()
        for output in self._outputs:
            if self._names[output] in self.viewer.layers:
                layer = self.viewer.layers[self._names[output]]
                if output == "prediction" and self._range[1] > self._range[0]:
                    layer.contrast_limits = self._range
                layer.refresh()

    def _on_worker_errored(self, error: Exception) -> None:
        # napari shows the error itself; the status keeps it next to the panel.
        self._outcome = f"Prediction failed: {error}"

    def _on_worker_finished(self) -> None:
        self.worker = None
        if self._closed.is_set():
            return
        self.native.destroyed.disconnect(self._cancel.set)
        if self._outputs:
            self._refresh_outputs()
        if self._cancel.is_set():
            self._outcome = "Cancelled; the tiles done so far are shown."
            show_info("Prediction cancelled.")
        elif not self._outcome:
            self._outcome = f"Predicted {', '.join(self._names[o] for o in self._outputs)}."
        self._refresh_enabled()
