"""The mutex watershed post-processor off the GIL: from a worker thread, a large
agglomeration runs in a child process (mwatershed holds the GIL, which stalled napari's GUI
for seconds), with exactly the labels of the in-process agglomeration."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import mwatershed
import numpy as np
import pytest

from napari_dacapo.experiments.tasks.post_processors import (
    MutexWatershedPostProcessor,
    MutexWatershedPostProcessorParameters,
    agglom_process,
)

OFFSETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 3, 0), (0, 0, 3)]


@pytest.fixture
def counted_agglom(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The shapes of the weights ``mwatershed.agglom`` gets in this process."""
    calls: list[tuple] = []
    real = mwatershed.agglom

    def agglom(weights, *args, **kwargs):
        calls.append(weights.shape)
        return real(weights, *args, **kwargs)

    monkeypatch.setattr(mwatershed, "agglom", agglom)
    return calls


def _affinities(shape: tuple[int, ...]) -> np.ndarray:
    """Noisy affinities of a few boxes, in [0, 1]."""
    labels = np.zeros(shape, dtype=int)
    labels[1:6, 2:10, 2:10] = 1
    labels[1:6, 12:20, 4:18] = 2
    labels[7:, 3:18, 11:] = 3
    affinities = []
    for offset in OFFSETS:
        shifted = labels
        for axis, step in enumerate(offset):
            shifted = np.roll(shifted, -step, axis=axis)
        affinities.append((labels == shifted) & (labels > 0))
    noise = np.random.default_rng(3).normal(0, 0.15, (len(OFFSETS), *shape))
    return np.clip(np.asarray(affinities, dtype=np.float32) + noise, 0, 1).astype(np.float32)


def test_a_worker_threads_agglomeration_runs_in_a_child_process_with_the_same_labels(
    counted_agglom: list[tuple], monkeypatch: pytest.MonkeyPatch
) -> None:
    affinities = _affinities((10, 22, 22))
    processor = MutexWatershedPostProcessor(OFFSETS)
    biases = (0.3, 0.5, 0.8)
    # The main thread (CLI, blockwise workers) agglomerates here, as before.
    expected = [processor.process(affinities, MutexWatershedPostProcessorParameters(
        id=i, bias=b)) for i, b in enumerate(biases)]
    assert len(counted_agglom) == len(biases)
    assert all(labels.max() >= 3 for labels in expected)

    counted_agglom.clear()
    monkeypatch.setattr(agglom_process, "OFFLOAD_MIN_VALUES", affinities.size // 2)
    with ThreadPoolExecutor(1) as pool:  # a worker thread, as napari's
        results = [pool.submit(processor.process, affinities,
                               MutexWatershedPostProcessorParameters(id=i, bias=b)).result()
                   for i, b in enumerate(biases)]
    assert counted_agglom == []  # not in this process, where it would hold the GIL
    for labels, wanted in zip(results, expected):
        assert labels.dtype == wanted.dtype and np.array_equal(labels, wanted)
    # The child is kept for the next calls.
    assert agglom_process._idle


def test_small_agglomerations_stay_in_the_process(counted_agglom: list[tuple]) -> None:
    affinities = _affinities((10, 22, 22))
    assert affinities.size < agglom_process.OFFLOAD_MIN_VALUES
    processor = MutexWatershedPostProcessor(OFFSETS)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(processor.process, affinities,
                    MutexWatershedPostProcessorParameters(id=4, bias=0.5)).result()
    assert counted_agglom == [affinities.shape]


def test_a_child_that_dies_is_reported_and_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agglom_process, "OFFLOAD_MIN_VALUES", 1)
    weights = _affinities((10, 22, 22))[:3].astype(np.float64) - 0.5
    offsets = OFFSETS[:3]
    with ThreadPoolExecutor(1) as pool:
        expected = pool.submit(agglom_process.agglom, weights, offsets).result()
        child = agglom_process._idle[-1]
        child.popen.kill()
        child.popen.wait()
        with pytest.raises(RuntimeError, match="child process ended unexpectedly"):
            pool.submit(agglom_process.agglom, weights, offsets).result()
        assert child not in agglom_process._idle
        again = pool.submit(agglom_process.agglom, weights, offsets).result()
    assert np.array_equal(again, expected)


def test_a_child_leaves_a_sigterm_to_its_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduler's SIGTERM reaches every process of a job; training stops on it and
    validates no more, but a validation under way finishes first and needs its child."""
    import signal
    import time

    monkeypatch.setattr(agglom_process, "OFFLOAD_MIN_VALUES", 1)
    weights = _affinities((10, 22, 22))[:3].astype(np.float64) - 0.5
    offsets = OFFSETS[:3]
    with ThreadPoolExecutor(1) as pool:
        expected = pool.submit(agglom_process.agglom, weights, offsets).result()
        child = agglom_process._idle[-1]
        child.popen.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert child.popen.poll() is None
        again = pool.submit(agglom_process.agglom, weights, offsets).result()
        assert child in agglom_process._idle  # the same child answered
    assert np.array_equal(again, expected)
