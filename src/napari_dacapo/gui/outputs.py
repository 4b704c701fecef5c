"""A run's output layers in the viewer: snapshots, validation results and the live
prediction, positioned by their world offset over the source image.

Arrays arrive from the worker with the run's integer geometry; they are turned into a
readable view (a single channel squeezed, affinities as RGB of their first three
channels) and handed to :func:`napari_dacapo.gui.layers.show`, which updates a layer in
place or creates it once. Updates are coalesced: each output keeps only its latest array,
and a timer applies one update per tick, each layer at most once per
:data:`LAYER_INTERVAL_S` (a napari layer update plus the redraw it causes costs the GUI
thread tens of milliseconds), so snapshots every iteration never stall the GUI.
"""

from __future__ import annotations

from typing import Any

import time

import numpy as np
from qtpy.QtCore import QObject, QTimer

from .layer_arrays import napari_geometry
from .layers import layer_name, output_layer, show, warm_up_layer_types

__all__ = ["OutputLayers", "readable"]

FLUSH_MS = 150
#: Shortest time between two updates of one output layer.
LAYER_INTERVAL_S = 1.0
#: Snapshot arrays shown, with the layer output name and kind.
SNAPSHOT_OUTPUTS = {"raw": "snapshot raw", "target": "snapshot target",
                    "prediction": "snapshot prediction"}


def readable(data: np.ndarray, dims: int, rgb: bool) -> tuple[np.ndarray, bool]:
    """A view of ``(*channels, *spatial)`` data a person can read: one channel is squeezed;
    with ``rgb``, the first three channels become an RGB image (missing ones black);
    otherwise channels stay a leading axis. Returns the data and whether it is RGB."""
    channels = data.ndim - dims
    if channels == 0:
        return data, False
    if channels == 1 and data.shape[0] == 1:
        return data[0], False
    if rgb and channels == 1:
        three = np.zeros((3, *data.shape[1:]), dtype=np.float32)
        three[: min(3, data.shape[0])] = np.clip(data[:3], 0, 1)
        return np.moveaxis(three, 0, -1), True
    return data, False


class OutputLayers(QObject):
    """Shows a run's outputs as layers, coalescing updates (see the module docstring).

    Parameters
    ----------
    viewer
        The napari viewer.
    flush_ms
        Interval of the timer that applies pending updates.
    """

    def __init__(
        self, viewer: Any, flush_ms: int = FLUSH_MS, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.run = ""
        self.factor = 1
        self.dims = 2
        self.rgb = False
        self.value_range: tuple[float, float] | None = None
        self._pending: dict[str, tuple[np.ndarray, str, dict[str, Any]]] = {}
        self._shown_at: dict[str, float] = {}
        self._ending = False
        self._timer = QTimer(self)
        self._timer.setInterval(flush_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        warm_up_layer_types()

    def begin(
        self, run: str, factor: int, dims: int, rgb: bool,
        value_range: tuple[float, float] | None,
    ) -> None:
        """Show the outputs of ``run``; ``factor`` maps its integer geometry to the
        viewer's world, ``rgb`` asks for RGB views of multi-channel outputs,
        ``value_range`` is the range of the task's targets and predictions."""
        self._pending.clear()
        self._ending = False
        self.run, self.factor, self.dims, self.rgb = run, factor, dims, rgb
        self.value_range = value_range
        self._timer.start()

    def end(self) -> None:
        """The run ended: apply what is pending (one update per tick, without waiting for
        the layer interval), then stop the timer."""
        self._ending = True

    # -- events ----------------------------------------------------------------------------

    def snapshot(self, arrays: dict[str, Any]) -> None:
        """The arrays of a :class:`~napari_dacapo.train.SnapshotTaken` event."""
        for key, output in SNAPSHOT_OUTPUTS.items():
            if key in arrays:
                a = arrays[key]
                self.put(output, a.data, a.offset, a.voxel_size, predicted=key != "raw")

    def validation(self, arrays: dict[str, Any]) -> None:
        """The arrays of a :class:`~napari_dacapo.train.ValidationDone` event."""
        if "prediction" in arrays:
            self.put("validation prediction", *arrays["prediction"], predicted=True)
        if "segmentation" in arrays:
            self.put("validation labels", *arrays["segmentation"], kind="labels")

    def put(
        self, output: str, data: np.ndarray, offset: Any, voxel_size: Any,
        kind: str = "image", predicted: bool = False,
    ) -> None:
        """Queue ``data`` (``(*channels, *spatial)``, run geometry) for the layer
        ``"<run> · <output>"``; a newer array for the same output replaces it."""
        geometry = napari_geometry(voxel_size, offset, self.factor)
        kwargs: dict[str, Any] = {}
        if kind == "labels":
            data = data.reshape(data.shape[-self.dims :]) if data.ndim > self.dims else data
        else:
            data, rgb = readable(data, self.dims, self.rgb and predicted)
            kwargs["rgb"] = rgb
            if predicted and self.value_range is not None and not rgb:
                kwargs["contrast_limits"] = self.value_range
            kwargs["blending"] = "additive" if predicted else "translucent"
        extra = data.ndim - self.dims - (1 if kwargs.get("rgb") else 0)
        kwargs["scale"] = (1.0,) * extra + geometry["scale"]
        kwargs["translate"] = (0.0,) * extra + geometry["translate"]
        self._pending[layer_name(self.run, output)] = (data, kind, kwargs)

    # -- applying --------------------------------------------------------------------------

    def _on_timer_timeout(self) -> None:
        self.flush()
        if self._ending and not self._pending:
            self._timer.stop()

    def flush(self, limit: int | None = 1) -> None:
        """Apply up to ``limit`` pending updates (None: all, at once), the longest waiting
        first, skipping layers updated less than :data:`LAYER_INTERVAL_S` ago."""
        now = time.monotonic()
        # New layers stack in the order they are added: raw crops first, so an opaque raw
        # snapshot never hides the prediction or target added after it, and labels last,
        # over the prediction they were made from.
        due = sorted(
            (self._shown_at.get(name, -np.inf), _stacking(name, self._pending[name][1]), name)
            for name in self._pending
            if limit is None or self._ending
            or now - self._shown_at.get(name, -np.inf) >= LAYER_INTERVAL_S
        )
        for *_, name in due[:limit]:
            data, kind, kwargs = self._pending.pop(name)
            if (layer := output_layer(self.viewer, name)) is not None:
                if kind == "image" and getattr(layer, "rgb", False) != kwargs["rgb"]:
                    self.viewer.layers.remove(layer)  # the view changed (e.g. another task)
            # Outputs never take the selection from the layer the user works on.
            show(self.viewer, name, data, kind, select=False, **kwargs)
            self._shown_at[name] = now


def _stacking(name: str, kind: str) -> int:
    """Where a new output layer goes in the stack: raw crops, other images, labels."""
    return 0 if name.endswith(" raw") else 2 if kind == "labels" else 1
