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


def as_made_from_layers(store, name="tiny_2d"):
    """Store run ``name`` again as if the training panel had made it from layers: only
    such a run is continued in the panel (``tiny_2d`` is made from a config, as by
    ``napari-dacapo train run.yaml``)."""
    from napari_dacapo.gui.data_panel import LAYERS_DATASPLIT
    from napari_dacapo.store.file_store import CONFIG_FILE

    config = store.retrieve_run_config(name)
    (store.run_dir(name) / CONFIG_FILE).unlink()
    store.store_run_config(config.replace(
        datasplit_config=config.datasplit_config.replace(name=LAYERS_DATASPLIT)))


def test_lists_runs_and_plots_the_selected_one(browser, qtbot, trained_store):
    viewer, widget = browser
    as_made_from_layers(trained_store)
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


def test_open_outputs_gives_the_layers_the_units_the_run_was_trained_in(browser, qtbot,
                                                                        trained_store):
    """The run's display record says its layers were in nanometres: its outputs opened in
    pixels beside them (napari: "Inconsistent units across layers")."""
    import json

    import pint

    viewer, widget = browser
    display = trained_store.run_dir("tiny_2d") / "display.json"
    display.write_text(json.dumps({"world_factor": 1, "units": ["nanometer"] * 2}))
    viewer.add_image(np.zeros((8, 8)), name="trained on", units=("nanometer",) * 2)
    select(widget, qtbot)
    widget.open_button.click()
    name = layer_name("tiny_2d", "validation labels")
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=20_000)
    qtbot.waitUntil(lambda: not widget.workers, timeout=20_000)
    nm = pint.get_application_registry().nanometer
    for layer in viewer.layers:
        assert tuple(layer.units)[-2:] == (nm, nm), layer.name
    assert viewer.layers.extent.units is not None  # consistent: napari keeps them


class FakePanel:
    """Records what the browser asks of the training panel."""

    def __init__(self):
        self.calls = []

    def load_run(self, name):
        self.calls.append(("load_run", name))

    def set_config(self, config):
        self.calls.append(("set_config", config))


def test_continue_and_fine_tune_fill_the_training_panel(browser, qtbot, monkeypatch,
                                                        trained_store):
    viewer, widget = browser
    as_made_from_layers(trained_store)
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


def test_a_run_made_from_a_config_file_is_continued_with_the_cli_and_fine_tuned_here(
    browser, qtbot, trained_store
):
    """``tiny_2d`` was made from a config (as by ``napari-dacapo train run.yaml``): the
    panel cannot make its datasplit again from layers, so Continue is off from the start
    and names the command that continues it; Fine-tune makes a new run on the layers of
    its data, which the panel trains."""
    from napari_dacapo.gui.data_panel import made_from_layers

    viewer, widget = browser
    select(widget, qtbot)
    assert not made_from_layers(widget.selected.config)
    assert not widget.continue_button.isEnabled()
    assert widget.continue_button.toolTip() == (
        f"Run 'tiny_2d' was made from a config file, not from napari layers: train it further "
        f"with 'napari-dacapo train --run tiny_2d --store {trained_store.root} --iterations "
        f"N'. Fine-tune trains a new run from its weights here.")
    widget.continue_run()  # refused when called directly too: no panel docked
    assert runs_widget.docked_training_panel(viewer) is None

    assert widget.finetune_button.isEnabled()
    widget.finetune_button.click()
    panel = runs_widget.docked_training_panel(viewer)
    assert panel.data.raw.value is not None  # the data of tiny_2d, opened as layers
    qtbot.waitUntil(lambda: panel._config is not None and panel.state.reason_disabled == "",
                    timeout=20_000)
    assert panel.train_button.isEnabled()
    assert panel._config.name == "tiny_2d_finetune" and made_from_layers(panel._config)
    assert panel._config.start_config.run == "tiny_2d"


def test_empty_store(make_napari_viewer, qtbot, tmp_path):
    from napari_dacapo.store.file_store import FileStore

    widget = RunsWidget(make_napari_viewer(), store=FileStore(tmp_path / "none"))
    qtbot.waitUntil(lambda: "No runs stored" in widget.status.text(), timeout=10_000)
    assert widget.table.rowCount() == 0 and not widget.open_button.isEnabled()


def test_continue_docks_the_training_panel_once(browser, qtbot, monkeypatch, trained_store):
    from napari_dacapo.gui.train_widget import TrainWidget

    viewer, widget = browser
    as_made_from_layers(trained_store)
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

    # Written whole meanwhile (e.g. listed while its trainer wrote it): read while followed.
    widget.timer.setInterval(50)
    (broken / "config.yaml").unlink()
    trained_store.store_run_config(trained_store.retrieve_run_config("tiny_2d").replace(
        name="broken"))
    qtbot.waitUntil(lambda: widget.selected is not None, timeout=10_000)
    assert widget.selected.name == "broken" and row_texts(widget, 0)[1] == "0/6"
    assert widget.open_button.isEnabled()


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


def _train_in_panel(viewer, store, qtbot, name, mask=None, region=None):
    """Train a 2-iteration run in a training panel on ``viewer``'s "raw" and "labels",
    with a Shapes mask and validation region picked (as a user does)."""
    from conftest import tiny_config

    from napari_dacapo.gui.state import Phase
    from napari_dacapo.gui.train_widget import TrainWidget

    panel = TrainWidget(viewer, store=store)
    viewer.window.add_dock_widget(panel)
    panel.settings.set_config(tiny_config(2, name=name, iterations=2))
    panel.status.live.setChecked(False)
    panel.data.mask.value, panel.data.validation_region.value = mask, region
    assert panel._refresh_enabled() == ""
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.state.phase in (Phase.FINISHED, Phase.CRASHED),
                    timeout=60_000)
    assert panel.state.phase is Phase.FINISHED, panel.state.message
    return panel


def _continue_loaded(panel, qtbot, iterations):
    from napari_dacapo.gui.state import Phase

    panel.status.more_iterations.setValue(2)
    panel._refresh_enabled()
    reason = panel.continue_button.toolTip()
    assert panel.continue_button.isEnabled(), reason
    assert "different config" not in reason
    panel.continue_button.click()
    qtbot.waitUntil(lambda: panel.state.phase in (Phase.FINISHED, Phase.CRASHED),
                    timeout=60_000)
    assert panel.state.phase is Phase.FINISHED, panel.state.message
    assert panel.store.latest_iteration(panel._continue.name) == iterations + 2


@pytest.mark.parametrize("mask_end", [None, 71, 96],
                         ids=["region", "region_and_mask", "region_and_whole_mask"])
def test_a_run_trained_with_shapes_continues_once_loaded(
    make_napari_viewer, qtbot, tmp_path, mask_end
):
    """A run trained with a Shapes validation region (and mask) comes back as the region's
    rectangles (no copy of the data), so the panel builds the stored datasplit again and
    Continue trains it further; at scale 0.5 the rectangles land on the layers' units."""
    from napari.layers import Labels, Shapes

    from napari_dacapo.examples import synthetic_blobs
    from napari_dacapo.gui.box_mask import shape_boxes
    from napari_dacapo.gui.train_widget import TrainWidget
    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    geometry = {"scale": (0.5, 0.5), "translate": (3.5, 3.5)}
    viewer.add_image(raw, name="raw", **geometry)
    viewer.add_labels(labels, name="labels", **geometry)

    def world(*voxel):  # a voxel centre in world coordinates
        return [3.5 + 0.5 * v for v in voxel]

    # Along voxel edges: voxels 10..49 x 50..89 (and 0..95 x 0..mask_end - 1). A mask over
    # everything was taken for none once loaded (its training mask looks alike) and the
    # run refused as of another config.
    with_mask = mask_end is not None
    region = viewer.add_shapes([[world(9.5, 49.5), world(49.5, 89.5)]], shape_type="rectangle",
                               name="held out")
    mask = viewer.add_shapes([[world(-0.5, -0.5), world(95.5, mask_end - 0.5)]],
                             shape_type="rectangle", name="annotated") if with_mask else None
    trained = _train_in_panel(viewer, store, qtbot, "shapes", mask, region)
    stored = store.retrieve_run_config("shapes").datasplit_config
    (validate,) = stored.validate_configs
    assert validate.name == "validate_region_1"

    viewer = make_napari_viewer()
    panel = TrainWidget(viewer, store=store)
    viewer.window.add_dock_widget(panel)
    panel.load_run("shapes")  # as the runs browser's Continue does

    loaded = panel.data.validation_region.value
    assert isinstance(loaded, Shapes)
    assert loaded.name == layer_name("shapes", "stored validation region")
    assert loaded.shape_type == ["rectangle"]
    # Along the voxel edges of the crop (voxels 10..49 x 50..89), in the layers' units.
    corners = np.asarray(loaded.data[0]) * loaded.scale + loaded.translate
    np.testing.assert_allclose(corners.min(axis=0), [world(9.5, 49.5)[0], world(9.5, 49.5)[1]])
    np.testing.assert_allclose(corners.max(axis=0), world(49.5, 89.5))
    labels_layer = panel.data.labels.value
    assert labels_layer is viewer.layers[layer_name("shapes", "stored labels")]
    assert shape_boxes(loaded, labels_layer, 2) == shape_boxes(
        region, trained.data.labels.value, 2) == [(slice(10, 50), slice(50, 90))]
    names = [layer.name for layer in viewer.layers]
    assert layer_name("shapes", "stored validation raw") not in names
    assert layer_name("shapes", "stored validation labels") not in names
    assert panel.data.validation_raw.value is None
    mask_layer = panel.data.mask.value
    if with_mask:  # as labels: what was annotated, also in the held-out region
        assert isinstance(mask_layer, Labels)
        assert mask_layer.data[:, :mask_end].all() and not mask_layer.data[:, mask_end:].any()
        # The region's mask is made from it again: its annotated part, not nothing (the
        # stored training mask leaves the region out).
        region_mask = panel.data.selection(2).datasplit.validate_configs[0].mask_config
        stored_mask = validate.mask_config.array()
        box = tuple(slice(0, n) for n in region_mask.data.shape)
        np.testing.assert_array_equal(np.asarray(region_mask.data[box]) != 0,
                                      np.asarray(stored_mask.data) != 0)
        assert np.asarray(stored_mask.data).any()
    else:  # the mask the panel made for the region alone is made again
        assert mask_layer is None and layer_name("shapes", "stored mask") not in names
    _continue_loaded(panel, qtbot, 2)


def test_a_run_trained_in_nanometres_loads_its_data_in_nanometres(make_napari_viewer, qtbot,
                                                                   tmp_path):
    """Continue's 'stored raw', 'stored labels' and 'stored validation region' came back in
    pixels although the run was trained on layers in nanometres (its display record says
    so): napari dropped the units, and the run continued from them recorded none."""
    import pint

    from napari_dacapo.examples import synthetic_blobs
    from napari_dacapo.gui.train_widget import TrainWidget
    from napari_dacapo.store.file_store import FileStore, read_display

    store = FileStore(tmp_path / "runs")
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    units = ("nanometer", "nanometer")
    viewer.add_image(raw, name="raw", scale=(4, 4), units=units)
    viewer.add_labels(labels, name="labels", scale=(4, 4), units=units)
    region = viewer.add_shapes([[[40, 200], [196, 356]]], shape_type="rectangle",
                               name="held out", units=units)
    _train_in_panel(viewer, store, qtbot, "in_nm", region=region)
    assert read_display(store.run_dir("in_nm"))["units"] == list(units)

    viewer = make_napari_viewer()
    panel = TrainWidget(viewer, store=store)
    viewer.window.add_dock_widget(panel)
    panel.load_run("in_nm")  # as the runs browser's Continue does
    nm = pint.get_application_registry().nanometer
    for role in ("raw", "labels", "validation region"):
        layer = viewer.layers[layer_name("in_nm", f"stored {role}")]
        assert tuple(layer.units) == (nm, nm), role
    assert viewer.layers.extent.units == (nm, nm)
    _continue_loaded(panel, qtbot, 2)
    assert read_display(store.run_dir("in_nm"))["units"] == list(units)  # still recorded


@pytest.mark.parametrize("corners", [
    [[5, 5], [20, 30]], [[7, 5, 5], [7, 5, 30], [7, 20, 30], [7, 20, 5]],
], ids=["every_slice", "one_slice"])
def test_a_3d_runs_validation_region_loads_to_the_same_config(
    make_napari_viewer, tmp_path, corners
):
    """A validation region of 3D labels (a 2D rectangle: a crop of every slice; or a
    rectangle on one slice) comes back as such a rectangle; the loaded layers give the
    stored config (Continue waits for a checkpoint only)."""
    from conftest import tiny_config
    from napari.layers import Shapes

    from napari_dacapo.examples import synthetic_blobs
    from napari_dacapo.gui.data_panel import DataPanel
    from napari_dacapo.gui.train_widget import TrainWidget
    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((30, 40, 40), seed=2)
    viewer.add_image(raw, name="raw", scale=(2, 1, 1))
    viewer.add_labels(labels, name="labels", scale=(2, 1, 1))
    data = DataPanel(viewer)
    data.validation_region.value = viewer.add_shapes([corners], name="held out")
    config = tiny_config(3, name="cube").replace(
        datasplit_config=data.selection(3).datasplit)
    store.store_run_config(config)
    data.close()

    viewer = make_napari_viewer()
    panel = TrainWidget(viewer, store=store)
    panel.load_run("cube")
    region = panel.data.validation_region.value
    assert isinstance(region, Shapes) and region.ndim == len(corners[0])
    stored = store.retrieve_run_config("cube").datasplit_config.validate_configs[0]
    assert panel.data.selection(3).datasplit.validate_configs[0].gt_config.roi == (
        stored.gt_config.roi)
    assert panel.data.mask.value is None and panel.data.validation_raw.value is None
    panel._refresh_enabled()
    assert panel.continue_button.toolTip() == "Run 'cube' has no checkpoint yet: press Train."
    store.check_run_config(panel._config)



def test_a_followed_run_deleted_meanwhile_is_dropped_once(browser, qtbot, trained_store):
    import shutil

    viewer, widget = browser
    select(widget, qtbot)
    widget.follow_check.setChecked(True)
    widget.timer.setInterval(50)
    widget.status.setText("")
    shutil.rmtree(trained_store.run_dir("tiny_2d"))
    qtbot.waitUntil(lambda: widget.table.rowCount() == 0, timeout=20_000)
    qtbot.wait(300)  # more ticks: they list the store, nothing left to poll
    qtbot.waitUntil(lambda: not widget.workers, timeout=5_000)
    assert widget.selected is None
    assert widget.status.text() == f"Run 'tiny_2d' is no longer in {trained_store.root}."
    assert "Reading failed" not in widget.status.text()
    assert not widget.open_button.isEnabled()


def test_following_lists_runs_that_appear_or_go_and_the_progress_of_the_others(
    browser, qtbot, trained_store
):
    """Another process starts a run in the store folder, trains it and deletes it: the
    table follows without Refresh, and the selected run stays selected (not read again)."""
    import shutil

    viewer, widget = browser
    select(widget, qtbot)
    selected = widget.selected
    widget.timer.setInterval(50)
    selections = []
    widget.table.itemSelectionChanged.connect(lambda: selections.append(1))

    config = trained_store.retrieve_run_config("tiny_2d")
    trained_store.store_run_config(config.replace(name="another"))  # listed before tiny_2d
    qtbot.waitUntil(lambda: widget.table.rowCount() == 2, timeout=10_000)
    assert row_texts(widget, 0)[:2] == ["another", "0/6"]
    assert widget.selected_name() == "tiny_2d" and widget.selected is selected

    stats = trained_store.retrieve_training_stats("tiny_2d")
    stats.iteration_stats[:] = stats.iteration_stats[:3]
    trained_store.store_training_stats("another", stats)
    qtbot.waitUntil(lambda: row_texts(widget, 0)[1].startswith("3/6"), timeout=10_000)
    assert widget.selected_name() == "tiny_2d" and widget.selected is selected

    shutil.rmtree(trained_store.run_dir("another"))
    qtbot.waitUntil(lambda: widget.table.rowCount() == 1, timeout=10_000)
    assert row_texts(widget)[:2] == ["tiny_2d", "6/6"]
    assert widget.selected_name() == "tiny_2d" and widget.selected is selected
    assert selections == [] and widget.status.text() == ""
    assert widget.continue_button.toolTip().startswith("Run 'tiny_2d' was made from a config")


def test_a_selected_run_deleted_meanwhile_leaves_no_other_run_selected(browser, qtbot,
                                                                      trained_store):
    """The selected run (the last row) is deleted while not followed: the next listing
    clears the selection with a note; it selected the run listed before it, silently."""
    import shutil

    viewer, widget = browser
    config = trained_store.retrieve_run_config("tiny_2d")
    trained_store.store_run_config(config.replace(name="another"))
    widget.refresh()
    qtbot.waitUntil(lambda: widget.table.rowCount() == 2, timeout=20_000)
    select(widget, qtbot, row=1)
    assert widget.selected_name() == "tiny_2d"
    shutil.rmtree(trained_store.run_dir("tiny_2d"))
    widget.refresh()
    qtbot.waitUntil(lambda: widget.table.rowCount() == 1, timeout=20_000)
    assert widget.selected_name() is None and not widget.continue_button.isEnabled()
    assert widget.status.text() == f"Run 'tiny_2d' is no longer in {trained_store.root}."


def test_continue_of_a_run_whose_data_moved_loads_its_settings_and_says_why(
    browser, qtbot, trained_store, monkeypatch
):
    """The run's data (data/*.zarr) were moved or deleted: Continue loads the settings and
    warns, instead of an uncaught FileNotFoundError."""
    import shutil

    from napari_dacapo.gui import train_widget

    warned: list[str] = []
    monkeypatch.setattr(train_widget, "show_warning", warned.append)
    from conftest import tiny_config

    viewer, widget = browser
    trained_store.store_run_config(tiny_config(2, name="moved"))  # its data in its folder
    as_made_from_layers(trained_store, "moved")
    shutil.rmtree(trained_store.run_dir("moved") / "data")
    widget.refresh()
    qtbot.waitUntil(lambda: widget.table.rowCount() == 2, timeout=20_000)
    select(widget, qtbot, row=0)
    assert widget.selected_name() == "moved"
    widget.continue_button.click()
    assert len(warned) == 1 and warned[0].startswith("The data of run 'moved' cannot be "
                                                    "opened")
    panel = runs_widget.training_panel(viewer)
    assert panel.settings.run_form.values()["name"] == "moved"


def test_a_run_loaded_onto_layers_without_its_validation_region_says_what_is_missing(
    make_napari_viewer, qtbot, tmp_path
):
    """napari reopened on the saved image and labels (a Shapes region is not saved): the
    run cannot continue on them, and the reason says the region is what is missing and
    how to get the run's own data back (it said only "datasplit_config differs")."""
    from napari_dacapo.examples import synthetic_blobs
    from napari_dacapo.gui.train_widget import TrainWidget
    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    raw, labels = synthetic_blobs((96, 96), seed=1)
    viewer = make_napari_viewer()
    viewer.add_image(raw, name="raw")
    viewer.add_labels(labels, name="labels")
    region = viewer.add_shapes([[[10, 50], [49, 89]]], shape_type="rectangle")
    _train_in_panel(viewer, store, qtbot, "held", region=region)

    reopened = make_napari_viewer()
    reopened.add_image(raw, name="raw")
    reopened.add_labels(labels, name="labels")
    panel = TrainWidget(reopened, store=store)
    reopened.window.add_dock_widget(panel)
    panel.load_run("held")
    reason = panel.state.reason_disabled
    assert "datasplit_config" in reason
    assert "it was validated on 1 dataset(s) or region(s), 0 are picked now" in reason
    assert "set raw to empty and load the run again (runs browser > Continue)" in reason
    assert not panel.continue_button.isEnabled()
    panel.data.raw.value = None  # as the reason says: the run's own data come back
    panel.load_run("held")
    assert panel.data.validation_region.value is not None
    assert panel.continue_button.isEnabled(), panel.state.reason_disabled


def test_a_run_that_cannot_resume_is_not_offered_to_continue(browser, qtbot, trained_store):
    viewer, widget = browser
    latest = trained_store.latest_iteration("tiny_2d")
    path = trained_store.checkpoint_path("tiny_2d", latest)
    path.write_bytes(path.read_bytes()[:100])  # cut short
    select(widget, qtbot)
    assert not widget.continue_button.isEnabled()
    assert str(path) in widget.continue_button.toolTip()
    assert "Delete that file to " in widget.continue_button.toolTip()

    for iteration in trained_store.checkpoint_iterations("tiny_2d"):
        trained_store.checkpoint_path("tiny_2d", iteration).unlink()
    widget.refresh_button.click()
    qtbot.waitUntil(lambda: widget.selected is not None and not widget.selected.checkpoints,
                    timeout=20_000)
    assert row_texts(widget)[1] == "6/6 (no checkpoint)"
    assert not widget.continue_button.isEnabled()
    assert "no checkpoint left" in widget.continue_button.toolTip()
    # Made from a config file: the way to continue it is said too, not Fine-tune.
    assert widget.continue_button.toolTip().endswith("--iterations N'.")
    assert widget.finetune_button.toolTip() == (
        "Run 'tiny_2d' has no checkpoint to start from (pruned or deleted).")


def test_a_checkpoint_cut_short_in_place_is_noticed_while_following(browser, qtbot,
                                                                     trained_store):
    import os

    viewer, widget = browser
    as_made_from_layers(trained_store)
    select(widget, qtbot)
    widget.follow_check.setChecked(True)
    assert widget.continue_button.isEnabled()
    folder = trained_store.run_dir("tiny_2d") / "checkpoints"
    times = folder.stat()
    path = trained_store.checkpoint_path("tiny_2d", trained_store.latest_iteration("tiny_2d"))
    path.write_bytes(path.read_bytes()[:100])  # in place: the folder's time stays
    os.utime(folder, ns=(times.st_atime_ns, times.st_mtime_ns))
    qtbot.waitUntil(lambda: not widget.continue_button.isEnabled(), timeout=15_000)
    assert str(path) in widget.continue_button.toolTip()


def test_a_failed_read_is_said_in_the_status_not_raised(make_napari_viewer, qtbot, tmp_path,
                                                        monkeypatch, capfd):
    from napari.utils.notifications import notification_manager

    from napari_dacapo.store.file_store import FileStore

    def broken(store, *_):
        raise PermissionError(f"cannot list {store.root}")

    monkeypatch.setattr(runs_widget, "read_runs", broken)
    shown = len(notification_manager.records)
    with qtbot.capture_exceptions() as raised:
        widget = RunsWidget(make_napari_viewer(), store=FileStore(tmp_path / "runs"))
        qtbot.waitUntil(lambda: not widget.workers, timeout=10_000)
    assert not raised  # not re-raised by napari's worker: a traceback on stderr
    assert "Traceback" not in capfd.readouterr().err
    assert widget.status.text() == (
        f"Cannot read the runs in {tmp_path / 'runs'} (PermissionError: cannot list "
        f"{tmp_path / 'runs'}). Check that the store folder is readable, then press Refresh.")
    assert len(notification_manager.records) == shown  # said once, in the status
