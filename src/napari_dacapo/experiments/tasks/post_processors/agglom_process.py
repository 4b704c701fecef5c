"""``mwatershed.agglom`` without holding this process's GIL: large agglomerations asked
for from a worker thread run in a child process.

``mwatershed.agglom`` keeps the GIL for its whole run (seconds for a volume of a few
million voxels). Called from a worker thread of napari (prediction, validation while
training), it stalls the GUI thread that long. :func:`agglom` hands such calls to a child
interpreter that imports only numpy and mwatershed (this file, run by path: no torch, no
napari) and is kept for later calls; the weights go to it, and the labels come back,
through a pipe, whose reads and writes release the GIL. Calls from the main thread (the
CLI, blockwise workers, scripts), and small ones (under :data:`OFFLOAD_MIN_VALUES`
weights, tens of milliseconds), run here as before: waiting for a child would not free a
main thread, and for them starting one costs more than it saves.

The child is started with :mod:`subprocess`, not :mod:`multiprocessing`, whose spawned
processes run the main script again (see ``process_prefetch``). It ignores Ctrl-C and ends
when its pipe closes, i.e. with this process.
"""

from __future__ import annotations

import atexit
import io
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any, BinaryIO

import mwatershed
import numpy as np

__all__ = ["OFFLOAD_MIN_VALUES", "agglom"]

#: Weights (channels times voxels) from which a worker thread's agglomeration runs in the
#: child process: about 40 ms of mwatershed on one core.
OFFLOAD_MIN_VALUES = 2**17
#: Idle children kept for later calls (concurrent calls start one each).
KEEP_IDLE = 2

_HEADER = struct.Struct("<Q")  # the length of the pickled part of a message
_idle: list[_Child] = []
_idle_lock = threading.Lock()


def agglom(weights: np.ndarray, offsets: Sequence[Sequence[int]]) -> np.ndarray:
    """``mwatershed.agglom(weights, offsets)`` (float64 ``(C, *spatial)`` weights): the
    same labels, uint64 ``(*spatial)``, computed in the child process when called from a
    thread other than the main thread with at least :data:`OFFLOAD_MIN_VALUES` weights."""
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    offsets = [[int(o) for o in offset] for offset in offsets]
    if weights.size < OFFLOAD_MIN_VALUES or threading.current_thread() is threading.main_thread():
        return mwatershed.agglom(weights, offsets)
    with _idle_lock:
        child = _idle.pop() if _idle else None
    if child is None:
        child = _Child()
    try:
        labels = child.agglom(weights, offsets)
    except BaseException:
        child.close()
        raise
    with _idle_lock:
        if len(_idle) < KEEP_IDLE:
            _idle.append(child)
            child = None
    if child is not None:
        child.close()
    return labels


class _Child:
    """One child interpreter running :func:`_serve`."""

    def __init__(self) -> None:
        # This process's module search path finds numpy and mwatershed there too.
        self.popen = subprocess.Popen(
            [sys.executable, "-c", _CHILD_MAIN, __file__, os.pathsep.join(sys.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.writer, self.reader = self.popen.stdin, self.popen.stdout

    def agglom(self, weights: np.ndarray, offsets: list[list[int]]) -> np.ndarray:
        try:
            _send(self.writer, (weights.shape, offsets), weights)
            status, payload = _receive(self.reader)
            if status == "error":
                raise RuntimeError(f"mutex watershed failed (in its child process): {payload}")
            labels = np.empty(payload, dtype=np.uint64)
            _read_into(self.reader, labels)
        except (OSError, EOFError) as error:
            code = self.popen.poll()
            raise RuntimeError(
                f"The mutex watershed's child process ended unexpectedly (exit code {code}; "
                f"a negative code is the signal that ended it, e.g. -9 when memory ran out): "
                f"{error}"
            ) from None
        return labels

    def close(self) -> None:
        """End the child (it exits when its input closes; killed if it is computing)."""
        for stream in (self.writer, self.reader):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.popen.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@atexit.register
def _close_idle() -> None:
    with _idle_lock:
        children = list(_idle)
        _idle.clear()
    for child in children:
        child.close()


# -- messages: a length, a pickle, then an array's raw bytes -------------------------------


def _send(stream: BinaryIO, message: Any, array: np.ndarray | None = None) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    _write(stream, _HEADER.pack(len(data)) + data)
    if array is not None:
        _write(stream, memoryview(array).cast("B"))


def _receive(stream: BinaryIO) -> Any:
    header = bytearray(_HEADER.size)
    _read_into(stream, header)
    data = bytearray(_HEADER.unpack(header)[0])
    _read_into(stream, data)
    return pickle.loads(data)


def _write(stream: BinaryIO, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view.nbytes:
        written = stream.write(view)
        view = view[written:]


def _read_into(stream: BinaryIO, target: Any) -> None:
    view = memoryview(target).cast("B")
    while view.nbytes:
        read = stream.readinto(view)
        if not read:
            raise EOFError("the pipe closed mid-message")
        view = view[read:]


# -- the child -----------------------------------------------------------------------------

#: What the child runs: it takes this process's module search path, ignores Ctrl-C and
#: SIGTERM (this process handles them) and runs this file by path, importing nothing of
#: napari_dacapo.
_CHILD_MAIN = (
    "import os, runpy, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "sys.path[:] = sys.argv[2].split(os.pathsep)\n"
    "runpy.run_path(sys.argv[1], run_name='__agglom_child__')['_serve']()\n"
)


def _serve() -> None:
    """Answer agglomerations from the parent until its pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as Ctrl-C: a job's SIGTERM is the parent's
    reader = io.FileIO(sys.stdin.fileno(), "rb", closefd=False)
    writer = io.FileIO(sys.stdout.fileno(), "wb", closefd=False)
    while True:
        try:
            shape, offsets = _receive(reader)
        except EOFError:
            return
        weights = np.empty(shape, dtype=np.float64)
        _read_into(reader, weights)
        try:
            labels = np.ascontiguousarray(mwatershed.agglom(weights, offsets), dtype=np.uint64)
        except Exception as error:  # mwatershed's panics are Exceptions too
            _send(writer, ("error", f"{type(error).__name__}: {error}"))
            continue
        del weights
        _send(writer, ("labels", labels.shape), labels)
