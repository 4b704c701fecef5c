"""The predict panel's "blockwise to zarr" mode: an image layer stored as zarr is predicted
block by block by daisy worker processes into a zarr array (see :mod:`.blockwise_job`).

While blocks complete, the output is shown as a layer whose data is the zarr array itself,
never loaded whole and never read on the GUI thread (:class:`.BackgroundReadArray`): as
done blocks are counted, the part in view is read again in a worker, at most as often as
such a read takes (and every ``REFRESH_SECONDS``), and the layer refreshed once it
arrives. Cancel ends the prediction's processes; finished blocks stay, and predicting the
same job again resumes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, Container, FileEdit, ProgressBar, SpinBox
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from napari_dacapo.blockwise.locations import check_output_path
from napari_dacapo.gui.background_reads import BackgroundReadArray
from napari_dacapo.gui.blockwise_job import (
    BlocksDone,
    BlockwiseJob,
    BlockwiseJobError,
    BlockwiseStarted,
    OutputReady,
    blockwise_events,
    default_output,
)
from napari_dacapo.gui.layer_storage import zarr_location
from napari_dacapo.gui.layers import output_layer, show_channels
from napari_dacapo.gui.panel_close import when_closed
from napari_dacapo.gui.prediction_job import EXPLAINED_FAILURES

if TYPE_CHECKING:
    from collections.abc import Callable

    from funlib.geometry import Roi

__all__ = ["BlockwisePanel"]

logger = logging.getLogger(__name__)

#: Least time between two reads of the output's part in view while blocks complete (and
#: at least as long as the last read took: reading then takes at most half of a core).
REFRESH_SECONDS = 0.5


class BlockwisePanel(Container):
    """The settings of a blockwise prediction (output, workers, overwrite) and the one
    prediction it runs at a time.

    Parameters
    ----------
    viewer
        The viewer that shows the output layer.
    progress
        The bar to fill with done blocks.
    finished
        Called (GUI thread) with a one-line outcome when a prediction ends.
    """

    def __init__(self, viewer: Any, progress: ProgressBar,
                 finished: Callable[[str], None]) -> None:
        super().__init__(labels=True)
        self.margins = (0, 0, 0, 0)
        self.viewer, self.progress, self._finished = viewer, progress, finished
        cores = os.cpu_count() or 1
        self.output_edit = FileEdit(
            mode="w", label="output", filter="*.zarr",
            tooltip="Where the prediction is written: container.zarr/dataset. Predicting the "
            "same job into it again resumes it.")
        self.workers_spin = SpinBox(label="workers", min=1, max=cores, value=min(2, cores),
                                    tooltip="Worker processes predicting blocks at once")
        self.overwrite_check = CheckBox(
            text="overwrite another prediction", value=False,
            tooltip="Replace an output that another run, checkpoint or region wrote (the "
            "same prediction always resumes)")
        self.extend([self.output_edit, self.workers_spin, self.overwrite_check])
        self.worker: Any = None
        self.job: BlockwiseJob | None = None
        self._cancel = threading.Event()
        self._suggested: Path | None = None  # the output last suggested; typed ones stay
        self._layer = ""  # the output layer's name
        self._placement: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._output: OutputReady | None = None
        self._view: BackgroundReadArray | None = None  # the output layer's data
        self._limits: tuple[float, float] | None = None  # the contrast limits set here
        self.done = (0, 0)  # blocks done of all, in the running (or last) prediction
        self._outcome = ""  # set when the prediction failed
        # Set when the panel is closed (its dock's ×) or its Qt widget is gone: late worker
        # signals are then ignored.
        self._closed = threading.Event()
        when_closed(self.native, self._closed.set)

    # -- choices -------------------------------------------------------------------------------

    def suggest_output(self, image: Any, run: str | None, checkpoint: str | None,
                       store_root: Path) -> None:
        """Fill in the default output for these choices, unless the user typed one."""
        source = zarr_location(image) if image is not None else None
        if source is None or not run or not checkpoint:
            return
        if self._suggested is None or Path(self.output_edit.value) in (self._suggested,
                                                                         Path(".")):
            self._suggested = default_output(source, run, checkpoint, store_root)
            self.output_edit.value = self._suggested

    def reason_disabled(self, image: Any) -> str:
        """Why ``image`` cannot be predicted blockwise into the chosen output ('' if it can)."""
        source = zarr_location(image)
        if source is None:
            return (f"Blockwise prediction reads the image from a zarr array on disk, and "
                    f"'{image.name}' is not one. Save it as .zarr (File > Save Selected "
                    f"Layers) and open that file, or choose the mode 'tiles in memory'.")
        try:  # as the job itself will check it (one place: blockwise.locations)
            check_output_path(self.output_edit.value, [source], what="image")
        except ValueError as e:
            return f"Output: {e}"
        return ""

    def make_job(self, image: Any, store_root: Path, run: str, checkpoint: str,
                 region: Callable[[Any], Roi | None], own_range: bool = False) -> BlockwiseJob:
        """The job for these choices (GUI thread: reads the input's zarr metadata once).
        ``region`` maps the input array to the world ROI to predict (None: all of it);
        ``own_range`` scales the image from its own intensities (measured in the job)."""
        from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
            ZarrArrayConfig,
        )
        from napari_dacapo.predict import OWN_RANGE

        container, dataset = zarr_location(image)
        array = ZarrArrayConfig(name="input", file_name=container, dataset=dataset).array()
        roi = region(array)
        dims = array.dims
        # Input world units per layer world unit, per axis: outputs land on the image.
        factor = np.asarray(array.voxel_size, float) / np.asarray(image.scale[-dims:], float)
        self._placement = (factor, np.asarray(array.offset, float),
                           np.asarray(image.translate[-dims:], float))
        output = Path(self.output_edit.value).expanduser().absolute()
        return BlockwiseJob(
            store_root=str(store_root), run=run, checkpoint=checkpoint,
            input=f"{Path(container).absolute()}/{dataset}".rstrip("/"), output=str(output),
            workers=int(self.workers_spin.value),
            roi=None if roi is None else [list(map(int, roi.offset)),
                                          list(map(int, roi.shape))],
            overwrite=bool(self.overwrite_check.value),
            rescale=OWN_RANGE if own_range else True,
        )

    # -- running -------------------------------------------------------------------------------

    def start(self, job: BlockwiseJob, layer_name: str) -> None:
        """Run ``job`` (made by :meth:`make_job`) in a worker; its output is shown as
        the layer ``layer_name``."""
        self.job, self._layer, self._output = job, layer_name, None
        self.done, self._view = (0, 0), None
        self._cancel = threading.Event()
        # Closing the panel (or napari) ends the prediction's processes.
        self._forget_close = when_closed(self.native, self._cancel.set)
        # Errors are shown by _on_worker_errored, not re-raised (a traceback on stderr).
        self.worker = create_worker(blockwise_events, job, self._cancel, _start_thread=False,
                                    _connect={"errored": self._on_worker_errored})
        self.worker.yielded.connect(self._on_worker_yielded)
        self.worker.finished.connect(self._on_worker_finished)
        self._outcome = ""
        self.progress.value = 0
        self.worker.start()

    def cancel(self) -> None:
        """End the running prediction; the blocks written so far stay done."""
        self._cancel.set()

    def _on_worker_yielded(self, event: Any) -> None:
        if self._closed.is_set():
            return
        match event:
            case BlockwiseStarted():
                self.done = (event.done, event.total)
            case OutputReady():
                self._output = event
                self._show_output()
            case BlocksDone():
                self.done = (event.done, event.total)
                view = self._view
                due = view is not None and not view.reading and (
                    time.monotonic() - view.read_at > max(REFRESH_SECONDS, view.read_seconds))
                if due:
                    self._read_again()
        done, total = self.done
        self.progress.max = max(total, 1)
        self.progress.value = done
        self.changed.emit(self)  # the panel that holds this one shows the count

    def _show_output(self) -> None:
        """Show the output (once per prediction): a layer over the zarr array, read in
        workers."""
        array, factor, begin, translate = self._output.array, *self._placement
        lone = array.ndim > len(self._output.voxel_size) and array.shape[0] == 1
        view = BackgroundReadArray(array, (0,) if lone else (),
                                   on_read=lambda: self._on_view_read(view))
        self._view = view
        new = output_layer(self.viewer, self._layer) is None
        layer = show_channels(
            self.viewer, self._layer, self._view, "image",
            scale=np.asarray(self._output.voxel_size) / factor,
            translate=translate + (np.asarray(self._output.offset) - begin) / factor,
            blending="additive", contrast_limits=(0.0, 1.0),
        )
        # A new layer's contrast follows the values read; an existing one's is the user's.
        self._limits = tuple(layer.contrast_limits) if new else None

    def _read_again(self) -> None:
        """The output changed: napari's view of it is read again (in a worker)."""
        self._view.invalidate()
        if (layer := output_layer(self.viewer, self._layer)) is not None:
            layer.refresh()

    def _on_view_read(self, view: BackgroundReadArray) -> None:
        # By the view, not by the layer's data (which a plugin's viewer may proxy).
        layer = output_layer(self.viewer, self._layer)
        if layer is None or view is not self._view:
            return  # removed, or another prediction shown by now
        span = view.span
        if (self._limits is not None and span is not None and span[1] > span[0]
                and tuple(layer.contrast_limits) == self._limits):
            layer.contrast_limits = span
            self._limits = tuple(layer.contrast_limits)
        layer.refresh()

    def _on_worker_errored(self, error: Exception) -> None:
        # Shown, and kept in the status. The traceback is logged only for a failure whose
        # message does not name the fix (the child process's errors name theirs).
        if not isinstance(error, (BlockwiseJobError, *EXPLAINED_FAILURES)):
            logger.error("Blockwise prediction failed", exc_info=error)
        self._outcome = f"Blockwise prediction failed: {error}"
        if not self._closed.is_set():
            show_error(self._outcome)

    def _on_worker_finished(self) -> None:
        self.worker = None
        if self._closed.is_set():
            return
        self._forget_close()
        if self._view is not None:
            self._read_again()  # every block that is done
        done, total = self.done
        # Cancelled once every block was done (the child process was still ending): nothing
        # is missing, so the prediction finished, whatever the button said.
        finished = self._output is not None and done >= total
        if self._outcome:
            outcome = self._outcome
        elif self._cancel.is_set() and not finished:
            outcome = (f"Cancelled after {done} of {total} blocks; they stay written. Press "
                       f"Predict again to predict the other blocks.")
            show_info("Blockwise prediction cancelled.")
        else:
            outcome = f"Predicted {total} blocks into {self.job.output}."
        self._finished(outcome)
