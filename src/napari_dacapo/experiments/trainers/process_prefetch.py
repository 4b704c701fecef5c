"""Items prepared ahead in a worker process, so that preparing them never holds this
process's GIL.

A prefetch thread shares Python's GIL with the training loop. While it runs Python code, or
a C extension that keeps the GIL (the ``edt`` distance transform does), the loop cannot
dispatch its next operation and the cores wait. A worker process avoids that, and is the
way to go when it has a core of its own (training on a GPU, or spare CPU cores). On a CPU
whose cores all run the model step it is not: its time is taken from one of the step's
threads, which the others then wait for (see ``DefaultTrainer._make_prefetcher``).

The worker is forked, so it starts with the producer (datasets, augments, predictor) in its
memory, without pickling or copying the data; this needs the ``fork`` start method, i.e.
Linux. Items come back pickled (protocol 5): large contiguous arrays through shared memory,
the rest through a pipe. :meth:`get` reads the next item straight from the pipe: the worker
runs ``size`` items ahead, so it returns at once when one is ready, as with
:class:`~.prefetch.Prefetcher`. There is no receiving thread on purpose: its wake-ups (one
per item) took the GIL and a core from the training loop, about 0.2 ms per batch. For the
same reason the worker is woken once per several items (``burst``), not once per item.
"""

from __future__ import annotations

import mmap
import multiprocessing
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from .prefetch import POLL_SECONDS, Prefetcher, T, burst_size

__all__ = ["ProcessPrefetcher", "can_fork"]

#: Alignment (bytes) of the arrays placed in a shared memory slot.
_ALIGN = 64
#: Seconds a stopping worker may take to finish its item before it is terminated.
_GRACE_SECONDS = 0.2


def can_fork() -> bool:
    """Whether worker processes can be forked safely here (Linux; macOS forbids forking
    processes that use its system frameworks, Windows cannot fork)."""
    return sys.platform.startswith("linux")


class ProcessPrefetcher(Prefetcher[T]):
    """A :class:`~.prefetch.Prefetcher` whose items are made by a forked worker process.

    Same interface and guarantees: an exception in ``produce`` (in the worker) is raised
    again by :meth:`get`, with the worker's traceback as a note; a worker that dies (e.g.
    killed when memory runs out) is reported by :meth:`get` instead of hanging; :meth:`stop`
    returns within a fraction of a second (the worker is terminated if it does not finish
    its item in time).

    Parameters
    ----------
    produce
        Makes one item, in the worker. It must be picklable (protocol 5); numpy arrays are
        sent through shared memory.
    size
        Items kept ready (at least 1).
    name
        Name of the worker process.
    finish
        Applied to every received item in this process (e.g. to make tensors).
    example
        An item like those ``produce`` makes: its arrays size the shared memory (an item
        whose arrays need more is sent through the pipe: correct, only slower).
    prepare_worker
        Called here at every start; what it returns is called first in the new worker
        (e.g. to give it a seed of its own, so that a restarted worker does not repeat the
        batches of the last one).
    """

    def __init__(
        self,
        produce: Callable[[], Any],
        size: int,
        name: str = "prefetch",
        finish: Callable[[Any], T] | None = None,
        example: Any = None,
        prepare_worker: Callable[[], Callable[[], None] | None] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(
                f"A ProcessPrefetcher needs size >= 1, got {size}. Use a Prefetcher with "
                "size 0 to make items in the consumer's thread."
            )
        if not can_fork():
            raise RuntimeError(
                f"Worker processes cannot be forked on {sys.platform}. Use a Prefetcher "
                "(a thread) instead."
            )
        slot_bytes = sum(_aligned(n) for n in _buffer_sizes(example))
        # The worker makes ``burst`` items per wake-up (slots are handed back that many).
        super().__init__(produce, size, name, finish, burst=burst_size(slot_bytes))
        self.slot_bytes = slot_bytes
        self.prepare_worker = prepare_worker
        self._process: multiprocessing.process.BaseProcess | None = None
        self._link: _Link | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        """Fork the worker (no-op when already running)."""
        if self.running:
            return
        self.stop()
        context = multiprocessing.get_context("fork")
        link = _Link(context, self.size + self.burst, self.slot_bytes, self.burst)
        setup = self.prepare_worker() if self.prepare_worker is not None else None
        self._process = context.Process(
            target=_work_in_worker, args=(self.produce, setup, link), name=self.name,
            daemon=True,
        )
        self._process.start()
        link.forked()
        self._link = link

    def get(self) -> T:
        """The next item; raises what ``produce`` raised in the worker."""
        link, process = self._link, self._process
        if link is None or process is None:
            raise RuntimeError(f"{self.name}: call start() (or use 'with') before get().")
        while not link.ready.poll(POLL_SECONDS):
            # A message is in the pipe before the worker can exit, so one that exited
            # with nothing to read ended without reporting.
            if process.exitcode is not None:
                raise self._worker_died(process)
        try:
            kind, payload, slot, spans = link.ready.recv()
        except EOFError:  # the worker is gone, and with it its end of the pipe
            process.join()
            raise self._worker_died(process) from None
        if kind == "error":
            raise _error_from(payload)
        item = link.unpack(payload, slot, spans)
        return item if self.finish is None else self.finish(item)

    def _worker_died(self, process: multiprocessing.process.BaseProcess) -> RuntimeError:
        return RuntimeError(
            f"{self.name}: the worker process ended (exit code {process.exitcode}) without "
            f"reporting an error; a negative code is the signal that ended it, e.g. -9 when "
            f"the system ran out of memory. Free memory or make batches smaller, or set "
            f"prefetch_worker='thread' to prepare them in this process."
        )

    def stop(self, timeout: float | None = None) -> None:
        """Stop the worker and drop prepared items (call it from the thread that calls
        :meth:`get`)."""
        link, process = self._link, self._process
        self._link = self._process = None
        if link is not None:
            link.stop.set()
        if process is not None:
            process.join(_GRACE_SECONDS if timeout is None else min(timeout, _GRACE_SECONDS))
            if process.is_alive():
                process.terminate()
                process.join(1.0)
            if process.is_alive():
                process.kill()
                process.join()
        if link is not None:
            link.close()


class _Link:
    """The pipes, stop flag and shared memory between this process and one worker.

    Plain pipes, written synchronously (a ``multiprocessing.Queue`` adds a feeder thread
    on each side, whose wake-ups take the GIL from the training loop). The worker sends
    items on ``ready``; this process hands slots back on ``free``: the slots bound the
    items in flight, and one is handed back as soon as its arrays are copied out.
    """

    def __init__(self, context: Any, slots: int, slot_bytes: int, refill: int) -> None:
        self.ready, self._ready_end = context.Pipe(duplex=False)
        self._free_end, self.free = context.Pipe(duplex=False)
        self.stop = context.Event()
        self.slot_bytes = slot_bytes
        self.refill = refill
        # Anonymous shared memory, inherited by the forked worker.
        self.memory = mmap.mmap(-1, slot_bytes * slots) if slot_bytes else None
        self._returned: list[int] = []  # here: slots not yet handed back
        self._free_slots: list[int] = []  # in the worker: slots handed to it
        self.free.send(list(range(slots)))

    def forked(self) -> None:
        """In this process, after the worker started: close the worker's ends, so that a
        worker that dies shows as the end of ``ready``."""
        self._ready_end.close()
        self._free_end.close()

    def in_worker(self) -> None:
        """In the worker: close this process's ends, so that if this process dies the
        worker sees the pipes end (and exits) instead of waiting forever."""
        self.ready.close()
        self.free.close()

    def send(self, message: tuple[Any, ...]) -> None:
        """Send to this process (in the worker)."""
        self._ready_end.send(message)

    def pack(self, item: Any) -> tuple[bytes, int, list[tuple[int, int]] | None] | None:
        """Pickle ``item`` into a free slot (in the worker); ``None`` when stopping."""
        if not self._free_slots:
            while not self._free_end.poll(POLL_SECONDS):
                if self.stop.is_set():
                    return None
            self._free_slots = self._free_end.recv()
        slot = self._free_slots.pop()
        payload, buffers = _pickled(item)
        if not buffers:
            return payload, slot, None
        sizes = [buffer.raw().nbytes for buffer in buffers]
        if self.memory is None or sum(_aligned(n) for n in sizes) > self.slot_bytes:
            return pickle.dumps(item, protocol=5), slot, None
        spans, start = [], slot * self.slot_bytes
        for buffer, n in zip(buffers, sizes):
            self.memory[start : start + n] = buffer.raw()
            spans.append((start, start + n))
            start += _aligned(n)
        return payload, slot, spans

    def unpack(self, payload: bytes, slot: int, spans: list[tuple[int, int]] | None) -> Any:
        """The item (in this process), with its arrays copied out of the slot, which is
        then free. Free slots are handed back ``refill`` at a time: the worker wakes once
        and makes that many items in a row. Each wake-up of the worker takes a core from
        the model step's threads (and their caches): one per item cost a 2D step about
        0.5 ms, even for items that took no time to make."""
        buffers = []
        if spans:
            assert self.memory is not None
            # Copied by numpy, which lets go of the GIL for large copies.
            memory = np.frombuffer(self.memory, dtype=np.uint8)
            buffers = [memory[begin:end].copy() for begin, end in spans]
            del memory  # no view of the shared memory may outlive close()
        self._returned.append(slot)
        if len(self._returned) >= self.refill:
            self.free.send(self._returned)
            self._returned = []
        return pickle.loads(payload, buffers=buffers)

    def close(self) -> None:
        for end in (self.ready, self.free, self._ready_end, self._free_end):
            end.close()
        if self.memory is not None:
            self.memory.close()


def _work_in_worker(
    produce: Callable[[], Any], setup: Callable[[], None] | None, link: _Link
) -> None:
    """The worker: make and send items until asked to stop; send the first error."""
    # Ctrl-C reaches the whole process group; the parent handles it and stops the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    link.in_worker()
    try:
        if setup is not None:
            setup()
        while not link.stop.is_set():
            packed = link.pack(produce())
            if packed is None:
                return
            link.send(("item", *packed))
    except (EOFError, BrokenPipeError):
        return  # the parent is gone (killed): nobody to report to
    except BaseException as error:  # noqa: BLE001 - handed to the consumer
        try:
            link.send(("error", _error_payload(error), None, None))
        except OSError:
            pass  # the parent is gone


def _error_payload(error: BaseException) -> tuple[bytes | None, str]:
    """The error, pickled if it can be, and its traceback as text."""
    text = "".join(traceback.format_exception(error))
    try:
        return pickle.dumps(error), text
    except Exception:  # noqa: BLE001 - not every exception pickles
        return None, text


def _error_from(payload: tuple[bytes | None, str]) -> BaseException:
    """The worker's error, with its traceback as a note (a ``RuntimeError`` holding the
    traceback when the error cannot be rebuilt here)."""
    pickled, text = payload
    try:
        error = pickle.loads(pickled) if pickled is not None else None
    except Exception:  # noqa: BLE001 - e.g. an exception class with unusual arguments
        error = None
    if error is None:
        return RuntimeError(f"The batch worker process raised:\n{text}")
    error.add_note(f"Raised in the worker process:\n{text}")
    return error


def _pickled(item: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """``item`` pickled without its large contiguous arrays, and those arrays' buffers."""
    buffers: list[pickle.PickleBuffer] = []
    return pickle.dumps(item, protocol=5, buffer_callback=buffers.append), buffers


def _buffer_sizes(item: Any) -> list[int]:
    """Bytes of each array of ``item`` that pickling sends out of band."""
    return [buffer.raw().nbytes for buffer in _pickled(item)[1]]


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN
