"""A run's output layers in the viewer: snapshots, validation results and the live
prediction, positioned by their world offset over the source image.

Arrays arrive from the worker with the run's integer geometry; they are turned into a
readable view (a single channel squeezed, affinities as RGB of their first three
channels, the raw crop of an RGB image as RGB again) and handed to
:func:`napari_dacapo.gui.layers.show`, which updates a layer in place or creates it
once. Updates are coalesced: the outputs of one event (a snapshot's raw crop, target and
prediction; a validation's prediction and labels) form a group that keeps only its latest
arrays and is applied as a whole, so its layers always show the same sample. A timer
applies one group per tick, each group at most once per :data:`LAYER_INTERVAL_S` (a
napari layer update plus the redraw it causes costs the GUI thread tens of milliseconds),
so snapshots every iteration never stall the GUI. Adding a layer costs about a tenth of a
second: a group's first layers are added one per tick, hidden, and shown with the rest of
their group.
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
#: Shortest time between two updates of one group of output layers.
LAYER_INTERVAL_S = 1.0
#: Snapshot arrays shown, with the layer output name and kind.
SNAPSHOT_OUTPUTS = {"raw": "snapshot raw", "target": "snapshot target",
                    "prediction": "snapshot prediction"}

#: A layer update: the array, the layer kind and napari keyword arguments.
_Update = tuple[np.ndarray, str, dict[str, Any]]


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
        self.raw_rgb = False
        self.value_range: tuple[float, float] | None = None
        # Per group (the outputs shown together), the layers to update: {name: update}.
        self._pending: dict[str, dict[str, _Update]] = {}
        self._shown_at: dict[str, float] = {}
        self._hidden: set[str] = set()  # layers added hidden, to show with their group
        self._ending = False
        self._timer = QTimer(self)
        self._timer.setInterval(flush_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        warm_up_layer_types()

    def begin(
        self, run: str, factor: int, dims: int, rgb: bool,
        value_range: tuple[float, float] | None, raw_rgb: bool = False,
    ) -> None:
        """Show the outputs of ``run``; ``factor`` maps its integer geometry to the
        viewer's world, ``rgb`` asks for RGB views of multi-channel outputs,
        ``value_range`` is the range of the task's targets and predictions, ``raw_rgb``
        says that the training image is an RGB layer: its raw crops are shown as RGB
        (colour last), not as a channel axis that would add a slider to the viewer."""
        self._pending.clear()
        self._show_hidden()
        self._ending = False
        self.run, self.factor, self.dims, self.rgb = run, factor, dims, rgb
        self.raw_rgb = raw_rgb
        self.value_range = value_range
        self._timer.start()

    def end(self) -> None:
        """The run ended: apply what is pending (one group per tick, without waiting for
        the layer interval), then stop the timer."""
        self._ending = True

    def close(self) -> None:
        """The panel is closed: drop what is pending and show nothing more."""
        self._timer.stop()
        self._pending.clear()
        self._show_hidden()

    # -- events ----------------------------------------------------------------------------

    def snapshot(self, arrays: dict[str, Any]) -> None:
        """The arrays of a :class:`~napari_dacapo.train.SnapshotTaken` event, shown
        together: the raw crop, target and prediction of one sample lie on top of each
        other (a newer snapshot replaces all of a pending one)."""
        self._queue("snapshot", [
            self._update(output, a.data, a.offset, a.voxel_size, predicted=key != "raw")
            for key, output in SNAPSHOT_OUTPUTS.items() if (a := arrays.get(key)) is not None
        ])

    def validation(self, arrays: dict[str, Any]) -> None:
        """The arrays of a :class:`~napari_dacapo.train.ValidationDone` event, shown
        together (the labels are made from that prediction)."""
        updates = []
        if "prediction" in arrays:
            updates.append(self._update("validation prediction", *arrays["prediction"],
                                        predicted=True))
        if "segmentation" in arrays:
            updates.append(self._update("validation labels", *arrays["segmentation"],
                                        kind="labels"))
        self._queue("validation", updates)

    def put(
        self, output: str, data: np.ndarray, offset: Any, voxel_size: Any,
        kind: str = "image", predicted: bool = False,
    ) -> None:
        """Queue ``data`` (``(*channels, *spatial)``, run geometry) for the layer
        ``"<run> · <output>"``; a newer array for the same output replaces it."""
        self._queue(output, [self._update(output, data, offset, voxel_size, kind, predicted)])

    def _queue(self, group: str, updates: list[tuple[str, _Update]]) -> None:
        if updates:
            self._pending[group] = dict(updates)

    def _update(
        self, output: str, data: np.ndarray, offset: Any, voxel_size: Any,
        kind: str = "image", predicted: bool = False,
    ) -> tuple[str, _Update]:
        """The layer name and the update that shows ``data`` there."""
        geometry = napari_geometry(voxel_size, offset, self.factor)
        kwargs: dict[str, Any] = {}
        if kind == "labels":
            data = data.reshape(data.shape[-self.dims :]) if data.ndim > self.dims else data
        else:
            # The raw crop of an RGB image: its colours as the network reads them (0-1).
            rgb_view = self.rgb if predicted else self.raw_rgb
            data, rgb = readable(data, self.dims, rgb_view)
            kwargs["rgb"] = rgb
            if predicted and self.value_range is not None and not rgb:
                kwargs["contrast_limits"] = self.value_range
            kwargs["blending"] = "additive" if predicted else "translucent"
        extra = data.ndim - self.dims - (1 if kwargs.get("rgb") else 0)
        kwargs["scale"] = (1.0,) * extra + geometry["scale"]
        kwargs["translate"] = (0.0,) * extra + geometry["translate"]
        return layer_name(self.run, output), (data, kind, kwargs)

    # -- applying --------------------------------------------------------------------------

    def _on_timer_timeout(self) -> None:
        self.flush()
        if self._ending and not self._pending:
            self._timer.stop()

    def flush(self, limit: int | None = 1) -> None:
        """Apply up to ``limit`` pending groups (None: all, at once), the longest waiting
        first, skipping groups updated less than :data:`LAYER_INTERVAL_S` ago. The layers
        of a group are updated together, in one call; a group whose layers are not all
        there yet first adds the missing ones, hidden, one per call."""
        now = time.monotonic()
        # New layers stack in the order they are added: raw crops first, so an opaque raw
        # snapshot never hides the prediction or target (or live view) added after it, and
        # labels last, over the prediction they were made from.
        due = sorted(
            (self._shown_at.get(group, -np.inf),
             min(_stacking(name, kind) for name, (_, kind, _) in updates.items()), group)
            for group, updates in self._pending.items()
            if limit is None or self._ending
            or now - self._shown_at.get(group, -np.inf) >= LAYER_INTERVAL_S
        )
        for *_, group in due[:limit]:
            updates = self._pending[group]
            order = sorted(updates, key=lambda name: _stacking(name, updates[name][1]))
            missing = [name for name in order if self._layer(name, *updates[name]) is None]
            if limit is not None and len(updates) > 1 and missing:
                # Adding a layer costs the GUI thread about 0.1 s: a group's new layers
                # are added one per tick, hidden until the group is shown as a whole.
                self._show(missing[0], *updates[missing[0]], visible=False)
                self._hidden.add(missing[0])
                continue
            del self._pending[group]
            for name in order:
                self._show(name, *updates[name])
            self._shown_at[group] = now

    def _layer(self, name: str, data: np.ndarray, kind: str, kwargs: dict[str, Any]) -> Any:
        """The output layer ``name`` if it can show this update in place, else None."""
        layer = output_layer(self.viewer, name)
        if layer is None or type(layer).__name__.lower() != kind:
            return None
        if kind == "image" and layer.rgb != kwargs["rgb"]:
            return None  # the view changed (e.g. another task)
        return layer

    def _show(self, name: str, data: np.ndarray, kind: str, kwargs: dict[str, Any],
              visible: bool = True) -> None:
        if (layer := output_layer(self.viewer, name)) is not None and self._layer(
                name, data, kind, kwargs) is None:
            self.viewer.layers.remove(layer)
        # Outputs never take the selection from the layer the user works on.
        layer = show(self.viewer, name, data, kind, select=False, visible=visible, **kwargs)
        if visible and name in self._hidden:
            self._hidden.discard(name)
            layer.visible = True

    def _show_hidden(self) -> None:
        """Show the layers added for a group that was then dropped (e.g. a closed panel)."""
        for name in self._hidden:
            if (layer := output_layer(self.viewer, name)) is not None:
                layer.visible = True
        self._hidden.clear()


def _stacking(name: str, kind: str) -> int:
    """Where a new output layer goes in the stack: raw crops, other images, labels."""
    return 0 if name.endswith(" raw") else 2 if kind == "labels" else 1
