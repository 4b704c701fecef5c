"""The panels' shared worker answer: found in one Qt worker at a time, kept per key (the
very same data, held weakly), never taken for data replaced while it was found, errors
made answers without a traceback, and no call back once closed."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

from napari_dacapo.gui.background_answer import BackgroundAnswer, Same

pytestmark = pytest.mark.gui

WAIT_MS = 20_000


def _unreadable(error: Exception) -> str:
    return f"unreadable: {error}"


def _gated(gate: threading.Event):
    """A function that answers the sum of its array once ``gate`` is set (worker)."""
    def total(data: np.ndarray) -> float:
        assert gate.wait(WAIT_MS / 1000)
        return float(data.sum())
    return total


def test_the_answer_is_kept_per_key(qtbot):
    calls: list[np.ndarray] = []
    ended: list[bool] = []
    answers = BackgroundAnswer(_unreadable)
    ones, twos = np.ones(4), np.full(4, 2.0)

    def total(data):
        calls.append(data)
        return float(data.sum())

    assert answers.ask(Same(ones), total, ones, on_ended=lambda: ended.append(True)) is None
    qtbot.waitUntil(lambda: bool(ended), timeout=WAIT_MS)
    assert answers.worker is None
    assert answers.ask(Same(ones), total, ones, on_ended=ended.clear) == 4.0
    assert answers.worker is None and len(calls) == 1  # kept: no second worker
    equal = np.ones(4)
    assert answers.kept(Same(equal)) is None  # equal values, another array
    assert answers.ask(Same(twos), total, twos, on_ended=ended.clear) is None
    qtbot.waitUntil(lambda: answers.worker is None, timeout=WAIT_MS)
    assert answers.kept(Same(twos)) == 8.0 and answers.kept(Same(ones)) is None


def test_an_array_is_not_kept_alive_by_its_answer():
    answers = BackgroundAnswer(_unreadable)
    data = np.ones(4)
    gone = weakref.ref(data)
    answers.keep(Same(data), 4.0)
    del data
    gc.collect()
    assert gone() is None
    assert answers.kept(Same(np.ones(4))) is None


def test_an_answer_for_replaced_data_is_not_taken_for_the_new(qtbot):
    """One worker at a time: asked for new data while the old is read, the old answer is
    kept for the old data only, and its call back makes the caller ask again."""
    found: list[tuple] = []
    answers = BackgroundAnswer(_unreadable, on_found=lambda *args: found.append(args))
    gate, old, new = threading.Event(), np.ones(4), np.full(4, 3.0)
    total, asked = _gated(gate), []

    def ask_for_new():
        asked.append(answers.ask(Same(new), total, new, on_ended=ask_for_new))

    try:
        assert answers.ask(Same(old), total, old, on_ended=ask_for_new) is None
        first = answers.worker
        assert answers.ask(Same(new), total, new, on_ended=ask_for_new) is None
        assert answers.worker is first  # not a second worker
    finally:
        gate.set()
    qtbot.waitUntil(lambda: len(asked) == 2, timeout=WAIT_MS)
    assert asked == [None, 12.0]  # asked again at once: not the old answer
    assert answers.kept(Same(old)) is None and answers.kept(Same(new)) == 12.0
    (old_key, *old_found), (new_key, *new_found) = found
    assert old_key == Same(old) and old_found == [4.0, None]
    assert new_key == Same(new) and new_found == [12.0, 4.0]  # and what it replaced


def test_an_error_is_the_answer_not_a_traceback(qtbot, capfd):
    def broken(_):
        raise OSError("the store is gone")

    ended: list[bool] = []
    answers = BackgroundAnswer(_unreadable)
    with qtbot.capture_exceptions() as raised:
        assert answers.ask("key", broken, None, on_ended=lambda: ended.append(True)) is None
        qtbot.waitUntil(lambda: bool(ended), timeout=WAIT_MS)
    assert not raised
    assert "Traceback" not in capfd.readouterr().err
    assert answers.kept("key") == "unreadable: the store is gone"


def test_close_stops_the_call_back(qtbot):
    found: list[tuple] = []
    ended: list[bool] = []
    answers = BackgroundAnswer(_unreadable, on_found=lambda *args: found.append(args))
    gate, data = threading.Event(), np.ones(4)
    answers.ask("key", _gated(gate), data, on_ended=lambda: ended.append(True))
    worker = answers.worker
    answers.close()
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        gate.set()
    assert not ended and not found and answers.worker is None
    assert answers.kept("key") == 4.0  # kept, but nothing more is asked
    assert answers.ask("other", _gated(gate), data, on_ended=ended.clear) is None
    assert answers.worker is None


def test_an_object_gone_is_the_same_as_nothing_else():
    """A kept answer's array, freed since, must not answer for data of None (a layer
    without data) nor for another array freed meanwhile."""
    first, second = np.zeros(3), np.ones(3)
    gone, other_gone = Same(first), Same(second)
    del first, second
    assert gone != Same(None) and gone != other_gone
    assert gone == gone and Same(None) == Same(None)
