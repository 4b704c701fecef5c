"""Items prepared ahead in a background thread (batches, while the model steps)."""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Interrupted", "Prefetcher", "POLL_SECONDS", "burst_size"]

T = TypeVar("T")

#: How often (seconds) blocked waits look at the stop flag and the thread's health.
POLL_SECONDS = 0.05
#: Memory (bytes) that items made in a row may take, and the most items made in a row.
BURST_BYTES = 32 * 2**20
MAX_BURST = 8


def burst_size(item_bytes: int) -> int:
    """Items to make in a row: as many as fit :data:`BURST_BYTES`, at most
    :data:`MAX_BURST` (large items take long to use, so making them one by one costs
    little). Making items in a row keeps the maker's code and data in the caches, and
    leaves the consumer's alone for longer."""
    if item_bytes <= 0:
        return MAX_BURST
    return max(1, min(MAX_BURST, BURST_BYTES // item_bytes))


class Interrupted(Exception):
    """:meth:`Prefetcher.get` gave up waiting for an item: the event it was given was set
    (e.g. Stop pressed while a stalled disk or a hung worker delivers nothing)."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class Prefetcher(Generic[T]):
    """Calls ``produce`` in a daemon thread and keeps up to ``size`` results ready.

    An exception in ``produce`` ends the thread and is raised again, in the consumer's
    thread, by the next :meth:`get`. :meth:`stop` returns within the time of one
    ``produce`` call; it never waits on a full queue. With ``size == 0`` no thread is
    started and :meth:`get` calls ``produce`` directly, ``burst`` times in a row whenever
    the items made so far are used up (made one per call between training steps, the 2D
    example's batches cost about twice their time alone: cold caches on both sides).

    Parameters
    ----------
    produce
        Makes one item.
    size
        Items kept ready.
    name
        Name of the thread (shown in debuggers and thread dumps).
    finish
        Applied to every item before it is kept ready (in the same thread), e.g. to turn
        arrays into tensors.
    burst
        Items made in a row (see :func:`burst_size`): with ``size == 0``, by a
        :meth:`get` that finds none made; a worker process's per wake-up.

    Examples
    --------
    >>> with Prefetcher(make_batch, size=2) as batches:
    ...     batch = batches.get()
    """

    def __init__(
        self,
        produce: Callable[[], Any],
        size: int,
        name: str = "prefetch",
        finish: Callable[[Any], T] | None = None,
        burst: int = 1,
    ) -> None:
        self.produce = produce
        self.size = size
        self.name = name
        self.finish = finish
        self.burst = max(1, burst)
        self._made: collections.deque[T] = collections.deque()  # size 0: made in a row
        self._queue: queue.Queue[T | _Failed] = queue.Queue(maxsize=max(size, 1))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start preparing items (no-op when already running or when ``size == 0``)."""
        if self.size == 0 or self.running:
            return
        # A stop flag and queue of its own: a thread left behind by a stop() that timed
        # out (hung in produce) never hands an item to a later thread's consumer.
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self.size)
        self._thread = threading.Thread(target=self._work, args=(self._stop, self._queue),
                                        name=self.name, daemon=True)
        self._thread.start()

    def _make(self) -> T:
        item = self.produce()
        return item if self.finish is None else self.finish(item)

    def _work(self, stop: threading.Event, items: queue.Queue) -> None:
        while not stop.is_set():
            try:
                item: T | _Failed = self._make()
            except BaseException as error:  # noqa: BLE001 - handed to the consumer
                item = _Failed(error)
            while not stop.is_set():
                try:
                    items.put(item, timeout=POLL_SECONDS)
                    break
                except queue.Full:
                    continue
            if isinstance(item, _Failed):
                return

    def get(self, until: threading.Event | None = None) -> T:
        """The next item; raises what ``produce`` raised in the thread, and
        :class:`Interrupted` when ``until`` is set while it waits (with ``size == 0`` the
        item is made here, and is not interrupted)."""
        if self.size == 0:
            if not self._made:
                self._made.extend(self._make() for _ in range(self.burst))
            return self._made.popleft()
        if self._thread is None:
            raise RuntimeError(f"{self.name}: call start() (or use 'with') before get().")
        while True:
            try:
                item = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if until is not None and until.is_set():
                    raise Interrupted(f"{self.name}: stopped while waiting for an item.") from None
                if not self.running:
                    raise RuntimeError(f"{self.name}: the preparing thread has stopped.") from None
                continue
            if isinstance(item, _Failed):
                raise item.error
            return item

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread and drop prepared items."""
        self._made.clear()
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    def __enter__(self) -> Prefetcher[T]:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
