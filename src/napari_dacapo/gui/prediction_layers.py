"""The output layers of an in-memory prediction, filled tile by tile as the predict panel's
worker yields tiles (see :mod:`.prediction_job`).

The outputs are numpy arrays the size of the predicted region; the tiles (handed over a
few at a time, see :class:`~.prediction_job.Pace`) are written into them on the GUI thread,
and the layers are redrawn at most every ``REFRESH_SECONDS``, and less often the longer a
redraw takes (napari recasts a whole labels layer at each: a fraction of a second for
large ones).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from funlib.geometry import Roi

from napari_dacapo.experiments.datasplits.datasets.arrays.array import voxel_slices
from napari_dacapo.gui.layer_arrays import napari_geometry
from napari_dacapo.gui.layers import output_layer, show_channels
from napari_dacapo.gui.prediction_job import LabelsDone, TilesDone
from napari_dacapo.predict import PredictionStarted

__all__ = ["PredictionLayers"]

#: Least time between two redraws of the output layers while tiles arrive.
REFRESH_SECONDS = 0.1
#: A redraw waits at least this many times as long as the last one took, so that redrawing
#: takes at most about a fifth of the GUI thread's time, however large the layers.
REFRESH_SHARE = 4


class PredictionLayers:
    """The prediction (and labels) layers of one in-memory prediction.

    Parameters
    ----------
    viewer
        The viewer that shows them.
    names
        Layer name per output (``"prediction"``, ``"labels"``).
    factor
        The image's world factor (integer world units per napari world unit).
    """

    def __init__(self, viewer: Any, names: dict[str, str], factor: int) -> None:
        self.viewer, self.names, self.factor = viewer, names, factor
        self.outputs: dict[str, np.ndarray] = {}
        self._start: PredictionStarted | None = None
        self._last_refresh = 0.0
        self._refresh_cost = 0.0  # seconds the last redraw took
        self._range = (np.inf, -np.inf)  # of the prediction's values so far
        self.finite = True  # whether every tile so far holds finite values only

    def apply(self, event: PredictionStarted | TilesDone | LabelsDone) -> None:
        """Put one event of the prediction worker into the layers."""
        match event:
            case PredictionStarted():
                self._start = event
                self.outputs["prediction"] = np.zeros(event.shape, np.float32)
                self._show("prediction", self.outputs["prediction"], "image")
            case TilesDone():
                for tile in event.tiles:
                    self._write("prediction", tile.roi, tile.prediction, "image")
                    if tile.labels is not None:
                        self._write("labels", tile.roi, tile.labels, "labels")
                    self._widen_range(tile.prediction)
                wait = max(REFRESH_SECONDS, REFRESH_SHARE * self._refresh_cost)
                if event.tiles and time.monotonic() - self._last_refresh > wait:
                    self.refresh()
            case LabelsDone():
                self.outputs["labels"] = event.labels
                self._show("labels", event.labels, "labels")

    def _widen_range(self, prediction: np.ndarray) -> None:
        low, high = float(prediction.min()), float(prediction.max())
        if not (np.isfinite(low) and np.isfinite(high)):  # NaN or inf in the tile
            self.finite = False
            values = prediction[np.isfinite(prediction)]
            low, high = (values.min(), values.max()) if values.size else self._range
        self._range = (min(self._range[0], low), max(self._range[1], high))

    def _write(self, output: str, roi: Roi, data: np.ndarray, kind: str) -> None:
        start = self._start
        if output not in self.outputs:
            shape = (data.shape[0], *start.shape[1:])
            self.outputs[output] = np.zeros(shape, data.dtype)
            self._show(output, self.outputs[output], kind)
        target = self.outputs[output]
        if not np.can_cast(data.dtype, target.dtype):  # ids grown beyond the layer's type
            target = target.astype(np.promote_types(target.dtype, data.dtype))
            self.outputs[output] = target
            self._show(output, target, kind)
        target[(slice(None), *voxel_slices(roi, start.roi.begin, start.voxel_size))] = data

    def _show(self, output: str, data: np.ndarray, kind: str) -> None:
        """Show ``(channels, *spatial)`` data (a lone channel dropped) over the image."""
        geometry = napari_geometry(self._start.voxel_size, self._start.roi.offset, self.factor)
        kwargs = {"blending": "additive"} if kind == "image" else {"opacity": 0.6}
        show_channels(self.viewer, self.names[output], data, kind, **geometry, **kwargs)

    def refresh(self) -> None:
        """Redraw the output layers; the prediction's contrast spans the values of the tiles
        so far (known from the tiles: no scan of the whole array on the GUI thread)."""
        started = time.monotonic()
        for output in self.outputs:
            if (layer := output_layer(self.viewer, self.names[output])) is not None:
                if output == "prediction" and self._range[1] > self._range[0]:
                    layer.contrast_limits = self._range
                layer.refresh()
        self._last_refresh = time.monotonic()
        self._refresh_cost = self._last_refresh - started
