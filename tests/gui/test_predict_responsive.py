"""The predict panel keeps the GUI responsive on large images: the worker hands tiles over
at a bounded pace, redraws get rarer as they get costlier, Cancel drops what is already
queued, and a blockwise output is read in workers, never on the GUI thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi

from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.gui.background_reads import BackgroundReadArray
from napari_dacapo.gui.layers import layer_name
from napari_dacapo.gui.prediction_job import TileDone, TilesDone
from napari_dacapo.predict import PredictionStarted

pytestmark = pytest.mark.gui

CHECKPOINT = "best:blob__dice"


def started(width: int, tiles: int) -> PredictionStarted:
    return PredictionStarted(Roi((0, 0), (8, width)), Coordinate(1, 1), 1, tiles, (8, 8))


def tile(i: int, labels: bool = False) -> TileDone:
    values = np.full((1, 8, 8), i + 1, np.float32)
    return TileDone(i + 1, Roi((0, 8 * i), (8, 8)), values,
                    values.astype(np.uint8) if labels else None)


def test_the_worker_never_queues_more_than_the_pace_allows(trained_store):
    """A GUI that applies nothing gets ``pending`` batches, then the rest in the last one:
    every tile, and the count of all tiles."""
    from napari_dacapo.experiments import NumpyArrayConfig
    from napari_dacapo.gui.prediction_job import Pace, PredictJob, prediction_events

    raw, _ = synthetic_blobs((96, 96), seed=3)
    job = PredictJob(trained_store, "tiny_2d", CHECKPOINT,
                     NumpyArrayConfig(name="raw", data=raw, voxel_size=Coordinate(1, 1)), None,
                     None)
    first, *events = list(prediction_events(job, threading.Event(), Pace(0, pending=2)))
    assert len(events) == 3 and all(isinstance(e, TilesDone) for e in events)
    assert events[-1].done == first.num_tiles > 3
    one_by_one = [e for e in prediction_events(job, threading.Event())
                  if isinstance(e, TilesDone)]
    assert len(one_by_one) == first.num_tiles
    assert ([t.roi for e in events for t in e.tiles]
            == [t.roi for e in one_by_one for t in e.tiles])


def test_redraws_take_a_bounded_share_of_the_gui_thread(make_napari_viewer, monkeypatch):
    """Tiles arrive every 0.1 s and a redraw of the labels layer takes 0.2 s (napari
    recasts it whole): redrawn after each batch, the GUI thread would redraw two thirds of
    the time (a frozen GUI on large images)."""
    from napari.layers import Labels

    from napari_dacapo.gui import prediction_layers
    from napari_dacapo.gui.prediction_layers import PredictionLayers

    class Clock:
        now = 1000.0

        def monotonic(self) -> float:
            return self.now

    clock = Clock()
    monkeypatch.setattr(prediction_layers, "time", clock)
    redraw = Labels.refresh
    redrawn = []

    def slow_redraw(layer, *args, **kwargs):
        clock.now += 0.2
        redrawn.append(clock.now)
        return redraw(layer, *args, **kwargs)

    monkeypatch.setattr(Labels, "refresh", slow_redraw)
    layers = PredictionLayers(make_napari_viewer(), {"prediction": "p", "labels": "l"}, 1)
    layers.apply(started(8 * 50, 50))
    begin = clock.now
    for i in range(50):
        clock.now += 0.1
        layers.apply(TilesDone(i + 1, (tile(i, labels=True),)))
    redrawing = 0.2 * len(redrawn) / (clock.now - begin)
    assert len(redrawn) > 2 and redrawing < 0.25, (len(redrawn), redrawing)
    layers.refresh()  # at the end, as the panel does
    np.testing.assert_array_equal(layers.outputs["labels"][0, 0, ::8], np.arange(1, 51))


def test_labels_grow_to_a_wider_type_as_their_ids_do(make_napari_viewer):
    from napari_dacapo.gui.prediction_job import smallest_ids
    from napari_dacapo.gui.prediction_layers import PredictionLayers

    assert smallest_ids(np.array([0, 255], np.uint64)).dtype == np.uint8
    assert smallest_ids(np.array([0, 70_000], np.int64)).dtype == np.uint32
    assert smallest_ids(np.array([-1, 3], np.int64)).dtype == np.int64  # left as it is
    viewer = make_napari_viewer()
    layers = PredictionLayers(viewer, {"prediction": "p", "labels": "l"}, 1)
    layers.apply(started(16, 2))
    first = tile(0, labels=True)
    layers.apply(TilesDone(1, (first,)))
    wide = TileDone(2, Roi((0, 8), (8, 8)), first.prediction,
                    np.full((1, 8, 8), 300, np.uint16))
    layers.apply(TilesDone(2, (wide,)))
    shown = viewer.layers["l"].data
    assert shown.dtype == np.uint16 and shown[0, 0] == 1 and shown[0, 8] == 300


def test_tiles_queued_before_cancel_are_dropped(predict_panel, qtbot, monkeypatch):
    """Cancel takes effect at once, not after the tiles already on their way to the GUI."""
    from napari_dacapo.gui import predict_widget

    def events(job, cancel, pace):
        yield started(40, 5)
        yield TilesDone(1, (tile(0),))
        cancel.wait(10)
        for i in range(1, 5):  # sent before the worker saw Cancel
            yield TilesDone(i + 1, (tile(i),))

    monkeypatch.setattr(predict_widget, "prediction_events", events)
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((8, 40), np.uint8), name="strip")
    widget.labels_check.value = False
    widget.predict_button.native.click()
    qtbot.waitUntil(lambda: widget.progress.value == 1, timeout=10_000)
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=10_000)
    assert widget.progress.value == 1
    assert widget.status.value.startswith("Cancelled")
    shown = viewer.layers[layer_name("tiny_2d", "prediction strip")].data
    assert (shown[:, :8] == 1).all() and (shown[:, 8:] == 0).all()


class Reads:
    """A zarr array that notes whether each read runs on the GUI (main) thread."""

    def __init__(self, array):
        self.array, self.on_gui_thread = array, []
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.chunks = array.chunks

    def __getitem__(self, key):
        self.on_gui_thread.append(threading.current_thread() is threading.main_thread())
        return self.array[key]


def test_a_background_read_array_never_reads_on_the_gui_thread(qtbot, tmp_path):
    array = zarr.open_array(tmp_path / "a.zarr", mode="w", shape=(1, 3, 20, 30),
                            chunks=(1, 1, 4, 4), dtype="f4")
    array[0, 1] = 5
    reads = Reads(array)
    arrived = []
    view = BackgroundReadArray(reads, (0,), on_read=lambda: arrived.append(1))
    assert view.shape == (3, 20, 30) and view.ndim == 3
    key = (1, slice(None), slice(None))
    assert (view[key] == 0).all() and view[key].shape == (20, 30)  # not read yet
    for _ in range(3):
        view[key]  # asked again while it is read: one read
    assert view.reads == 1
    qtbot.waitUntil(lambda: len(arrived) == 1 and not view.reading, timeout=10_000)
    assert (view[key] == 5).all() and view.reads == 1 and view.span == (5.0, 5.0)
    array[0, 1] = 7
    assert (view[key] == 5).all() and view.reads == 1  # not changed, as far as it knows
    view.invalidate()
    assert (view[key] == 5).all()  # what was read, until it is read again
    qtbot.waitUntil(lambda: not view.reading and (view[key] == 7).all(), timeout=10_000)
    assert view.reads == 2 and not any(reads.on_gui_thread)
    np.testing.assert_array_equal(np.asarray(view), array[0])  # asked for: read now


def test_a_blockwise_output_is_read_off_the_gui_thread_into_one_layer(
        make_napari_viewer, trained_store, qtbot, tmp_path, monkeypatch):
    """As blocks complete, the output layer keeps its data (no new dask graph read whole
    on the GUI thread at each update) and shows the blocks written. The panel is docked as
    napari docks it (its viewer then hands out proxies of layers and their data)."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )
    from napari_dacapo.gui import blockwise_panel
    from napari_dacapo.gui.blockwise_job import BlocksDone, BlockwiseStarted, OutputReady

    viewer = make_napari_viewer()
    widget = viewer.window.add_plugin_dock_widget("napari-dacapo", "DaCapo predict")[1]
    qtbot.waitUntil(lambda: widget.info is not None, timeout=20_000)
    write_zarr_array(tmp_path / "in.zarr", "raw", np.zeros((40, 40), np.uint8),
                     voxel_size=(1, 1))
    image = viewer.open(str(tmp_path / "in.zarr"), plugin="napari-dacapo")[0]
    output = tmp_path / "out.zarr" / "pred"
    written = zarr.open_array(output, mode="w", shape=(1, 40, 40), chunks=(1, 10, 10),
                              dtype="f4")
    reads = Reads(written)
    datas = []
    name = layer_name("tiny_2d", f"prediction {image.name}")
    go_on = threading.Event()

    def blocks(job, cancel):  # four blocks of 20 x 20, each with its number
        yield BlockwiseStarted(4, 0)
        yield OutputReady(reads, (1, 1), (0, 0))
        for block in range(4):
            y, x = divmod(block, 2)
            written[0, 20 * y: 20 * y + 20, 20 * x: 20 * x + 20] = block + 1
            go_on.clear()
            yield BlocksDone(block + 1, 4)
            go_on.wait(10)

    monkeypatch.setattr(blockwise_panel, "blockwise_events", blocks)
    monkeypatch.setattr(blockwise_panel, "REFRESH_SECONDS", 0.0)
    widget.blockwise.output_edit.value = output
    widget.predict_button.native.click()
    for block in range(4):
        qtbot.waitUntil(lambda b=block: widget.progress.value == b + 1, timeout=10_000)
        datas.append(viewer.layers[name].data)
        go_on.set()
    qtbot.waitUntil(lambda: widget.blockwise.worker is None, timeout=10_000)
    layer = viewer.layers[name]
    qtbot.waitUntil(lambda: layer.get_value((30, 30)) == 4, timeout=10_000)
    assert [layer.get_value(p) for p in ((5, 5), (5, 30), (30, 5))] == [1, 2, 3]
    assert all(data is layer.data for data in datas)  # one layer data, refreshed
    assert reads.on_gui_thread and not any(reads.on_gui_thread)
    assert tuple(layer.contrast_limits) == (0.0, 4.0)  # from the values read
