"""Live view: while a run trains, a layer shows the current model's prediction of the
region the user is looking at (the visible part of the image with the network's context).

The GUI thread works out the visible world region of the raw layer (the displayed part of
the slice in view, :func:`~.regions.region_box`), bounds its size, and leaves it
in a :class:`LiveSlot` at most every few seconds and only when the view moved or the model
trained since the last prediction. The training worker looks into the slot between
iterations and, when a request waits, predicts it (:func:`live_prediction`) and yields a
small :class:`LivePredictionReady` event. The refresh interval also grows with the
prediction time, so the live view never takes more than about a tenth of the training.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from funlib.geometry import Coordinate, Roi
from qtpy.QtCore import QObject, QTimer

from .regions import region_box

if TYPE_CHECKING:
    from napari_dacapo.experiments.run import Run

__all__ = ["LivePredictionReady", "LiveSlot", "LiveView", "live_prediction"]

#: Seconds between two live predictions, at least.
PERIOD_S = 2.0
#: Most output voxels of one live prediction (512 x 512 in 2D).
MAX_VOXELS = 2**18
#: A live prediction may take at most this fraction of the time between two of them.
BUDGET = 0.1


@dataclass(frozen=True, slots=True)
class LivePredictionReady:
    """The model's prediction of a requested region, made between two iterations."""

    iteration: int
    data: np.ndarray  # (channels, *spatial)
    offset: Coordinate
    voxel_size: Coordinate
    seconds: float


class LiveSlot:
    """A thread-safe mailbox for one request: a newer request replaces a waiting one.
    ``last`` is the latest request taken (None before the first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._roi: Roi | None = None
        self.last: Roi | None = None

    def put(self, roi: Roi) -> None:
        with self._lock:
            self._roi = roi

    def take(self) -> Roi | None:
        with self._lock:
            roi, self._roi = self._roi, None
            if roi is not None:
                self.last = roi
            return roi

    def forget(self) -> None:
        """Drop a waiting request and ``last`` (the live view was switched off)."""
        with self._lock:
            self._roi = self.last = None


def live_prediction(run: Run, roi: Roi, device: Any, plan: Any) -> LivePredictionReady:
    """Predict ``roi`` (world units) of the run's first training raw with its current
    model (worker thread, between iterations; the model's train mode is restored)."""
    from napari_dacapo.predict import predict_array

    start = time.perf_counter()
    raw = run.datasplit.train[0].raw
    data, out_roi, voxel_size = predict_array(
        run.model, raw, roi, device, plan.autocast_dtype, plan.channels_last
    )
    return LivePredictionReady(
        run.trainer.iteration, data, out_roi.offset, voxel_size, time.perf_counter() - start
    )


class LiveView(QObject):
    """The GUI side of the live view (see the module docstring).

    Parameters
    ----------
    viewer
        The napari viewer whose camera and dims are followed.
    request
        Called with the world ROI to predict (the controller's ``request_live``).
    period_s, max_voxels
        Shortest refresh interval and the size bound of a request.

    Attributes
    ----------
    enabled
        Whether predictions are requested (the panel's checkbox).
    iteration
        Iterations trained so far (set by the panel): a model that trained since the last
        prediction is predicted again even if the view did not move.
    """

    def __init__(
        self,
        viewer: Any,
        request: Any,
        period_s: float = PERIOD_S,
        max_voxels: int = MAX_VOXELS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.request = request
        self.period_s = period_s
        self.max_voxels = max_voxels
        self.enabled = True
        self._raw: Any = None
        self._geometry: tuple[Coordinate, Coordinate] | None = None
        self._dims = 2
        self._last: tuple[Roi, int] | None = None
        self._last_time = -math.inf
        self._cost = 0.0
        self.iteration = 0
        self._timer = QTimer(self)
        self._timer.setInterval(max(int(period_s * 1000) // 4, 50))
        self._timer.timeout.connect(self._on_timer_timeout)

    def begin(self, raw_layer: Any, voxel_size: Coordinate, offset: Coordinate, dims: int) -> None:
        """Follow ``raw_layer`` (whose integer geometry is ``voxel_size`` and ``offset``)."""
        self._raw, self._geometry, self._dims = raw_layer, (voxel_size, offset), dims
        self._last, self._last_time, self._cost = None, -math.inf, 0.0
        self._timer.start()

    def end(self) -> None:
        self._timer.stop()
        self._raw = None

    def shown(self, event: LivePredictionReady) -> None:
        """Note how long the prediction took (the next one waits accordingly)."""
        self._cost = event.seconds

    def _on_timer_timeout(self) -> None:
        self.poll()

    def poll(self, now: float | None = None) -> Roi | None:
        """Request a prediction if one is due; returns the requested ROI (or None)."""
        now = time.monotonic() if now is None else now
        if not self.enabled or self._raw is None:
            return None
        if now - self._last_time < max(self.period_s, self._cost / BUDGET):
            return None
        roi = self.visible_roi()
        if roi is None or self._last == (roi, self.iteration):
            return None  # neither the view nor the model changed
        self._last, self._last_time = (roi, self.iteration), now
        self.request(roi)
        return roi

    def visible_roi(self) -> Roi | None:
        """The world ROI (integer units) of the raw layer in view, bounded in size."""
        layer, dims = self._raw, self._dims
        if layer is None or self._geometry is None or layer not in self.viewer.layers:
            return None
        voxel_size, offset = self._geometry
        begin, end = region_box(self.viewer, layer, None, dims)
        if np.any(end <= begin):
            return None
        begin, end = _bounded(begin, end, self.max_voxels)
        return Roi(
            offset + Coordinate(begin) * voxel_size, Coordinate(end - begin) * voxel_size
        )


def _bounded(begin: np.ndarray, end: np.ndarray, max_voxels: int) -> tuple[np.ndarray, ...]:
    """Shrink the box around its centre, largest axes first, to at most ``max_voxels``."""
    size = end - begin
    while np.prod(size) > max_voxels:
        axis = int(np.argmax(size))
        size[axis] = max(1, size[axis] * 3 // 4)
    centre = (begin + end) // 2
    new_begin = np.maximum(centre - size // 2, begin)
    return new_begin, new_begin + size
