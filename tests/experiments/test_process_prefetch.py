"""Batches prepared in a worker process (forked, or spawned for data a fork cannot read):
items arrive intact, errors and a dying worker reach the consumer, stopping never hangs,
and a worker never outlives its parent."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from napari_dacapo.experiments.trainers.process_prefetch import (
    ProcessPrefetcher,
    can_fork,
    pickle_refusal,
)

pytestmark = pytest.mark.skipif(not can_fork(), reason="worker processes are forked (Linux)")


def counting(shape=(3, 40, 40)):
    """Items with a counter, a large array (shared memory) and a strided one (the pipe)."""
    state = {"count": 0}

    def produce():
        state["count"] += 1
        big = np.full(shape, state["count"], np.float32)
        return {"count": state["count"], "big": big, "strided": big[:, ::2, 1::3]}

    return produce


def test_items_arrive_intact_through_shared_memory_and_the_pipe():
    produce = counting()
    with ProcessPrefetcher(produce, 2, example=produce()) as prefetcher:
        items = [prefetcher.get() for _ in range(5)]
    assert [item["count"] for item in items] == [2, 3, 4, 5, 6]  # the worker's copy goes on
    for item in items:
        np.testing.assert_array_equal(item["big"], np.full((3, 40, 40), item["count"]))
        np.testing.assert_array_equal(item["strided"], item["big"][:, ::2, 1::3])
        assert item["big"].flags.writeable
    # Items larger than the example do not fit the shared memory: sent whole, still intact.
    small = counting((2, 4, 4))
    with ProcessPrefetcher(counting((3, 80, 80)), 1, example=small()) as prefetcher:
        assert prefetcher.get()["big"].shape == (3, 80, 80)
    assert not multiprocessing.active_children()


def test_slots_handed_back_in_refills_keep_items_in_order_for_long():
    from napari_dacapo.experiments.trainers.prefetch import burst_size

    produce = counting()
    with ProcessPrefetcher(produce, 2, example=produce()) as prefetcher:
        assert prefetcher.burst == 8  # small items: the worker is woken once per 8
        counts = [prefetcher.get()["count"] for _ in range(45)]  # many rounds of slots
    assert counts == list(range(2, 47))
    assert burst_size(64 * 2**20) == 1  # large items: refilled one by one
    assert burst_size(0) == 8


def test_finish_runs_here_on_every_item():
    pid = os.getpid()
    with ProcessPrefetcher(os.getpid, 1, finish=lambda worker: (worker, os.getpid())) as p:
        worker, finisher = p.get()
    assert worker != pid and finisher == pid


class Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


def test_errors_in_the_worker_are_raised_by_get_with_its_traceback():
    def broken():
        raise KeyError("broken sample")

    with ProcessPrefetcher(broken, 2) as prefetcher:
        with pytest.raises(KeyError, match="broken sample") as raised:
            prefetcher.get()
    assert "Raised in the worker process" in raised.value.__notes__[0]
    assert "in broken" in raised.value.__notes__[0]

    def odd():
        raise Unpicklable(1, 2)  # pickles, but cannot be rebuilt from its args

    with ProcessPrefetcher(odd, 1) as prefetcher:
        with pytest.raises(RuntimeError, match="Unpicklable: 1 and 2"):
            prefetcher.get()


def test_a_killed_worker_is_reported_instead_of_hanging():
    with ProcessPrefetcher(lambda: time.sleep(10), 1) as prefetcher:
        os.kill(prefetcher._process.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match=r"exit code -9.*out of memory"):
            prefetcher.get()


def test_stop_is_quick_with_full_slots_or_a_slow_worker():
    for produce in (counting(), lambda: time.sleep(30)):
        prefetcher = ProcessPrefetcher(produce, 1)
        prefetcher.start()
        time.sleep(0.3)  # slots full, or the worker deep in a slow item
        started = time.perf_counter()
        prefetcher.stop()
        assert time.perf_counter() - started < 2.0
        assert not prefetcher.running and not multiprocessing.active_children()


def test_size_zero_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="size >= 1.*Prefetcher with size 0"):
        ProcessPrefetcher(counting(), 0)


def test_stop_from_another_thread_ends_a_get_waiting_on_a_hung_worker():
    prefetcher = ProcessPrefetcher(lambda: time.sleep(600), 1)  # never makes an item
    prefetcher.start()
    outcome: dict[str, object] = {}

    def consume():
        try:
            prefetcher.get()
        except RuntimeError as error:
            outcome["error"], outcome["at"] = error, time.perf_counter()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    time.sleep(0.3)  # the consumer waits in get()
    stopped = time.perf_counter()
    prefetcher.stop()
    consumer.join(5.0)
    assert not consumer.is_alive(), "get() still waits after stop()"
    assert outcome["at"] - stopped < 0.5
    assert str(outcome["error"]) == "prefetch: stopped while get() waited for an item."
    assert not prefetcher.running and not multiprocessing.active_children()
    with pytest.raises(RuntimeError, match=r"call start\(\)"):
        prefetcher.get()


@pytest.mark.parametrize(
    ("start_method", "hangs"),
    [("fork", False), ("fork", True), ("spawn", True)],
    ids=["waiting for free slots", "hung in produce", "spawned, hung in produce"],
)
def test_the_worker_exits_when_its_parent_is_killed(tmp_path, start_method, hangs):
    # A parent killed with SIGKILL runs no clean-up: its worker must notice on its own,
    # also inside a produce that never returns (it reads no pipe there).
    (tmp_path / "making.py").write_text(  # a module: a spawned worker imports it
        "import itertools, time\n"
        "made = itertools.count()\n"
        "def produce():\n"
        f"    if {hangs} and next(made):\n"
        "        time.sleep(600)  # the first item, then never another\n"
        "    return 1\n"
    )
    script = tmp_path / "parent.py"
    script.write_text(  # no __main__ guard: a spawned worker does not run the script
        "import time, making\n"
        "from napari_dacapo.experiments.trainers.process_prefetch import ProcessPrefetcher\n"
        f"p = ProcessPrefetcher(making.produce, 1, start_method={start_method!r})\n"
        "p.start(); p.get()\n"
        "print(p._process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    time.sleep(0.3)  # the worker is in produce, or waits for free slots
    parent.kill()
    parent.wait()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.05)
        assert not _alive(worker)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


class OpensOnlyHere:
    """Pickles, but cannot be opened again in a worker (as a container deleted meanwhile)."""

    def __reduce__(self):
        return _open_again, ()

    def __call__(self):
        return 1


def _open_again():
    raise FileNotFoundError("the container is gone")


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "file in /dev/shm"])
def test_a_spawned_worker_receives_produce_pickled_and_reports_what_fails_there(
    memfd, monkeypatch
):
    from napari_dacapo.experiments.trainers import process_prefetch

    if not memfd:  # Python built without memfd_create (an old C library)
        monkeypatch.delattr(process_prefetch.os, "memfd_create", raising=False)
    produce = functools.partial(np.full, (3, 40, 40), 7.0, np.float32)
    with ProcessPrefetcher(produce, 2, example=produce(), start_method="spawn") as prefetcher:
        items = [prefetcher.get() for _ in range(20)]  # slots (shared memory) reused
        worker = prefetcher._process.pid
        assert prefetcher.burst == 8 and worker != os.getpid()
    assert not _alive(worker)
    for item in items:
        np.testing.assert_array_equal(item, np.full((3, 40, 40), 7.0))
        assert item.flags.writeable
    assert not multiprocessing.active_children()
    with ProcessPrefetcher(OpensOnlyHere(), 1, start_method="spawn") as prefetcher:
        with pytest.raises(FileNotFoundError, match="container is gone") as raised:
            prefetcher.get()
    assert "Raised in the worker process" in raised.value.__notes__[0]
    with pytest.raises(Exception, match="lambda") as raised:
        ProcessPrefetcher(lambda: 1, 1, start_method="spawn").start()
    assert raised.value.__notes__ == ["prefetch: a spawned worker receives produce pickled."]
    # The worker does not run the main script: what is defined there cannot be sent.
    in_script = type("Sampler", (), {"__module__": "__main__"})()
    assert "Sampler is defined in the main script" in pickle_refusal([1, in_script])
    assert pickle_refusal(functools.partial(_open_again)) is None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_get_gives_up_when_its_event_is_set_while_nothing_comes(kind):
    """Stop pressed while the batch source delivers nothing (a stalled network disk, a
    hung worker): get(until=stop) raises Interrupted within a poll, and a bounded stop()
    returns although the thread cannot be ended (it is left behind, a daemon)."""
    from napari_dacapo.experiments.trainers.prefetch import Interrupted, Prefetcher

    release = threading.Event()

    def stalled():
        release.wait(30)  # a read that does not return
        return {"count": 0}

    kind_of = Prefetcher if kind == "thread" else ProcessPrefetcher
    prefetcher = kind_of(stalled, size=1, name="stalled")
    prefetcher.start()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.perf_counter()
    with pytest.raises(Interrupted, match="stopped while waiting for an item"):
        prefetcher.get(until=stop)
    assert time.perf_counter() - t0 < 2.0
    t0 = time.perf_counter()
    prefetcher.stop(timeout=0.5)
    assert time.perf_counter() - t0 < 2.0
    release.set()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_the_worker_leaves_a_sigterm_to_its_parent(start_method):
    """A scheduler ends a job at its time limit with SIGTERM to every process of it: the
    training process stops and saves a checkpoint, which needs its worker alive. Ended
    by the signal, the worker took the run down without one. It is stopped (killed, as it
    ignores SIGTERM) with the prefetcher."""
    produce = functools.partial(np.full, (3, 8, 8), 1.0, np.float32)
    with ProcessPrefetcher(produce, 2, example=produce(), start_method=start_method) as prefetcher:
        prefetcher.get()
        worker = prefetcher._process.pid
        os.kill(worker, signal.SIGTERM)
        time.sleep(0.3)
        assert _alive(worker)
        np.testing.assert_array_equal(prefetcher.get(), produce())
    assert not _alive(worker) and not multiprocessing.active_children()
