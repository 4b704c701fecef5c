"""Layer data that napari never waits for: a zarr array being written (a blockwise
prediction's output) shown without reading it on the GUI thread.

napari reads the part of a layer's data it shows (a whole 2D plane) on the GUI thread,
at every refresh. A zarr array of many small chunks takes seconds for that (through dask,
tens of seconds), so showing one that fills meant a GUI frozen at every update.
:class:`BackgroundReadArray` answers napari at once with what it read before (zeros at
first) and reads the part again in a worker when :meth:`~BackgroundReadArray.invalidate`
says it changed; when the read arrives, ``on_read`` refreshes the layer, which then gets
the new values. One read at a time: a part asked for meanwhile is read next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from napari.qt.threading import create_worker

__all__ = ["BackgroundReadArray"]

logger = logging.getLogger(__name__)

#: How many parts read (e.g. planes of a volume) are kept for napari to show again.
KEPT_PARTS = 4


def _hashable(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((k.start, k.stop, k.step) if isinstance(k, slice)
                 else k if k is Ellipsis or k is None else int(k) for k in key)


def _read(array: Any, key: tuple[Any, ...]) -> tuple[np.ndarray, tuple[float, float] | None,
                                                     float]:
    """``array[key]`` (worker), the range of its finite values, and the seconds it took."""
    started = time.monotonic()
    data = np.asarray(array[key])
    finite = data[np.isfinite(data)] if data.dtype.kind in "fc" else data
    span = (float(finite.min()), float(finite.max())) if finite.size else None
    return data, span, time.monotonic() - started


class BackgroundReadArray:
    """``array[prefix]`` (e.g. without a lone channel axis) as napari layer data, read in
    workers (see the module).

    Parameters
    ----------
    array
        The zarr array (anything indexable that returns numpy arrays).
    prefix
        Indices applied first: ``(0,)`` shows the first channel only.
    on_read
        Called on the GUI thread when a read arrives (refresh the layer there).

    Attributes
    ----------
    reads
        Reads started so far.
    span
        Range of the finite values read so far (None before any).
    """

    def __init__(self, array: Any, prefix: tuple[int, ...] = (),
                 on_read: Callable[[], None] = lambda: None) -> None:
        self.array, self.prefix, self.on_read = array, prefix, on_read
        self.shape = tuple(array.shape[len(prefix):])
        self.dtype = np.dtype(array.dtype)
        self.reads = 0
        self.span: tuple[float, float] | None = None
        self.read_seconds = 0.0  # how long the last read took
        self.read_at = 0.0  # when it arrived
        self._version = 0  # counts invalidations
        self._kept: dict[tuple[Any, ...], tuple[int, np.ndarray]] = {}  # key: (version, data)
        self._reading: Any = None
        self._asked = False  # a part was asked for while one was read
        self._failed = False  # the last read failed

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def reading(self) -> bool:
        """Whether a read runs."""
        return self._reading is not None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if threading.current_thread() is not threading.main_thread():
            # A worker's read (another prediction, napari's asynchronous slicing): direct.
            return np.asarray(self.array[(*self.prefix, *key)])
        kept = self._kept.get(_hashable(key))
        if kept is None or kept[0] != self._version:
            self._ask(key)
        if kept is not None:
            return kept[1]
        # Nothing read yet: zeros of the part's shape, which take no memory.
        return np.broadcast_to(np.zeros((), self.dtype), self.shape)[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """All of it, read now (asked for explicitly, e.g. ``numpy.asarray(layer.data)``)."""
        return np.asarray(self.array[self.prefix] if self.prefix else self.array[...], dtype)

    def invalidate(self) -> None:
        """The array changed: what was read is shown until it is read again."""
        self._version += 1

    def _ask(self, key: tuple[Any, ...]) -> None:
        if self._reading is not None:
            self._asked = True
            return
        version = self._version
        # Errors are handled by _on_read_errored, not re-raised (a traceback on stderr).
        worker = create_worker(_read, self.array, (*self.prefix, *key), _start_thread=False,
                               _connect={"errored": self._on_read_errored})
        worker.returned.connect(
            lambda read: self._on_read_returned(_hashable(key), version, *read))
        worker.finished.connect(self._on_read_finished)
        self._reading, self._failed = worker, False
        self.reads += 1
        worker.start()

    def _on_read_returned(self, key: tuple[Any, ...], version: int, data: np.ndarray,
                          span: tuple[float, float] | None, seconds: float) -> None:
        if len(self._kept) >= KEPT_PARTS and key not in self._kept:
            self._kept.pop(next(iter(self._kept)))
        self._kept[key] = (version, data)
        self.read_seconds, self.read_at = seconds, time.monotonic()
        if span is not None:
            low, high = span if self.span is None else self.span
            self.span = (min(low, span[0]), max(high, span[1]))

    def _on_read_errored(self, error: Exception) -> None:
        # E.g. a chunk read while a worker process wrote it: read again at the next change.
        # Not asked again until then (a refresh now would ask at once, again and again).
        logger.debug("Reading the output failed: %s", error)
        self._failed, self.read_at = True, time.monotonic()

    def _on_read_finished(self) -> None:
        asked, self._reading, self._asked = self._asked, None, False
        if asked or not self._failed:
            self.on_read()  # napari asks again for what it shows, if that is not read yet
