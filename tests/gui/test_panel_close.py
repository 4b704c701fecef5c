"""Closing a panel with its dock's × (napari's ``remove_dock_widget``, which takes the
panel out of its dock without destroying it) ends the panel's work: training stops with a
checkpoint, without the GUI waiting for it, predictions are cancelled, and nothing more
is shown. The panels are opened as napari's plugin menu opens them."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import tiny_config
from qtpy.QtCore import QCoreApplication, QEvent
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.gui import controller as controller_module
from napari_dacapo.gui.controller import _ACTIVE
from napari_dacapo.gui.panel_close import when_closed
from napari_dacapo.gui.state import Phase
from napari_dacapo.train import CheckpointSaved, IterationDone, RunStarted, RunStopped

pytestmark = pytest.mark.gui

WAIT_MS = 60_000
TRAINING = "DaCapo training"


@pytest.fixture
def viewer(make_napari_viewer, store):
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    viewer.add_image(raw, name="raw")
    viewer.add_labels(labels, name="labels")
    return viewer


def open_training(viewer, iterations=6, name="tiny"):
    """The training panel as the plugin menu opens it (on napari's viewer proxy)."""
    dock, panel = viewer.window.add_plugin_dock_widget("napari-dacapo", TRAINING)
    panel.settings.set_config(tiny_config(2, name=name, iterations=iterations))
    panel._refresh_enabled()
    return dock, panel


def test_when_closed_notices_the_close_button_not_hiding(make_napari_viewer):
    viewer = make_napari_viewer()
    outer, inner = QWidget(), QLabel("inside")
    QVBoxLayout(outer).addWidget(inner)
    calls: list[str] = []
    when_closed(outer, lambda: calls.append("outer"), destroyed=lambda: calls.append("x"))
    when_closed(inner, lambda: calls.append("inner"))  # inside the panel
    forget = when_closed(outer, lambda: calls.append("forgotten"))
    dock = viewer.window.add_dock_widget(outer, name="panel")
    forget()
    dock.close()  # the dock's hide button: the panel stays, and may be shown again
    assert calls == []
    viewer.window.remove_dock_widget(dock)  # the dock's ×
    assert sorted(calls) == ["inner", "outer"]
    viewer.window.remove_dock_widget(viewer.window.add_dock_widget(outer, name="again"))
    assert sorted(calls) == ["inner", "outer"]  # once only


def test_when_closed_calls_destroyed_when_destruction_comes_first(qtbot):
    widget = QWidget()
    calls: list[str] = []
    when_closed(widget, lambda: calls.append("closed"), destroyed=lambda: calls.append("gone"))
    widget.deleteLater()
    QCoreApplication.sendPostedEvents(widget, QEvent.Type.DeferredDelete.value)
    qtbot.waitUntil(lambda: calls == ["gone"])


def test_closing_the_training_panel_stops_its_run_with_a_checkpoint(viewer, qtbot):
    dock, panel = open_training(viewer, iterations=100_000)
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.state.iteration >= 2, timeout=WAIT_MS)
    controller, store = panel.controller, panel.store
    added: list[str] = []
    viewer.layers.events.inserted.connect(lambda event: added.append(event.value.name))
    for layer in viewer.layers:
        layer.events.data.connect(lambda event: added.append(event.source.name))

    viewer.window.remove_dock_widget(dock)

    # `running` ends in the worker thread, before the GUI thread has handled its queued
    # end: wait for the GUI's own end of the run.
    qtbot.waitUntil(lambda: controller.state.phase is Phase.STOPPED and not controller.running,
                    timeout=WAIT_MS)
    assert store.latest_iteration("tiny") == controller.state.iteration >= 2
    qtbot.wait(1500)  # longer than an output layer waits between two updates
    assert added == []  # a closed panel shows nothing more
    assert controller not in _ACTIVE


def fake_training(release: threading.Event, runs: list[str]):
    """A training worker's generator that, once asked to stop, waits for ``release``
    before it ends (a long last iteration, checkpoint or live prediction)."""

    def events(config, store, stop, live, display, train_until):
        runs.append(config.name)
        yield RunStarted(config.name, 0, 100, "cpu (fp32)")
        iteration = 0
        while not stop.is_set():
            yield IterationDone(iteration, 0.5, 0.01, 10.0)
            iteration += 1
            time.sleep(0.005)
        release.wait(WAIT_MS / 1000)
        yield CheckpointSaved(iteration)
        yield RunStopped(iteration)

    return events


def test_a_closed_panel_does_not_wait_and_its_run_is_said_to_be_stopping_here(
        viewer, qtbot, monkeypatch, errors):
    release, runs = threading.Event(), []
    monkeypatch.setattr(controller_module, "training_events", fake_training(release, runs))
    dock, panel = open_training(viewer)
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.state.iteration >= 2, timeout=WAIT_MS)
    controller = panel.controller

    began = time.monotonic()
    viewer.window.remove_dock_widget(dock)
    assert time.monotonic() - began < 1.0  # the stop is asked for, not waited for
    assert controller.running

    # Reopened meanwhile, the panel's Train says the run stops here, not elsewhere.
    _, again = open_training(viewer)
    assert again.train() is False
    assert "still stopping in this napari" in errors[-1]
    assert "press Train again in a moment" in errors[-1].replace("Press", "press")
    assert "another process" not in errors[-1]
    assert runs == ["tiny"]

    release.set()
    qtbot.waitUntil(lambda: not controller.running, timeout=WAIT_MS)
    assert again.train() is True  # and so it does, a moment later
    qtbot.waitUntil(lambda: again.state.iteration >= 1, timeout=WAIT_MS)
    assert runs == ["tiny", "tiny"]
    again.controller.stop()
    qtbot.waitUntil(lambda: not again.controller.running, timeout=WAIT_MS)


def waits_for_cancel(started: threading.Event, cancelled: list[bool]):
    """A prediction worker's generator that waits until it is cancelled."""

    def events(job, cancel, *_):
        started.set()
        cancelled.append(cancel.wait(WAIT_MS / 1000))
        yield from ()

    return events


def test_closing_the_predict_panel_cancels_its_prediction(predict_panel, qtbot, monkeypatch):
    from napari_dacapo.gui import predict_widget

    started, cancelled = threading.Event(), []
    monkeypatch.setattr(predict_widget, "prediction_events", waits_for_cancel(started,
                                                                              cancelled))
    viewer, widget = predict_panel
    viewer.add_image(synthetic_blobs((40, 40), seed=2)[0], name="blobs")
    widget.predict_button.native.click()
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)

    viewer.window.remove_dock_widget(widget.native)

    qtbot.waitUntil(lambda: cancelled == [True], timeout=WAIT_MS)


def test_closing_the_predict_panel_cancels_a_blockwise_prediction(predict_panel, qtbot,
                                                                  monkeypatch):
    from napari_dacapo.gui import blockwise_panel

    started, cancelled = threading.Event(), []
    monkeypatch.setattr(blockwise_panel, "blockwise_events", waits_for_cancel(started,
                                                                              cancelled))
    viewer, widget = predict_panel
    widget.blockwise.start(SimpleNamespace(output="out.zarr"), "tiny_2d · prediction")
    qtbot.waitUntil(started.is_set, timeout=WAIT_MS)

    viewer.window.remove_dock_widget(widget.native)  # the settings lie inside the panel

    qtbot.waitUntil(lambda: cancelled == [True], timeout=WAIT_MS)


def test_output_layers_of_a_plugin_panel_need_no_private_access(viewer, qtbot, recwarn):
    """The plugin menu gives the panel napari's public-only proxy of the viewer: adding
    output layers without selecting them must not reach for napari's private attributes
    (a warning, and a notification, per layer added)."""
    import warnings

    from napari.utils.notifications import notification_manager

    _, panel = open_training(viewer)
    assert type(panel.viewer).__name__ == "PublicOnlyProxy"
    notes: list[str] = []
    notification_manager.notification_ready.connect(lambda n: notes.append(str(n.message)))
    labels = viewer.layers["labels"]
    viewer.layers.selection.active = labels  # the user paints labels
    arrays = {key: SimpleNamespace(data=np.zeros((1, 8, 8), np.float32), offset=(8, 8),
                                   voxel_size=(1, 1)) for key in ("raw", "target", "prediction")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        panel.outputs.begin("tiny", 1, 2, False, (0.0, 1.0))
        panel.outputs.snapshot(arrays)
        panel.outputs.put("live", np.zeros((1, 16, 16), np.float32), (0, 0), (1, 1),
                          predicted=True)
        panel.outputs.flush(None)
    assert [w for w in caught if "rivate attribute" in str(w.message)] == []
    assert [n for n in notes if "rivate attribute" in n] == []
    assert "tiny · snapshot raw" in viewer.layers and "tiny · live" in viewer.layers
    # Added without taking the selection (the brush) from the labels.
    assert viewer.layers.selection.active is labels
    assert viewer.layers.selection == {labels}


def test_closing_the_runs_browser_stops_following(make_napari_viewer, tmp_path, monkeypatch):
    """Its follow timer listed the store every few seconds after its dock's × (the panel
    is kept, not destroyed)."""
    monkeypatch.setenv("NAPARI_DACAPO_ROOT", str(tmp_path / "runs"))
    viewer = make_napari_viewer()
    dock, browser = viewer.window.add_plugin_dock_widget("napari-dacapo", "DaCapo runs")
    browser.follow_check.setChecked(True)
    assert browser.timer.isActive()
    viewer.window.remove_dock_widget(dock)
    assert not browser.timer.isActive() and browser._closed.is_set()


def test_a_closed_predict_panel_stops_following_the_viewer(predict_panel, qtbot, monkeypatch):
    """A dock's × keeps the panel alive: it went on searching every new image for NaN (a
    pass over all its values) and re-listing the store at each layer added."""
    from napari_dacapo.gui import image_values

    searched, listed = [], []
    monkeypatch.setattr(image_values, "non_finite", lambda data: searched.append(data) or False)
    viewer, widget = predict_panel
    monkeypatch.setattr(widget.store, "list_runs", lambda: listed.append(1) or ["tiny_2d"])
    image = viewer.add_image(np.zeros((32, 32), np.float32), name="before")
    qtbot.waitUntil(lambda: len(searched) == 1, timeout=WAIT_MS)
    assert listed  # napari re-lists the choices of a docked panel

    viewer.window.remove_dock_widget(widget.native)
    searched.clear(), listed.clear()
    viewer.add_image(np.ones((32, 32), np.float32), name="after")
    image.data = np.ones((32, 32), np.float32)
    image.scale = (2, 2)
    qtbot.wait(200)
    assert searched == [] and listed == []
    assert not widget._store_timer.isActive()
