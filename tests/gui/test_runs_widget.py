"""The runs browser: lists stored runs, plots the selected run's curves, follows a run
that trains elsewhere, opens its outputs, and hands runs to the training panel."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dacapo.experiments.training_iteration_stats import TrainingIterationStats
from napari_dacapo.gui import runs_widget
from napari_dacapo.gui.layers import layer_name
from napari_dacapo.gui.runs_widget import RunsWidget

pytestmark = pytest.mark.gui


@pytest.fixture
def browser(make_napari_viewer, trained_store, qtbot):
    viewer = make_napari_viewer()
    widget = RunsWidget(viewer, store=trained_store)
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(lambda: widget.table.rowCount() == 1, timeout=20_000)
    return viewer, widget


def select(widget, qtbot, row=0):
    widget.table.selectRow(row)
    qtbot.waitUntil(lambda: widget.selected is not None, timeout=20_000)
    widget.plots.redraw()


def row_texts(widget, row=0):
    return [widget.table.item(row, c).text() for c in range(widget.table.columnCount())]


def test_lists_runs_and_plots_the_selected_one(browser, qtbot):
    viewer, widget = browser
    name, iterations, best = row_texts(widget)
    assert (name, iterations) == ("tiny_2d", "6/6")
    assert best.startswith("blob__dice ") and best.endswith("@ 3")
    assert not widget.continue_button.isEnabled()  # nothing selected yet
    assert widget.continue_button.toolTip() == "Select a run in the table."

    select(widget, qtbot)

    xs, _ = widget.plots.loss_curve.getData()
    np.testing.assert_array_equal(xs, np.arange(6))
    assert widget.plots.criterion.currentText() == "blob__dice"
    xs, ys = widget.plots.score_curve.getData()
    np.testing.assert_array_equal(xs, [3, 6])
    best_iteration, best_value = widget.selected.best["blob__dice"]
    assert list(widget.plots.best_marker.getData()[0]) == [best_iteration]
    assert np.nanmax(ys) == pytest.approx(best_value)  # dice: higher is better
    assert widget.continue_button.isEnabled() and widget.finetune_button.isEnabled()


def test_follows_a_run_training_elsewhere(browser, qtbot, trained_store):
    viewer, widget = browser
    select(widget, qtbot)
    widget.timer.setInterval(50)
    stamp = widget.selected.stamp

    # Another process trains on: it appends stats (the browser never writes).
    stats = trained_store.retrieve_training_stats("tiny_2d")
    for iteration in (6, 7):
        stats.add_iteration_stats(TrainingIterationStats(iteration, 0.1, 0.01))
    trained_store.store_training_stats("tiny_2d", stats)

    qtbot.waitUntil(lambda: widget.selected.stamp != stamp, timeout=10_000)
    widget.plots.redraw()
    xs, ys = widget.plots.loss_curve.getData()
    np.testing.assert_array_equal(xs, np.arange(8))
    assert ys[-1] == pytest.approx(0.1)
    assert row_texts(widget)[1] == "8/6"

    widget.follow_check.setChecked(False)
    assert not widget.timer.isActive()


def test_open_outputs_adds_the_run_layers(browser, qtbot):
    viewer, widget = browser
    select(widget, qtbot)
    widget.open_button.click()
    name = layer_name("tiny_2d", "validation labels")
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=20_000)
    assert layer_name("tiny_2d", "snapshot raw") in viewer.layers
    count = len(viewer.layers)
    widget.open_button.click()  # opened again: the same layers, updated in place
    qtbot.waitUntil(lambda: not widget.workers, timeout=20_000)
    assert len(viewer.layers) == count


class FakePanel:
    """Records what the browser asks of the training panel."""

    def __init__(self):
        self.calls = []

    def load_run(self, name):
        self.calls.append(("load_run", name))

    def set_config(self, config):
        self.calls.append(("set_config", config))


def test_continue_and_fine_tune_fill_the_training_panel(browser, qtbot, monkeypatch):
    viewer, widget = browser
    panel = FakePanel()
    monkeypatch.setattr(runs_widget, "training_panel", lambda v: panel)
    select(widget, qtbot)

    widget.continue_button.click()
    assert panel.calls == [("load_run", "tiny_2d")]

    widget.plots.criterion.setCurrentText("blob__voi")
    widget.finetune_button.click()
    (_, config), = panel.calls[1:]
    assert config.name == "tiny_2d_finetune"
    assert (config.start_config.run, config.start_config.criterion) == (
        "tiny_2d", "best:blob__voi")
    stored = widget.selected.config
    assert config.task_config == stored.task_config
    assert config.architecture_config == stored.architecture_config


def test_empty_store(make_napari_viewer, qtbot, tmp_path):
    from napari_dacapo.store.file_store import FileStore

    widget = RunsWidget(make_napari_viewer(), store=FileStore(tmp_path / "none"))
    qtbot.waitUntil(lambda: "No runs stored" in widget.status.text(), timeout=10_000)
    assert widget.table.rowCount() == 0 and not widget.open_button.isEnabled()


def test_continue_docks_the_training_panel_once(browser, qtbot, monkeypatch):
    from napari_dacapo.gui.train_widget import TrainWidget

    viewer, widget = browser
    calls = []  # the panel's own tests cover what load_run does with the run
    monkeypatch.setattr(TrainWidget, "load_run", lambda panel, name: calls.append((panel, name)))
    select(widget, qtbot)
    widget.continue_button.click()
    panels = [w for w in viewer.window.dock_widgets.values() if isinstance(w, TrainWidget)]
    assert len(panels) == 1 and calls == [(panels[0], "tiny_2d")]

    widget.continue_button.click()  # found docked, not docked again
    assert [w for w in viewer.window.dock_widgets.values() if isinstance(w, TrainWidget)] == (
        panels)
    assert calls[1] == (panels[0], "tiny_2d")


def test_an_unreadable_run_is_listed_with_its_problem(browser, qtbot, trained_store):
    viewer, widget = browser
    broken = trained_store.root / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("name: broken\n__type__: NoSuchConfig\n")
    widget.refresh_button.click()
    qtbot.waitUntil(lambda: widget.table.rowCount() == 2, timeout=20_000)
    name, iterations, problem = row_texts(widget, 0)
    assert (name, iterations) == ("broken", "—") and problem.startswith("unreadable: ")
    widget.table.selectRow(0)
    assert not widget.open_button.isEnabled()
    assert widget.open_button.toolTip().startswith("Run 'broken' is unreadable: ")
    assert row_texts(widget, 1)[:2] == ["tiny_2d", "6/6"]  # the others still show


def test_a_loaded_runs_data_is_never_written_by_outputs_nor_replaced_by_them(
    browser, qtbot, trained_store
):
    from napari_dacapo.gui.train_widget import TrainWidget

    viewer, widget = browser
    trained_store.store_display("tiny_2d", {"world_factor": 10})  # trained at scale 0.1
    panel = TrainWidget(viewer, store=trained_store)
    viewer.window.add_dock_widget(panel)
    panel.load_run("tiny_2d")  # as the browser's Continue does
    stored_labels = viewer.layers[layer_name("tiny_2d", "stored validation labels")]
    ground_truth = np.array(stored_labels.data, copy=True)
    raw = panel.data.raw.value
    assert raw is viewer.layers[layer_name("tiny_2d", "stored raw")]
    assert tuple(raw.scale) == tuple(v / 10 for v in trained_store.retrieve_run_config(
        "tiny_2d").datasplit_config.train_configs[0].raw_config.array().voxel_size)

    select(widget, qtbot)
    widget.open_button.click()  # outputs of the same run, one named "validation labels"
    output = layer_name("tiny_2d", "validation labels")
    qtbot.waitUntil(lambda: output in viewer.layers, timeout=20_000)
    qtbot.waitUntil(lambda: not widget.workers, timeout=20_000)
    np.testing.assert_array_equal(stored_labels.data, ground_truth)
    assert viewer.layers[output] is not stored_labels
    # Output layers are no training data: not offered, not picked.
    offered = [layer for picker in panel.data.pickers for layer in picker.choices]
    assert viewer.layers[layer_name("tiny_2d", "snapshot raw")] not in offered
    assert viewer.layers[output] not in offered
    assert panel.data.validation_labels.value is stored_labels

    viewer.layers.remove(raw)  # the picked raw goes: the picker empties, Train says why
    assert panel.data.raw.value is None
    qtbot.waitUntil(lambda: "Pick a raw image" in panel.state.reason_disabled, timeout=5_000)


def test_an_output_layer_never_writes_into_a_users_layer_of_its_name(make_napari_viewer):
    from napari_dacapo.gui.layers import show

    viewer = make_napari_viewer()
    name = layer_name("run", "validation labels")
    mine = viewer.add_labels(np.ones((4, 4), np.uint8), name=name)
    output = show(viewer, name, np.full((4, 4), 2, np.uint8), "labels")
    assert output is not mine and (mine.data == 1).all()
    again = show(viewer, name, np.full((4, 4), 3, np.uint8), "labels")
    assert again is output and (output.data == 3).all() and (mine.data == 1).all()
    output.name = "renamed by the user"  # still the run's output layer
    assert show(viewer, name, np.zeros((4, 4), np.uint8), "labels") is output
