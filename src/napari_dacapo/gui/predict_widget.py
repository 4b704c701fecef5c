"""The predict panel: a stored run's checkpoint applied to an image layer.

Two modes. "tiles in memory": the inputs (run, checkpoint, the image's data reference and
geometry, the region) are taken on the GUI thread; :func:`prediction_events` runs in a
worker and yields the tiles a few at a time, never faster than the GUI applies them
(:class:`Pace`); the GUI writes them into the output layers' arrays
(:class:`PredictionLayers`). Cancel sets an event the worker checks between tiles, so the
prediction generator is closed at once (releasing the device) instead of whenever it is
garbage-collected; tiles already sent are dropped. A floating-point image in memory is
searched for NaN first (:class:`ImageValuesCheck`). "blockwise to zarr", chosen by itself
for images stored as zarr: worker processes write the prediction into a zarr array, shown
lazily (:class:`BlockwisePanel`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from funlib.geometry import Roi
from magicgui.widgets import CheckBox, ComboBox, Container, Label, ProgressBar, PushButton
from napari.layers import Image, Shapes
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer

from napari_dacapo.gui.blockwise_panel import BlockwisePanel
from napari_dacapo.gui.image_values import ImageValuesCheck
from napari_dacapo.gui.layer_arrays import (
    layer_array_config,
    layer_geometry_values,
    spatial_dims,
    world_factor,
)
from napari_dacapo.gui.layer_storage import zarr_location
from napari_dacapo.gui.layers import layer_name
from napari_dacapo.gui.panel_close import when_closed
from napari_dacapo.gui.predict_reasons import run_reason
from napari_dacapo.gui.prediction_job import (
    EXPLAINED_FAILURES,
    LabelsDone,
    Pace,
    PredictJob,
    TilesDone,
    image_mismatch,
    prediction_events,
    read_predict_info,
    voxel_size_warning,
)
from napari_dacapo.gui.predict_intensities import OWN_RANGE_BOX, ScaleCheck, ScaleOffer
from napari_dacapo.gui.prediction_layers import PredictionLayers
from napari_dacapo.gui.regions import region_roi, shapes_problem
from napari_dacapo.gui.run_info import STORE_POLL_MS, RunInfo
from napari_dacapo.predict import NON_FINITE_PREDICTION, PredictionStarted
from napari_dacapo.store.file_store import FileStore

if TYPE_CHECKING:
    import napari

__all__ = ["PredictWidget"]

logger = logging.getLogger(__name__)

WHOLE, VIEW = "whole image", "current view"
TILES, BLOCKWISE = "tiles in memory", "blockwise to zarr"


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
        self._info_error = ""  # why the chosen run could not be read
        self._criterion: str | None = None  # whose best post-processing made the labels
        # Checkpoints deleted or cut short behind the panel's back disable Predict too.
        self._store_timer = QTimer(self.native)
        self._store_timer.setInterval(STORE_POLL_MS)
        self._store_timer.timeout.connect(self._on_store_timer_timeout)
        self._store_timer.start()
        self._training_scales: list[tuple[float, ...]] = []  # of the run in self.info
        self._image: Any = None  # the chosen image, whose scale the status follows
        self._shapes: Shapes | None = None  # the chosen region's, whose edits it follows
        self.worker: Any = None
        self._info_worker: Any = None
        self._cancel = threading.Event()
        self._pace = Pace()  # how the running prediction hands its tiles over
        self._values = ImageValuesCheck()  # NaN or infinity in the picked image
        self._scales = ScaleCheck()  # the picked image's intensities against the run's
        # Set when the panel is closed (its dock's ×) or its Qt widget is gone: late worker
        # signals are then ignored.
        self._closed = threading.Event()
        self.layers: PredictionLayers | None = None  # of the in-memory prediction
        self._factor = 1
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
        self.mode_choice = ComboBox(
            label="mode", choices=(TILES, BLOCKWISE), tooltip=f"{TILES}: into layers, for "
            f"images that fit in memory; {BLOCKWISE}: for big images stored as zarr, by "
            f"worker processes into a zarr array (resumable), shown as it fills")
        self.labels_check = CheckBox(text="labels (best post-processing)", value=True)
        self.range_check = CheckBox(text=OWN_RANGE_BOX, value=False)
        self.predict_button = PushButton(text="Predict")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.blockwise = BlockwisePanel(viewer, self.progress, self._on_blockwise_finished)
        self.blockwise.visible = False
        self.status = Label(value="")
        # Destroyed (with the viewer), the panel's attributes may be gone already: what the
        # callback needs is taken now.
        closed, scales = self._closed, self._scales
        when_closed(self.native, self._on_closed,
                    destroyed=lambda: (closed.set(), scales.close()))
        self.extend([
            self.run_choice, self.refresh_button, self.checkpoint_choice, self.image_choice,
            self.region_choice, self.mode_choice, self.blockwise, self.labels_check,
            self.range_check,
            self.predict_button, self.cancel_button, self.progress, self.status,
        ])

        self.refresh_button.clicked.connect(self.refresh_runs)
        self.run_choice.changed.connect(self._on_run_choice_changed)
        self.predict_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.image_choice.changed.connect(self._on_image_choice_changed)
        for widget in (self.mode_choice, self.checkpoint_choice):
            widget.changed.connect(self._show_mode)
        self.region_choice.changed.connect(self._on_region_choice_changed)
        for widget in (self.labels_check, self.blockwise, self.range_check):
            widget.changed.connect(self._refresh_enabled)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._on_layers_changed)
        # An image already there: its mode, scale and values, as for one picked later.
        self._on_image_choice_changed(self.image_choice.value)
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

    def _on_image_choice_changed(self, image: Any = None) -> None:
        if image is not self._image and not self.running:
            self._outcome = ""  # how another image's prediction ended
        # The status notes a voxel size the run was not trained on: also once rescaled;
        # and new data is searched for NaN again.
        if self._image is not None:
            self._image.events.scale.disconnect(self._on_image_scale_changed)
            self._image.events.data.disconnect(self._on_image_data_changed)
        self._image = image
        if image is not None:
            image.events.scale.connect(self._on_image_scale_changed)
            image.events.data.connect(self._on_image_data_changed)
        # Images stored as zarr may be bigger than memory: blockwise unless the user says.
        if image is not None:
            self.mode_choice.value = BLOCKWISE if zarr_location(image) else TILES
        self._show_mode()

    def _on_closed(self) -> None:
        """Ignore late worker signals and stop following the viewer: a closed panel lives
        on until garbage-collected (if ever), and would otherwise search every new image
        and re-list the store."""
        self._closed.set()
        self._scales.close()
        self._store_timer.stop()
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed):
            event.disconnect(self._on_layers_changed)
        # napari connects a docked magicgui panel's reset_choices, and never disconnects it.
        for event in (events.inserted, events.removed, events.reordered, events.renamed):
            event.disconnect(self.reset_choices)
        if self._image is not None:
            self._image.events.scale.disconnect(self._on_image_scale_changed)
            self._image.events.data.disconnect(self._on_image_data_changed)
        if self._shapes is not None:
            self._shapes.events.data.disconnect(self._on_shapes_changed)
            self._shapes.selected_data.events.items_changed.disconnect(self._on_shapes_changed)
        self._image = self._shapes = None

    def _on_image_scale_changed(self, _: Any = None) -> None:
        if not self._closed.is_set():
            self._refresh_enabled()

    def _on_image_data_changed(self, _: Any = None) -> None:
        if not self._closed.is_set():
            self._refresh_enabled()  # new data: its values are searched again

    def _on_values_checked(self) -> None:
        if not self._closed.is_set():
            self._refresh_enabled()

    def _on_region_choice_changed(self, region: Any = None) -> None:
        # Predict is disabled while the region's shapes miss the image: their edits (and
        # selection, which picks the shapes used) are followed to re-check.
        if self._shapes is not None:
            self._shapes.events.data.disconnect(self._on_shapes_changed)
            self._shapes.selected_data.events.items_changed.disconnect(self._on_shapes_changed)
        self._shapes = region if isinstance(region, Shapes) else None
        if self._shapes is not None:
            self._shapes.events.data.connect(self._on_shapes_changed)
            self._shapes.selected_data.events.items_changed.connect(self._on_shapes_changed)
        self._refresh_enabled()

    def _on_shapes_changed(self, event: Any = None) -> None:
        # Once per edit: not while a shape is dragged ("changing") or about to change.
        action = getattr(event, "action", None)
        if not self._closed.is_set() and action not in ("adding", "changing", "removing"):
            self._refresh_enabled()

    def _on_store_timer_timeout(self) -> None:
        if self._closed.is_set():
            self._store_timer.stop()
        elif not self.running and self.info is not None:
            self._refresh_enabled()

    def _show_mode(self, _: Any = None) -> None:
        """Show the blockwise settings in blockwise mode, with the output suggested for
        the chosen image, run and checkpoint."""
        self.blockwise.visible = self.mode_choice.value == BLOCKWISE
        self.blockwise.suggest_output(self.image_choice.value, self.run_choice.value,
                                      self.checkpoint_choice.value, self.store.root)
        self._refresh_enabled()

    def refresh_runs(self, _: Any = None) -> None:
        """Re-list the stored runs and re-read the chosen one."""
        self.run_choice.reset_choices()
        self._on_run_choice_changed()

    def _on_run_choice_changed(self, _: Any = None) -> None:
        self.info, self._info_error = None, ""
        self.checkpoint_choice.reset_choices()
        name = self.run_choice.value
        if name is not None:
            # Read off the GUI thread: the run may live on a slow (network) disk.
            self._info_worker = create_worker(
                read_predict_info, self.store, name, _start_thread=False,
                _connect={"errored": lambda error: self._on_info_worker_errored(name, error)})
            self._info_worker.returned.connect(self._on_info_worker_returned)
            self._info_worker.start()
        self._refresh_enabled()

    def _on_info_worker_errored(self, name: str, error: Exception) -> None:
        # A run whose files cannot be read (e.g. a damaged config.yaml): said, not stuck
        # at "Reading run …".
        if not self._closed.is_set() and name == self.run_choice.value:
            self._info_error = (f"Run '{name}' cannot be read ({type(error).__name__}: "
                                f"{error}). Pick another run.")
            self._refresh_enabled()

    def _on_info_worker_returned(self, read: tuple[RunInfo, list]) -> None:
        info, scales = read
        if self._closed.is_set() or info.name != self.run_choice.value:
            return  # the user picked another run meanwhile
        self.info, self._training_scales = info, scales
        self.checkpoint_choice.reset_choices()
        self._show_mode()

    # -- enabling ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a prediction (of either mode) runs."""
        return self.worker is not None or self.blockwise.worker is not None

    def reason_disabled(self) -> str:
        """Why Predict cannot start now ('' when it can)."""
        image = self.image_choice.value
        blockwise = self.mode_choice.value == BLOCKWISE
        if self.blockwise.worker is not None:
            return ("Predicting: {} of {} blocks done (Cancel ends the workers; written blocks "
                    "stay)").format(*self.blockwise.done)
        if self.worker is not None:
            return "Predicting… (Cancel stops after the current tile)"
        reason = self._info_error or run_reason(self.store, self.run_choice.value, self.info,
                                                self.checkpoint_choice.value)
        if reason:
            return reason
        if image is None:
            return "Add or open an image layer to predict."
        region = self.region_choice.value
        return (image_mismatch(image, self.info)
                or (shapes_problem(self.viewer, image, region, self.info.dims
                                   or spatial_dims(image)) if isinstance(region, Shapes) else "")
                or (self.blockwise.reason_disabled(image) if blockwise else "")
                or self._values.problem(image, self._on_values_checked))

    def _refresh_enabled(self, _: Any = None) -> None:
        labelled = bool(self.info and self.info.best)
        blockwise = self.mode_choice.value == BLOCKWISE
        self.labels_check.enabled = labelled and not blockwise and not self.running
        self.labels_check.tooltip = (
            "Blockwise prediction writes the prediction only." if blockwise else "" if labelled
            else "Labels need the run's best post-processing parameters: validate the run "
            "first.")
        self._refresh_range_check()
        reason = self.reason_disabled()
        self.predict_button.enabled = not reason
        self.predict_button.tooltip = reason or "Predict the image with this checkpoint"
        self.cancel_button.enabled = self.running
        # Blockwise, the voxel size is the zarr array's: read at Predict, not at every
        # refresh (GUI thread; the file may be on a slow disk).
        note = "" if reason or blockwise else self.voxel_size_warning()[0]
        image = self.image_choice.value
        lazy = "" if reason or image is None else self._values.note(image)
        scale = "" if reason else self.intensity_warning()[0]
        self.status.value = reason or " ".join(filter(None, (self._outcome, note, lazy, scale)))

    def _refresh_range_check(self) -> None:
        """Offer the image's own intensity range where it fits the run: trained with a
        range, or without one on uint8 data (tiles and blockwise alike)."""
        offer = self._scale_offer()
        self.range_check.enabled = bool(offer and offer.own_range) and not self.running
        self.range_check.tooltip = offer.tooltip if offer else (
            "Reading how the run's training data was scaled…" if self.info else "")

    def _scale_offer(self) -> ScaleOffer | None:
        """What the box offers and the status says of the chosen image's intensities for
        the chosen run (None while that is read, in a worker)."""
        if self.info is None:
            return None
        return self._scales.offer(self.info.config, self.image_choice.value,
                                  self._on_scales_checked)

    def _on_scales_checked(self) -> None:
        if not self._closed.is_set():
            self._refresh_enabled()

    def intensity_warning(self, now: bool = False) -> tuple[str, str]:
        """``(note, warning)`` when the chosen image's intensities reach the network on
        another scale than the run's training data's and the box does not scale them from
        the image's own range, else ``("", "")``; ``now``: found on the GUI thread if the
        worker has not answered yet (at Predict)."""
        if self.info is None or self._own_range():
            return "", ""
        offer = (self._scales.now(self.info.config, self.image_choice.value) if now
                 else self._scale_offer())
        return (offer.note, offer.warning) if offer else ("", "")

    def voxel_size_warning(self) -> tuple[str, str]:
        """``(note, warning)`` when the chosen image's voxel size is none that the run
        was trained on (see :func:`.prediction_job.voxel_size_warning`), else
        ``("", "")``."""
        image = self.image_choice.value
        if image is None or self.info is None:
            return "", ""
        return voxel_size_warning(
            image, self.info.dims or spatial_dims(image), self.mode_choice.value == BLOCKWISE,
            self._training_scales, self.info.name,
        )

    # -- running -------------------------------------------------------------------------------

    def job(self) -> PredictJob:
        """The prediction the current choices describe (GUI thread: reads layers)."""
        image = self.image_choice.value
        dims = self.info.dims or spatial_dims(image)
        factor = world_factor(layer_geometry_values(image, dims))
        raw = layer_array_config(image, "input", dims, factor, channels_first=True)
        roi = self._region(raw.array())
        criterion = None
        if self.labels_check.value and self.labels_check.enabled:
            checkpoint = self.checkpoint_choice.value
            chosen = checkpoint[5:] if checkpoint.startswith("best:") else None
            criterion = chosen or next(c for c in self.info.criteria if c in self.info.best)
        self._factor = factor
        return PredictJob(self.store, self.info.name, self.checkpoint_choice.value, raw, roi,
                          criterion, self._own_range())

    def _own_range(self) -> bool:
        """Whether to scale the image from its own intensities (the box, where offered)."""
        return bool(self.range_check.value and self.range_check.enabled)

    def _region(self, array: Any) -> Roi | None:
        """The world ROI of the chosen region of the image (``array``), None for all."""
        region = self.region_choice.value
        return None if region == WHOLE else region_roi(
            self.viewer, self.image_choice.value, None if region == VIEW else region, array)

    def start(self, _: Any = None) -> None:
        """Start predicting with the current choices (does nothing while one runs, or
        when it cannot: the status then says why, e.g. a checkpoint deleted meanwhile)."""
        if self.reason_disabled():
            self._refresh_enabled()
            return
        blockwise = self.mode_choice.value == BLOCKWISE
        try:
            job = self.blockwise.make_job(
                self.image_choice.value, self.store.root, self.info.name,
                self.checkpoint_choice.value, self._region, self._own_range(),
            ) if blockwise else self.job()
        except ValueError as e:  # e.g. no shapes drawn, or they miss the image
            self._outcome = str(e)
            show_error(str(e))
            self._refresh_enabled()
            return
        image = self.image_choice.value
        self._outcome = ""
        warning = self.voxel_size_warning()[1]
        if warning:  # said before any work; predicting at another scale may be meant
            show_warning(warning)
        warning = self.intensity_warning(now=True)[1]
        if warning:  # likewise
            show_warning(warning)
        if blockwise:
            self.blockwise.start(job, layer_name(job.run, f"prediction {image.name}"))
            self._refresh_enabled()
            return
        self.layers = PredictionLayers(self.viewer, {
            "prediction": layer_name(job.run, f"prediction {image.name}"),
            "labels": layer_name(job.run, f"labels {image.name}"),
        }, self._factor)
        self._criterion = job.criterion
        self._cancel = threading.Event()
        self._pace = Pace()
        # Closing the panel (or napari) ends the prediction at its next tile.
        self._forget_close = when_closed(self.native, self._cancel.set)
        # Errors are shown by _on_worker_errored, not re-raised (a traceback on stderr).
        self.worker = create_worker(prediction_events, job, self._cancel, self._pace,
                                    _start_thread=False,
                                    _connect={"errored": self._on_worker_errored})
        self.worker.yielded.connect(self._on_worker_yielded)
        self.worker.finished.connect(self._on_worker_finished)
        self.progress.value = 0
        self._refresh_enabled()
        self.worker.start()

    def cancel(self, _: Any = None) -> None:
        """Stop the running prediction: after its current tile, or at once (blockwise)."""
        if self.blockwise.worker is not None:
            self.blockwise.cancel()
            self.status.value = "Cancelling: ending the worker processes…"
        elif self.worker is not None:
            self._cancel.set()
            self.status.value = "Cancelling after the current tile…"

    def _on_worker_yielded(self, event: Any) -> None:
        # Tiles that arrive after Cancel (at most the pace's few) are dropped unseen.
        if self._closed.is_set() or (self._cancel.is_set()
                                     and isinstance(event, (TilesDone, LabelsDone))):
            return
        if isinstance(event, PredictionStarted):
            self.progress.max = max(event.num_tiles, 1)
        try:
            self.layers.apply(event)
        finally:
            if isinstance(event, TilesDone):
                self._pace.applied()
        if isinstance(event, TilesDone):
            self.progress.value = event.done

    def _on_worker_errored(self, error: Exception) -> None:
        # Shown, and kept in the status next to the panel. The traceback is logged only
        # for a failure whose message does not name the fix (a bug, to report).
        if not isinstance(error, EXPLAINED_FAILURES):
            logger.error("Prediction failed", exc_info=error)
        self._outcome = f"Prediction failed: {error}"
        if not self._closed.is_set():
            show_error(self._outcome)

    def _on_worker_finished(self) -> None:
        self.worker = None
        if self._closed.is_set():
            return
        self._forget_close()
        outputs = self.layers.outputs
        if outputs:
            self.layers.refresh()
        if self._cancel.is_set():
            self._outcome = "Cancelled; the tiles done so far are shown."
            show_info("Prediction cancelled.")
        elif not self._outcome:
            criterion = self._criterion  # which best post-processing made the labels
            how = f" (labels with the parameters best for '{criterion}')" if criterion else ""
            self._outcome = (f"Predicted {', '.join(self.layers.names[o] for o in outputs)}"
                             f"{how}.")
        if not self.layers.finite:
            show_warning(NON_FINITE_PREDICTION)
        self._refresh_enabled()

    def _on_blockwise_finished(self, outcome: str) -> None:
        if not self._closed.is_set():
            self._outcome = outcome
            self._refresh_enabled()
