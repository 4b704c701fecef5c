"""Items prepared ahead in a worker process, so that preparing them never holds this
process's GIL.

A prefetch thread shares Python's GIL with the training loop. While it runs Python code, or
a C extension that keeps the GIL (the ``edt`` distance transform does), the loop cannot
dispatch its next operation and the cores wait. A worker process avoids that, and is the
way to go when it has a core of its own (training on a GPU, or spare CPU cores). On a CPU
whose cores all run the model step it is not: its time is taken from one of the step's
threads, which the others then wait for (see ``DefaultTrainer._make_prefetcher``).

By default the worker is forked, so it starts with the producer (datasets, augments,
predictor) in its memory, without pickling or copying the data; this needs the ``fork``
start method, i.e. Linux. Data read with a library's threads (zarr, dask) cannot be read
in a forked process: those threads are not copied, and a forked reader waits for them
forever. For such data the worker is spawned (``start_method="spawn"``): a new interpreter
that receives the producer pickled (a zarr array pickles as its config and is opened again
there) and imports what it needs, which takes seconds at every start. It is started with
:mod:`subprocess`, not :mod:`multiprocessing`, whose spawned processes run the main script
again (a script without an ``if __name__ == "__main__":`` guard would train again in
there); so nothing of the main script can be sent to it (:func:`pickle_refusal`).

Items come back pickled (protocol 5): large contiguous arrays through shared memory, the
rest through a pipe. :meth:`get` reads the next item straight from the pipe: the worker
runs ``size`` items ahead, so it returns at once when one is ready, as with
:class:`~.prefetch.Prefetcher`. There is no receiving thread on purpose: its wake-ups (one
per item) took the GIL and a core from the training loop, about 0.2 ms per batch. For the
same reason the worker is woken once per several items (``burst``), not once per item.

:meth:`stop` may be called from another thread: a :meth:`get` waiting for an item (a hung
``produce``) then raises within :data:`~.prefetch.POLL_SECONDS`. A worker whose parent is
gone (killed, crashed) exits by itself within :data:`PARENT_CHECK_SECONDS`.
"""

from __future__ import annotations

import io
import mmap
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Literal

import numpy as np

from .prefetch import POLL_SECONDS, Interrupted, Prefetcher, T, burst_size

__all__ = [
    "PARENT_CHECK_SECONDS", "ProcessPrefetcher", "can_fork", "can_spawn", "pickle_refusal"
]

#: Alignment (bytes) of the arrays placed in a shared memory slot.
_ALIGN = 64
#: Seconds a stopping worker may take to finish its item before it is terminated.
_GRACE_SECONDS = 0.2
#: How often (seconds) a worker checks that its parent process is still there.
PARENT_CHECK_SECONDS = 0.5


def can_fork() -> bool:
    """Whether worker processes can be forked safely here (Linux; macOS forbids forking
    processes that use its system frameworks, Windows cannot fork)."""
    return sys.platform.startswith("linux")


def can_spawn() -> bool:
    """Whether worker processes can be spawned here (as napari-dacapo does it: Linux)."""
    return sys.platform.startswith("linux")


def pickle_refusal(obj: Any) -> str | None:
    """Why ``obj`` cannot be sent to a spawned worker (``None`` when it can): what
    pickling it raised. Cheap: large arrays are left out, not copied."""
    try:
        _dumps_for_spawn(obj, buffer_callback=lambda buffer: None)
    except Exception as error:  # noqa: BLE001 - any of them means it cannot be sent
        return f"{type(error).__name__}: {error}"
    return None


class _SpawnPickler(pickle.Pickler):
    """Refuses what is defined in the main script: a spawned worker does not run it, so
    it could not be unpickled there."""

    def reducer_override(self, obj: Any) -> Any:
        # Classes and functions by themselves, anything else by its class.
        named = isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__"))
        defined = obj if named else type(obj)
        if getattr(defined, "__module__", None) == "__main__":
            raise pickle.PicklingError(
                f"{defined.__qualname__} is defined in the main script, which a spawned "
                f"worker process does not run; define it in a module."
            )
        return NotImplemented


def _dumps_for_spawn(obj: Any, buffer_callback: Callable[[Any], Any] | None = None) -> bytes:
    file = io.BytesIO()
    _SpawnPickler(file, protocol=5, buffer_callback=buffer_callback).dump(obj)
    return file.getvalue()


class ProcessPrefetcher(Prefetcher[T]):
    """A :class:`~.prefetch.Prefetcher` whose items are made by a worker process (forked
    or spawned).

    Same interface and guarantees: an exception in ``produce`` (in the worker) is raised
    again by :meth:`get`, with the worker's traceback as a note; a worker that dies (e.g.
    killed when memory runs out) is reported by :meth:`get` instead of hanging; :meth:`stop`
    returns within a fraction of a second (the worker is terminated if it does not finish
    its item in time), and from another thread it ends a :meth:`get` that waits.

    Parameters
    ----------
    produce
        Makes one item, in the worker. Items must pickle (protocol 5); their numpy arrays
        are sent through shared memory. A spawned worker receives ``produce`` pickled.
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
    start_method
        ``"fork"``: the worker starts as a copy of this process. ``"spawn"``: a new
        interpreter, which receives ``produce`` and what ``prepare_worker`` returns
        pickled at every start (see the module docstring). Both need Linux here.
    """

    def __init__(
        self,
        produce: Callable[[], Any],
        size: int,
        name: str = "prefetch",
        finish: Callable[[Any], T] | None = None,
        example: Any = None,
        prepare_worker: Callable[[], Callable[[], None] | None] | None = None,
        start_method: Literal["fork", "spawn"] = "fork",
    ) -> None:
        if size < 1:
            raise ValueError(
                f"A ProcessPrefetcher needs size >= 1, got {size}. Use a Prefetcher with "
                "size 0 to make items in the consumer's thread."
            )
        if start_method == "spawn" and not can_spawn():
            raise RuntimeError(
                f"Worker processes cannot be spawned on {sys.platform} by napari-dacapo. Use "
                "a Prefetcher (a thread) instead."
            )
        if start_method == "fork" and not can_fork():
            raise RuntimeError(
                f"Worker processes cannot be forked on {sys.platform}. Use a Prefetcher "
                "(a thread) instead."
            )
        slot_bytes = sum(_aligned(n) for n in _buffer_sizes(example))
        # The worker makes ``burst`` items per wake-up (slots are handed back that many).
        super().__init__(produce, size, name, finish, burst=burst_size(slot_bytes))
        self.slot_bytes = slot_bytes
        self.prepare_worker = prepare_worker
        self.start_method = start_method
        self._process: multiprocessing.process.BaseProcess | _Spawned | None = None
        self._link: _Link | None = None
        # Held by get() while it uses the link, so that stop() from another thread never
        # closes the pipes or the shared memory under it.
        self._reading = threading.Lock()
        # Makes start() and stop() atomic: two stop() calls never both close the link.
        self._changing = threading.Lock()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        """Start the worker (no-op when already running)."""
        if self.running:
            return
        self.stop()
        spawn = self.start_method == "spawn"
        link = _Link(self.size + self.burst, self.slot_bytes, self.burst, spawned=spawn)
        setup = self.prepare_worker() if self.prepare_worker is not None else None
        try:
            process = self._spawn(link, setup) if spawn else self._fork(link, setup)
        except BaseException:
            link.close()
            raise
        link.started()
        with self._changing:
            self._process, self._link = process, link

    def _fork(self, link: _Link, setup: Callable[[], None] | None) -> Any:
        process = multiprocessing.get_context("fork").Process(
            target=_work_in_worker, args=((self.produce, setup), link, os.getpid()),
            name=self.name, daemon=True,
        )
        process.start()
        return process

    def _spawn(self, link: _Link, setup: Callable[[], None] | None) -> _Spawned:
        try:
            # Unpickled inside the worker's error handling: an array that cannot be
            # opened there is reported by get() like any error of produce.
            work = _dumps_for_spawn((self.produce, setup))
        except Exception as error:
            error.add_note(f"{self.name}: a spawned worker receives produce pickled.")
            raise
        fds = link.worker_fds()
        popen = subprocess.Popen(
            [sys.executable, "-c", _SPAWNED_MAIN], stdin=subprocess.PIPE,
            pass_fds=tuple(fds.values()),
        )
        assert popen.stdin is not None
        try:  # read at once by the new interpreter, before its imports
            popen.stdin.write(pickle.dumps(
                (sys.path, fds, link.slot_bytes, link.refill, os.getpid(), work)
            ))
            popen.stdin.close()
        except BrokenPipeError:
            pass  # it ended at once: get() reports it
        return _Spawned(popen, self.name)

    def get(self, until: threading.Event | None = None) -> T:
        """The next item; raises what ``produce`` raised in the worker, a ``RuntimeError``
        when :meth:`stop` is called (from another thread) while it waits, and
        :class:`~.prefetch.Interrupted` when ``until`` is set while it waits."""
        link, process = self._link, self._process
        if link is None or process is None:
            raise RuntimeError(f"{self.name}: call start() (or use 'with') before get().")
        with self._reading:
            # Checked between waits of POLL_SECONDS: a hung worker never blocks this.
            while not link.halted.is_set() and not link.ready.poll(POLL_SECONDS):
                if until is not None and until.is_set():
                    raise Interrupted(f"{self.name}: stopped while waiting for an item.")
                # A message is in the pipe before the worker can exit, so one that exited
                # with nothing to read ended without reporting (unless stopped).
                if not link.halted.is_set() and process.exitcode is not None:
                    raise self._worker_died(process)
            if link.halted.is_set():
                raise RuntimeError(f"{self.name}: stopped while get() waited for an item.")
            try:
                kind, payload, slot, spans = link.ready.recv()
            except EOFError:  # the worker is gone, and with it its end of the pipe
                process.join()
                raise self._worker_died(process) from None
            if kind == "error":
                raise _error_from(payload)
            item = link.unpack(payload, slot, spans)
        return item if self.finish is None else self.finish(item)

    def _worker_died(self, process: Any) -> RuntimeError:
        spawned = (
            " A spawned worker also ends so when it cannot start (see its error above)."
            if self.start_method == "spawn" else ""
        )
        return RuntimeError(
            f"{self.name}: the worker process ended (exit code {process.exitcode}) without "
            f"reporting an error; a negative code is the signal that ended it, e.g. -9 when "
            f"the system ran out of memory. Free memory or make batches smaller, or set "
            f"prefetch_worker='thread' to prepare them in this process.{spawned}"
        )

    def stop(self, timeout: float | None = None) -> None:
        """Stop the worker and drop prepared items. From another thread, it also ends a
        :meth:`get` that waits (it raises), e.g. for a hung worker."""
        with self._changing:
            link, process = self._link, self._process
            self._link = self._process = None
        if link is not None:
            link.halted.set()
            link.stop.set()
        if process is not None:
            process.join(_GRACE_SECONDS if timeout is None else min(timeout, _GRACE_SECONDS))
            if process.is_alive():  # it ignores SIGTERM (see _work_in_worker)
                process.kill()
                process.join()
        # A get() in another thread sees ``halted`` within POLL_SECONDS and lets go.
        if link is not None and self._reading.acquire(timeout=1.0):
            try:
                link.close()
            finally:
                self._reading.release()
        # (Not acquired: a get() still reads a message; the link closes when collected.)


class _Link:
    """The pipes, stop flag and shared memory between this process and one worker.

    Plain pipes, written synchronously (a ``multiprocessing.Queue`` adds a feeder thread
    on each side, whose wake-ups take the GIL from the training loop). The worker sends
    items on ``ready``; this process hands slots back on ``free``: the slots bound the
    items in flight, and one is handed back as soon as its arrays are copied out.
    """

    def __init__(self, slots: int, slot_bytes: int, refill: int, spawned: bool) -> None:
        self.ready, self._ready_end = multiprocessing.Pipe(duplex=False)
        self._free_end, self.free = multiprocessing.Pipe(duplex=False)
        self.halted = threading.Event()  # here: tells a waiting get() that stop() ran
        self.slot_bytes = slot_bytes
        self.refill = refill
        self.memory: mmap.mmap | None = None
        self._memory_fd: int | None = None
        self.stop: Any  # tells the worker to stop
        if spawned:
            # A spawned worker maps the same memory through this descriptor. Its first
            # bytes hold the stop flag: a multiprocessing Event cannot be sent there.
            self._base = _ALIGN
            size = self._base + slot_bytes * slots
            self._memory_fd = _memory_file(size)
            self.memory = mmap.mmap(self._memory_fd, size)
            self.stop = _Flag(self.memory)
        else:
            # Anonymous shared memory, inherited by the forked worker.
            self._base = 0
            self.memory = mmap.mmap(-1, slot_bytes * slots) if slot_bytes else None
            self.stop = multiprocessing.get_context("fork").Event()
        self._returned: list[int] = []  # here: slots not yet handed back
        self._free_slots: list[int] = []  # in the worker: slots handed to it
        self.free.send(list(range(slots)))

    def worker_fds(self) -> dict[str, int]:
        """The descriptors a spawned worker is given: its pipe ends and the memory."""
        assert self._memory_fd is not None
        return {"ready": self._ready_end.fileno(), "free": self._free_end.fileno(),
                "memory": self._memory_fd}

    @classmethod
    def in_spawned_worker(cls, fds: dict[str, int], slot_bytes: int, refill: int) -> _Link:
        """The worker's side of a link, from the descriptors it was given."""
        link = cls.__new__(cls)
        link.ready = link.free = None  # this process's ends stay there
        link.halted = threading.Event()
        link._ready_end = Connection(fds["ready"], readable=False)
        link._free_end = Connection(fds["free"], writable=False)
        link.memory = mmap.mmap(fds["memory"], 0)  # all of it
        os.close(fds["memory"])
        link._memory_fd = None
        link._base = _ALIGN
        link.slot_bytes, link.refill = slot_bytes, refill
        link.stop = _Flag(link.memory)
        link._returned, link._free_slots = [], []
        return link

    def started(self) -> None:
        """In this process, after the worker started: close the worker's ends, so that a
        worker that dies shows as the end of ``ready``."""
        self._ready_end.close()
        self._free_end.close()
        if self._memory_fd is not None:  # mapped here, and given to the worker
            os.close(self._memory_fd)
            self._memory_fd = None

    def in_worker(self) -> None:
        """In the worker: close this process's ends (a forked worker has copies), so that
        if this process dies the worker sees the pipes end instead of waiting forever."""
        if self.ready is not None:
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
        spans, start = [], self._base + slot * self.slot_bytes
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
        if self._memory_fd is not None:
            os.close(self._memory_fd)
            self._memory_fd = None


def _memory_file(size: int) -> int:
    """A descriptor of ``size`` bytes of memory that another process can map: a memfd,
    or an unlinked file in /dev/shm where Python was built without ``memfd_create``
    (e.g. against an old C library)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("napari-dacapo-prefetch", os.MFD_CLOEXEC)
    else:
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="napari-dacapo-prefetch-", dir=folder)
        os.unlink(path)
    os.ftruncate(fd, size)
    return fd


class _Flag:
    """A flag in the first byte of shared memory (a spawned worker's stop flag)."""

    def __init__(self, memory: mmap.mmap) -> None:
        self._memory = memory

    def set(self) -> None:
        self._memory[0] = 1

    def is_set(self) -> bool:
        return self._memory[0] == 1


class _Spawned:
    """A spawned worker, with what this module uses of ``multiprocessing.Process``."""

    def __init__(self, popen: subprocess.Popen[bytes], name: str) -> None:
        self._popen = popen
        self.name = name
        self.pid = popen.pid

    @property
    def exitcode(self) -> int | None:
        """As for a ``multiprocessing.Process``: negative for the signal that ended it."""
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        self._popen.kill()


#: What a spawned worker runs: it reads everything it is sent before importing anything
#: (the sender then never waits for the imports), takes this process's module search path
#: (to find the classes it unpickles) and ignores Ctrl-C and SIGTERM (this process handles
#: them).
_SPAWNED_MAIN = (
    "import pickle, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "path, fds, slot_bytes, refill, parent, work = pickle.loads(sys.stdin.buffer.read())\n"
    "sys.path[:] = path\n"
    f"from {__name__} import _work_in_spawned\n"
    "_work_in_spawned(fds, slot_bytes, refill, parent, work)\n"
)


def _work_in_spawned(
    fds: dict[str, int], slot_bytes: int, refill: int, parent: int, work: bytes
) -> None:
    """A spawned worker (see :data:`_SPAWNED_MAIN`)."""
    _work_in_worker(work, _Link.in_spawned_worker(fds, slot_bytes, refill), parent)


def _work_in_worker(
    work: tuple[Callable[[], Any], Callable[[], None] | None] | bytes, link: _Link, parent: int
) -> None:
    """The worker: make and send items with ``work`` (``produce`` and ``setup``, pickled
    for a spawned worker) until asked to stop; send the first error."""
    # Ctrl-C reaches the whole process group, and a scheduler's SIGTERM the whole job (at
    # its time limit): the parent handles them, saves a checkpoint and stops the worker.
    # Ended by them here, the worker took the run down before it could save one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_without(parent)
    link.in_worker()
    try:
        produce, setup = pickle.loads(work) if isinstance(work, bytes) else work
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


def _exit_without(parent: int) -> None:
    """End this worker as soon as ``parent`` is no longer its parent process (killed or
    crashed: no clean-up ran there), checked every :data:`PARENT_CHECK_SECONDS` by a
    daemon thread. The closed pipes do not tell: a worker inside ``produce`` does not read
    them (a hung one never would), and processes forked from the parent meanwhile hold
    copies of its pipe ends. Linux's ``prctl(PR_SET_PDEATHSIG)`` is not used: it fires
    when the *thread* that forked the worker ends, not the process (a prefetcher started
    in a pool thread, e.g. napari's, would lose its worker with that thread), and exists
    on Linux only. The check costs one wake-up per interval. (It waits while C code in
    ``produce`` keeps the GIL, e.g. a distance transform, and runs when that returns.)"""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)  # no clean-up is owed to a parent that is gone

    threading.Thread(target=watch, name="parent watch", daemon=True).start()


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
