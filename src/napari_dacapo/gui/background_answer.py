"""An answer the panels find in a Qt worker (their data checks read too much for the GUI
thread), kept for the data it was asked of. One worker runs at a time: an answer found for
data replaced meanwhile stays with its own key, and the call back as the worker ends makes
the panel ask again, now for the current data.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from napari.qt.threading import create_worker

__all__ = ["BackgroundAnswer", "Same"]

Answer = TypeVar("Answer")


class Same:
    """A key (or part of one) equal only to a key of the very same object, held weakly
    where it can be: an array a layer no longer holds is not kept alive for its answer."""

    __slots__ = ("_ref", "_weak")

    def __init__(self, obj: Any) -> None:
        try:
            self._ref: Callable[[], Any] = weakref.ref(obj)
            self._weak = True
        except TypeError:  # None, or a type without weak references
            self._ref, self._weak = (lambda: obj), False

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if not isinstance(other, Same):
            return False
        obj = self._ref()
        # An object gone (its weak reference says None) is the same as nothing else.
        return obj is other._ref() and (obj is not None or not (self._weak or other._weak))

    __hash__ = None  # compared, never hashed


class BackgroundAnswer(Generic[Answer]):
    """What a function answers, found in a Qt worker and kept for the key it was asked for
    (keys compare with ``==``; an answer is never None). An exception in the worker becomes
    the answer ``error_answer(error)``, so that napari does not re-raise it (a traceback on
    stderr). ``on_found(key, answer, before)`` is called (GUI thread, unless closed) as an
    answer replaces the one kept ``before`` (for whatever key; None if none)."""

    def __init__(self, error_answer: Callable[[Exception], Answer],
                 on_found: Callable[[Any, Answer, Answer | None], None] | None = None) -> None:
        self.worker: Any = None  # the one that runs
        self._kept: tuple[Any, Answer] | None = None  # (key, answer)
        self._error_answer = error_answer
        self._on_found = on_found
        self._closed = False

    def kept(self, key: Any) -> Answer | None:
        """The answer kept for ``key``, or None."""
        return self._kept[1] if self._kept is not None and self._kept[0] == key else None

    def keep(self, key: Any, answer: Answer) -> None:
        """Keep ``answer`` (a worker's, or one found by the caller) for ``key``, in place of
        the one kept before."""
        before = None if self._kept is None else self._kept[1]
        self._kept = (key, answer)
        if self._on_found is not None and not self._closed:
            self._on_found(key, answer, before)

    def ask(self, key: Any, function: Callable[..., Answer], *args: Any,
            on_ended: Callable[[], None]) -> Answer | None:
        """The answer kept for ``key``; else None, and ``function(*args)`` is found for it in
        a worker, then ``on_ended()`` is called (GUI thread). While a worker runs (for this
        key or an outdated one) none is started: its ``on_ended()`` makes the caller ask
        again."""
        answer = self.kept(key)
        if answer is None and self.worker is None and not self._closed:
            worker = create_worker(function, *args, _start_thread=False, _connect={
                "errored": lambda error: self.keep(key, self._error_answer(error))})
            worker.returned.connect(lambda found: self.keep(key, found))
            worker.finished.connect(lambda: self._on_finished(on_ended))
            self.worker = worker
            worker.start()
        return answer

    def close(self) -> None:
        """No more workers, nor calls from the one that runs (the panel is going away)."""
        self._closed = True

    def _on_finished(self, on_ended: Callable[[], None]) -> None:
        self.worker = None
        if not self._closed:
            on_ended()
