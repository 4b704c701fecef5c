"""Noticing that a panel was closed, so that it ends its work (training, a prediction).

A dock's × (napari's ``Window.remove_dock_widget``) does not destroy the panel: it takes
the panel out of its dock (``setParent(None)``) and leaves it to Python's garbage
collector, which may keep it for ever (a reference held anywhere). Closing the viewer, in
turn, destroys the panel without taking it out. :func:`when_closed` notices whichever
comes first, for a panel or for a widget anywhere inside one (the blockwise settings
inside the predict panel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QDockWidget, QWidget

__all__ = ["when_closed"]


def when_closed(
    widget: QWidget, callback: Callable[[], Any], *,
    destroyed: Callable[[], Any] | None = None,
) -> Callable[[], None]:
    """Call ``callback()`` once, when ``widget`` (or a widget holding it) is taken out of
    its dock (the dock's ×) or when it is destroyed (e.g. with its viewer), whichever
    comes first. ``destroyed`` is called instead of ``callback`` when the destruction
    comes first (a closing viewer may wait a bounded time; a closed panel must not block
    the GUI). A widget that was never docked is noticed only when destroyed.

    The callbacks run in the GUI thread. When the widget is destroyed its Qt objects are
    gone: the callback may only use plain Python objects (events, the controller). They
    are kept until called or forgotten: a callback that holds the panel itself would keep
    a closed panel alive until then.

    Returns a function that forgets the callbacks (e.g. when the work they would stop has
    ended).
    """
    once = _Once(callback, destroyed or callback)
    watch = _DockWatch(widget, once)

    def on_destroyed(*_: Any) -> None:
        # A plain function, not a slot of the dying widget (whose slots are not called).
        once.fire(destroyed=True)

    widget.destroyed.connect(on_destroyed)

    def forget() -> None:
        if once.forget():
            widget.destroyed.disconnect(on_destroyed)
            watch.deleteLater()  # also ends its filtering

    return forget


class _Once:
    """Calls one of two callbacks, the first time only."""

    def __init__(self, closed: Callable[[], Any], destroyed: Callable[[], Any]) -> None:
        self._callbacks: tuple[Callable[[], Any], Callable[[], Any]] | None = (closed,
                                                                                 destroyed)

    def fire(self, destroyed: bool) -> None:
        if self._callbacks is None:
            return
        callback = self._callbacks[destroyed]
        self._callbacks = None  # dropped: the panel's objects are no longer kept alive
        callback()

    def forget(self) -> bool:
        """Drop the callbacks uncalled; returns whether they were still waiting."""
        waiting, self._callbacks = self._callbacks is not None, None
        return waiting


class _DockWatch(QObject):
    """Filters the parent changes of the widget and of its ancestors below the dock: the
    widget is closed when it is no longer in a dock, having been in one."""

    def __init__(self, widget: QWidget, once: _Once) -> None:
        # A child of the widget (so it lives, and stops filtering, with it) that reaches
        # the widget as its parent only: a reference of its own would keep a closed panel
        # alive for ever.
        super().__init__(widget)
        self._once = once
        self._docked = False
        self._follow()

    def _follow(self) -> None:
        ancestor = self.parent()
        while ancestor is not None and not isinstance(ancestor, QDockWidget):
            # Once per object, however often asked. A former ancestor keeps the filter,
            # which then only makes this look again.
            ancestor.installEventFilter(self)
            ancestor = ancestor.parentWidget()
        docked = ancestor is not None
        if self._docked and not docked:
            self._once.fire(destroyed=False)
        self._docked = docked

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.ParentChange:
            self._follow()
        return False
