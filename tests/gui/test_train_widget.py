"""The training panel driven like a user would: pick layers, press the buttons, watch the
state, the layers and the store."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import tiny_config

from napari_dacapo._reader import read_run
from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.gui import data_check as data_check_module
from napari_dacapo.gui import train_widget as train_widget_module
from napari_dacapo.gui.layers import layer_name
from napari_dacapo.gui.presets import PRESETS
from napari_dacapo.gui.state import Phase
from napari_dacapo.gui.train_widget import TrainWidget
from napari_dacapo.store.file_store import FileStore

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


@pytest.fixture
def viewer(make_napari_viewer):
    """A viewer with a 2D image and its labels, both at scale 0.5 and a fractional
    translate (so outputs must be placed through the common world factor)."""
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    geometry = {"scale": (0.5, 0.5), "translate": (3.5, -2.0)}
    viewer.add_image(raw, name="raw", **geometry)
    viewer.add_labels(labels, name="labels", **geometry)
    return viewer


def make_panel(viewer, tmp_path, iterations=6, name="tiny"):
    """A docked panel with the tiny run's settings (fast to train)."""
    panel = TrainWidget(viewer, store=FileStore(tmp_path / "runs"))
    viewer.window.add_dock_widget(panel)
    panel.settings.set_config(tiny_config(2, name=name, iterations=iterations))
    panel._refresh_enabled()
    return panel


def wait_for(qtbot, panel, *phases):
    qtbot.waitUntil(lambda: panel.state.phase in phases, timeout=WAIT_MS)


def test_panel_opens_ready_to_train(viewer, tmp_path):
    panel = make_panel(viewer, tmp_path)
    assert panel.data.raw.value is viewer.layers["raw"]
    assert panel.data.labels.value is viewer.layers["labels"]
    assert panel.state.reason_disabled == ""
    assert panel.train_button.isEnabled() and not panel.stop_button.isEnabled()
    assert not panel.continue_button.isEnabled()  # nothing stored yet


def test_pickers_follow_added_renamed_and_removed_layers(viewer, tmp_path):
    panel = make_panel(viewer, tmp_path)
    extra = viewer.add_image(np.zeros((96, 96), np.uint8), name="second")
    assert extra in panel.data.raw.choices
    extra.name = "renamed"
    combo = panel.data.raw.native
    assert "renamed" in [combo.itemText(i) for i in range(combo.count())]
    region = viewer.add_shapes(name="region")
    assert region in panel.data.validation_region.choices
    assert region in panel.data.mask.choices and region not in panel.data.raw.choices
    viewer.layers.remove(extra)
    assert extra not in panel.data.raw.choices
    viewer.layers.remove("raw")
    panel._refresh_enabled()
    assert panel.data.raw.value is None
    assert "Pick a raw image" in panel.state.reason_disabled
    assert not panel.train_button.isEnabled()


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda v, _: setattr(v.layers["labels"], "data", np.zeros((96, 96), np.uint32)),
         "are empty"),
        (lambda v, _: setattr(v.layers["labels"], "translate", (500.0, 500.0)),
         "do not overlap"),
        # e.g. labels opened from a file as an image
        (lambda v, p: setattr(p.data.labels, "value", v.add_image(np.ones((96, 96), "f4"))),
         "hold float32 values"),
        (lambda v, _: setattr(v.layers["labels"], "data", np.ones((20, 20), np.uint32)),
         r"larger than the annotated region \(20, 20\).*input shape \(20, 20\)"),
    ],
    ids=["empty", "no-overlap", "float", "too-small"],
)
def test_bad_input_disables_train_with_the_reason(viewer, tmp_path, errors, spoil, reason):
    panel = make_panel(viewer, tmp_path)
    spoil(viewer, panel)
    shown = panel._refresh_enabled()
    assert re.search(reason, shown)
    assert not panel.train_button.isEnabled()
    assert panel.status.reason.text() == shown == panel.train_button.toolTip()
    # Pressing Train anyway (e.g. from code) only notifies, naming the problem.
    assert panel.train() is False
    assert errors and errors[-1].startswith("Cannot train:")
    assert panel.controller.worker is None


def test_input_shape_that_does_not_fit_suggests_valid_shapes(viewer, tmp_path):
    panel = make_panel(viewer, tmp_path)
    panel.settings.architecture_form.widget["input_shape"].value = "31, 31"
    assert "nearest valid shapes: (30, 30) and (32, 32)" in panel._refresh_enabled()


def test_run_stored_with_another_config_is_refused(make_napari_viewer, tmp_path):
    store = FileStore(tmp_path / "runs")
    config = tiny_config(2)
    store.store_run_config(config)
    panel = TrainWidget(make_napari_viewer(), store=store)
    panel.set_config(config.replace(
        trainer_config=config.trainer_config.replace(learning_rate=0.01)
    ))
    reason = panel.state.reason_disabled
    assert "already stored" in reason and "trainer_config" in reason
    assert not panel.train_button.isEnabled() and not panel.continue_button.isEnabled()
    panel.controller.shutdown()  # not docked: nothing else ends it


def test_full_training_produces_layers_and_checkpoints(viewer, tmp_path, qtbot):
    raw, labels = synthetic_blobs((64, 64), seed=5)
    geometry = {"scale": (0.5, 0.5), "translate": (3.5, -2.0)}
    viewer.add_image(raw, name="val raw", **geometry)
    viewer.add_labels(labels, name="val labels", **geometry)
    panel = make_panel(viewer, tmp_path)
    panel.data.validation_raw.value = viewer.layers["val raw"]
    panel.data.validation_labels.value = viewer.layers["val labels"]
    panel._refresh_enabled()
    assert panel.state.reason_disabled == ""
    viewer.layers.selection.active = viewer.layers["labels"]  # the user paints labels

    panel.train_button.click()
    assert not panel.train_button.isEnabled() and panel.stop_button.isEnabled()
    wait_for(qtbot, panel, Phase.FINISHED, Phase.CRASHED)
    assert panel.state.phase is Phase.FINISHED, panel.state.message
    outputs = [layer_name("tiny", output) for output in (
        "snapshot raw", "snapshot target", "snapshot prediction", "validation prediction",
        "validation labels",
    )]
    # Pending outputs are added one per timer tick after the run ends.
    qtbot.waitUntil(lambda: all(name in viewer.layers for name in outputs))
    names = [layer.name for layer in viewer.layers]
    assert names.index(outputs[3]) < names.index(outputs[4])  # labels over the prediction
    # Output layers arrived without taking the selection from the labels being painted.
    assert viewer.layers.selection.active is viewer.layers["labels"]
    assert viewer.layers.selection == {viewer.layers["labels"]}
    # The opaque raw crop lies under the prediction and target, never over them.
    order = [layer.name for layer in viewer.layers]
    raw_index = order.index(layer_name("tiny", "snapshot raw"))
    assert raw_index < order.index(layer_name("tiny", "snapshot prediction"))
    assert raw_index < order.index(layer_name("tiny", "snapshot target"))
    # Outputs lie on the source's voxel grid in world coordinates.
    validation = viewer.layers[layer_name("tiny", "validation labels")]
    assert tuple(validation.scale) == (0.5, 0.5)
    np.testing.assert_allclose(validation.translate, (3.5, -2.0))
    snapshot = viewer.layers[layer_name("tiny", "snapshot raw")]
    steps = (np.asarray(snapshot.translate) - (3.5, -2.0)) / 0.5
    np.testing.assert_allclose(steps, np.round(steps))
    assert panel.store.checkpoint_iterations("tiny")[-1] == 6
    # Opened later from the run folder, the outputs land where the panel showed them
    # (the layers' scale 0.5 trained in integer units of 1/10: display.json says so).
    from_disk = {meta["name"]: meta for _, meta, _ in read_run(panel.store.run_dir("tiny"))}
    stored = from_disk[layer_name("tiny", "validation labels")]
    np.testing.assert_allclose(stored["scale"], validation.scale)
    np.testing.assert_allclose(stored["translate"], validation.translate)
    stored = from_disk[layer_name("tiny", "snapshot raw")]  # the last snapshot's place
    np.testing.assert_allclose(stored["scale"], snapshot.scale)
    steps = (np.asarray(stored["translate"]) - (3.5, -2.0)) / 0.5
    np.testing.assert_allclose(steps, np.round(steps))
    assert panel.state.iteration == 6 and panel.state.best_scores
    assert panel.state.device.startswith("cpu")
    panel.plots.redraw()
    iterations, _ = panel.plots.loss_curve.getData()
    assert iterations[-1] == 5 and panel.plots.criterion.count() > 0
    assert "best" in panel.plots.best_label.text()
    # Trained: Train would do nothing, Continue trains further.
    qtbot.waitUntil(lambda: "press Continue" in panel.state.reason_disabled)
    assert panel.continue_button.isEnabled() and not panel.train_button.isEnabled()


def test_pause_resume_stop(viewer, tmp_path, qtbot):
    panel = make_panel(viewer, tmp_path, iterations=100_000)
    panel.status.live.setChecked(False)
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.state.iteration >= 2, timeout=WAIT_MS)

    panel.pause_button.click()
    wait_for(qtbot, panel, Phase.PAUSED)
    assert panel.resume_button.isEnabled() and not panel.pause_button.isEnabled()
    paused_at = panel.state.iteration
    qtbot.wait(300)
    assert panel.state.iteration == paused_at
    panel.status.render()
    assert "ETA" not in panel.status.speed.text()  # a paused run has no arrival time
    assert panel.status.message.text() == f"paused at iteration {paused_at}"

    panel.resume_button.click()
    qtbot.waitUntil(lambda: panel.state.iteration > paused_at + 1, timeout=WAIT_MS)
    assert panel.state.phase is Phase.TRAINING

    with qtbot.waitSignal(panel.controller.worker.finished, timeout=WAIT_MS):
        panel.stop_button.click()
    assert panel.state.phase is Phase.STOPPED
    assert panel.store.latest_iteration("tiny") == panel.state.iteration
    assert not panel.controller.running
    qtbot.waitUntil(panel.continue_button.isEnabled)
    assert panel.train_button.isEnabled()  # resumes the stopped run


def test_continue_trains_on_labels_painted_since(viewer, tmp_path, qtbot):
    panel = make_panel(viewer, tmp_path, iterations=2)
    panel.status.live.setChecked(False)
    panel.train_button.click()
    wait_for(qtbot, panel, Phase.FINISHED, Phase.CRASHED)

    labels = viewer.layers["labels"]
    labels.data[:8, :8] = 777  # "painting" new labels
    labels.refresh()
    panel.status.more_iterations.setValue(2)
    panel._refresh_enabled()
    panel.continue_button.click()
    wait_for(qtbot, panel, Phase.FINISHED, Phase.CRASHED)
    assert panel.state.phase is Phase.FINISHED
    assert panel.store.latest_iteration("tiny") == 4
    assert panel.settings.run_form.values()["num_iterations"] == 4
    stored = panel.store.retrieve_run_config("tiny").datasplit_config.train_configs[0]
    assert 777 in np.asarray(stored.gt_config.array().data)


def test_live_view_shows_and_refreshes_the_prediction_in_view(viewer, tmp_path, qtbot):
    panel = make_panel(viewer, tmp_path, iterations=100_000)
    panel.live.period_s = 0.0
    panel.train_button.click()
    live = layer_name("tiny", "live")
    qtbot.waitUntil(lambda: live in viewer.layers, timeout=WAIT_MS)
    first = viewer.layers[live].data.copy()
    qtbot.waitUntil(lambda: not np.array_equal(viewer.layers[live].data, first),
                    timeout=WAIT_MS)
    layer = viewer.layers[live]
    assert layer.scale[-1] == 0.5
    # Switched off: no more requests.
    panel.status.live.setChecked(False)
    assert panel.live.poll() is None
    with qtbot.waitSignal(panel.controller.worker.finished, timeout=WAIT_MS):
        panel.stop_button.click()


def test_live_view_skips_unchanged_views_and_follows_the_slice(make_napari_viewer):
    from funlib.geometry import Coordinate

    from napari_dacapo.gui.live_view import LiveView

    viewer = make_napari_viewer()
    raw = viewer.add_image(np.zeros((40, 64, 64), np.uint8), scale=(2, 1, 1))
    requests = []
    live = LiveView(viewer, requests.append, period_s=1.0, max_voxels=32 * 32)
    live.begin(raw, voxel_size=Coordinate(2, 1, 1), offset=Coordinate(0, 0, 0), dims=3)
    roi = live.poll(now=10.0)
    assert roi is not None and requests == [roi]
    assert roi.shape[0] == 2 and np.prod(roi.shape) // 2 <= 32 * 32  # one slice, bounded
    assert live.poll(now=10.5) is None  # too soon
    assert live.poll(now=20.0) is None  # nothing changed
    viewer.dims.set_point(0, 30.0)
    moved = live.poll(now=30.0)
    assert moved is not None and moved.begin[0] == 30
    live.iteration = 5  # the model trained since
    assert live.poll(now=40.0) == moved
    live.end()


def test_set_config_shows_its_data_and_is_ready(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    panel = TrainWidget(viewer, store=FileStore(tmp_path / "runs"))
    viewer.window.add_dock_widget(panel)
    config = tiny_config(2)
    panel.set_config(config)
    assert panel.data.raw.value is viewer.layers[layer_name(config.name, "stored raw")]
    assert panel.data.validation_labels.value is not None
    assert panel.state.reason_disabled == ""
    assert panel.settings.run_form.values()["name"] == config.name


def test_worker_failure_crashes_with_a_next_step(viewer, tmp_path, qtbot, monkeypatch, errors):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")
        yield

    monkeypatch.setattr("napari_dacapo.train.train_run", out_of_memory)
    panel = make_panel(viewer, tmp_path)
    panel.train_button.click()
    wait_for(qtbot, panel, Phase.CRASHED, Phase.FINISHED)
    assert panel.state.phase is Phase.CRASHED
    assert "CUDA out of memory" in errors[-1] and "Next step" in errors[-1]
    qtbot.waitUntil(lambda: not panel.controller.running)
    assert panel.train_button.isEnabled()


def test_closing_the_viewer_stops_training_with_a_checkpoint(viewer, tmp_path, qtbot):
    panel = make_panel(viewer, tmp_path, iterations=100_000)
    panel.status.live.setChecked(False)
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.state.iteration >= 1, timeout=WAIT_MS)
    controller, state, store = panel.controller, panel.state, panel.store
    viewer.close()
    # Closing waited (bounded) for the worker; its last events arrive through the loop.
    assert not controller.running
    qtbot.waitUntil(lambda: state.phase is Phase.STOPPED, timeout=WAIT_MS)
    assert store.latest_iteration("tiny") == state.iteration >= 1


def test_multiscale_layers_train_at_full_resolution(viewer, tmp_path, qtbot, errors):
    """A multiscale layer (a pyramid, as OME-Zarr opens) is trained on at its level 0, at
    the layer's scale and translate (napari's are level 0's)."""
    from napari_dacapo.gui.layer_arrays import layer_array_config, spatial_dims

    raw, labels = viewer.layers["raw"].data, viewer.layers["labels"].data
    geometry = {"scale": (0.5, 0.5), "translate": (3.5, -2.0)}
    ms_raw = viewer.add_image([raw, raw[::2, ::2]], name="ms raw", **geometry)
    ms_labels = viewer.add_labels([labels, labels[::2, ::2]], name="ms labels", **geometry)
    assert ms_raw.multiscale and ms_labels.multiscale
    config = layer_array_config(ms_labels, "gt", 2, 10)
    assert config.data is ms_labels.data[0] and spatial_dims(ms_labels) == 2
    assert tuple(config.voxel_size) == (5, 5) and tuple(config.offset) == (35, -20)

    panel = make_panel(viewer, tmp_path, iterations=2)
    panel.status.live.setChecked(False)
    panel.data.raw.value, panel.data.labels.value = ms_raw, ms_labels
    assert panel._refresh_enabled() == ""
    panel.train_button.click()
    wait_for(qtbot, panel, Phase.FINISHED, Phase.CRASHED)
    assert panel.state.phase is Phase.FINISHED, errors
    assert panel.store.latest_iteration("tiny") == 2


def test_continue_trains_exactly_the_more_iterations_asked_for(viewer, tmp_path, qtbot):
    """Stopped before its total, a run continued with "+N" trains N iterations, keeping
    its stored total (the store never lowers it), and Train later trains to that total."""
    panel = make_panel(viewer, tmp_path, iterations=200)
    panel.status.live.setChecked(False)
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.state.iteration >= 2, timeout=WAIT_MS)
    with qtbot.waitSignal(panel.controller.worker.finished, timeout=WAIT_MS):
        panel.stop_button.click()
    done = panel.store.latest_iteration("tiny")
    assert done is not None and done < 200

    panel.status.more_iterations.setValue(3)
    panel._refresh_enabled()
    assert panel.continue_button.isEnabled()
    panel.continue_button.click()
    assert panel.state.total == done + 3
    wait_for(qtbot, panel, Phase.FINISHED, Phase.CRASHED)
    assert panel.state.phase is Phase.FINISHED
    assert panel.store.latest_iteration("tiny") == done + 3
    assert panel.store.retrieve_run_config("tiny").num_iterations == 200
    assert panel.settings.run_form.values()["num_iterations"] == 200
    qtbot.waitUntil(panel.train_button.isEnabled)  # not trained to its total yet


def test_a_changed_field_is_reported_without_num_iterations(make_napari_viewer, tmp_path):
    """Only the fields the user changed are named: not Continue's own total (done + the
    "+N" box)."""
    store = FileStore(tmp_path / "runs")
    config = tiny_config(2)
    store.store_run_config(config)
    panel = TrainWidget(make_napari_viewer(), store=store)
    panel.status.more_iterations.setValue(1000)
    panel.set_config(config.replace(
        trainer_config=config.trainer_config.replace(learning_rate=0.01)
    ))
    reason = panel.state.reason_disabled
    assert "trainer_config" in reason and "num_iterations" not in reason
    # A num_iterations the user raised is a change of theirs, and is named.
    panel.settings.set_settings({"num_iterations": 50})
    assert "num_iterations" in panel._refresh_enabled()
    panel.controller.shutdown()  # not docked: nothing else ends it


def _nan_raw(viewer, panel):
    raw = viewer.layers["raw"].data.astype(np.float32)
    raw[10:20, 10:20] = np.nan
    viewer.layers["raw"].data = raw


def _negative_labels(viewer, panel):
    labels = viewer.layers["labels"].data.astype(np.int64)
    labels[labels == 1] = -5
    viewer.layers["labels"].data = labels


def _two_classes_on_instances(viewer, panel):
    from napari_dacapo.experiments import OneHotTaskConfig

    panel.settings.set_config(tiny_config(2, name="tiny").replace(
        task_config=OneHotTaskConfig(name="classes", classes=["background", "blob"])
    ))


DATA_PROBLEMS = pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (_nan_raw, r"raw holds the value nan at world position"),
        (_negative_labels, r"Ground truth holds negative labels \(min -5\)"),
        (_two_classes_on_instances,
         r"[Ll]abels( '[^']*')? hold the value \d+, but the task has 2 classes"),
    ],
    ids=["nan-raw", "negative-labels", "classes"],
)


@DATA_PROBLEMS
def test_data_content_problems_disable_train_with_the_reason(
    viewer, tmp_path, qtbot, monkeypatch, spoil, problem
):
    """The content checks run in a worker (the GUI does not wait for them); their problem
    then disables Train and Continue with the reason, and is notified."""
    warnings: list[str] = []
    monkeypatch.setattr(data_check_module, "show_warning", warnings.append)
    panel = make_panel(viewer, tmp_path)
    spoil(viewer, panel)
    qtbot.waitUntil(lambda: bool(re.search(problem, panel.state.reason_disabled)),
                    timeout=WAIT_MS)
    assert not panel.train_button.isEnabled() and not panel.continue_button.isEnabled()
    assert panel.status.reason.text() == panel.state.reason_disabled
    assert any(re.search(problem, w) for w in warnings)
    assert panel.train() is False and panel.controller.worker is None


@DATA_PROBLEMS
def test_data_refused_by_the_worker_names_the_problem_not_a_resume(
    viewer, tmp_path, qtbot, monkeypatch, errors, spoil, problem
):
    """Train pressed before the panel's check ended: the worker's own checks refuse the
    data; the error names the problem and its fix, and no checkpoint to resume from."""
    monkeypatch.setattr(data_check_module, "data_problem", lambda config: "")
    panel = make_panel(viewer, tmp_path)
    spoil(viewer, panel)
    # A float raw is measured first (its intensity range), then Train is enabled.
    qtbot.waitUntil(lambda: panel._refresh_enabled() == "", timeout=WAIT_MS)
    panel.train_button.click()
    wait_for(qtbot, panel, Phase.CRASHED, Phase.FINISHED)
    assert panel.state.phase is Phase.CRASHED
    assert re.search(problem, errors[-1]) and "Cannot train run 'tiny'" in errors[-1]
    assert "resumes" not in errors[-1] and "checkpoint" not in errors[-1]
    assert panel.store.latest_iteration("tiny") is None


def test_task_lengths_are_given_in_the_layers_units(viewer, tmp_path):
    """The layers (scale 0.5, translate 3.5) train in integer units of a tenth: a clip
    distance typed in the layers' units is scaled alike, and shown so again."""
    from napari_dacapo.experiments import DistanceTaskConfig

    panel = make_panel(viewer, tmp_path)
    task = DistanceTaskConfig(name="d", channels=["blob"], clip_distance=4.0,
                              tol_distance=1.5, scale_factor=2.0)
    panel.settings.set_settings({"task_config": task})
    assert panel._refresh_enabled() == ""
    built = panel._config.task_config
    assert (built.clip_distance, built.tol_distance, built.scale_factor) == (40.0, 15.0, 20.0)

    panel.store.store_run_config(panel._config)
    panel.store.store_display("tiny", {"world_factor": 10})  # as training records it
    again = TrainWidget(viewer, store=panel.store)
    again.set_config(panel.store.retrieve_run_config("tiny"))
    shown = again.settings.task_form.value()
    assert (shown.clip_distance, shown.tol_distance, shown.scale_factor) == (4.0, 1.5, 2.0)
    again._refresh_enabled()
    assert again._config.task_config == built  # Continue matches the stored run
    # Load settings... of the stored run's config file: the same, in the layers' units.
    again.settings.set_settings({"task_config": task.replace(clip_distance=9.0)})
    assert again.settings.load(str(panel.store.run_dir("tiny") / "config.yaml"))
    shown = again.settings.task_form.value()
    assert (shown.clip_distance, shown.tol_distance, shown.scale_factor) == (4.0, 1.5, 2.0)


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        ({"scale": (1.0, 1.0)}, r"'labels' has scale \(1.0, 1.0\) but the image 'raw' has "
         r"\(0.5, 0.5\).*set it to \(0.5, 0.5\)"),
        ({"translate": (100.25, -2.0)}, r"'labels' has translate \(100.25, -2.0\), which is "
         r"not a whole number of its pixels \(scale \(0.5, 0.5\)\).*e.g. \(100.0, -2.0\)"),
    ],
    ids=["scale", "translate"],
)
def test_geometry_problems_are_said_in_the_layers_units(viewer, tmp_path, geometry, reason):
    # The layers train in integer units of a hundredth here: messages must not name them.
    panel = make_panel(viewer, tmp_path)
    for key, value in geometry.items():
        setattr(viewer.layers["labels"], key, value)
    assert re.search(reason, panel._refresh_enabled())
    assert not panel.train_button.isEnabled()


def test_a_run_made_from_a_config_file_says_how_to_continue_it(
    make_napari_viewer, tmp_path, monkeypatch
):
    """Its data cannot be made again from layers: the reason says the CLI command that
    continues it."""
    shown: list[str] = []
    monkeypatch.setattr(train_widget_module, "show_info", shown.append)
    store = FileStore(tmp_path / "runs")
    config = tiny_config(2)
    store.store_run_config(config)  # as `napari-dacapo train CONFIG` stores it
    panel = TrainWidget(make_napari_viewer(), store=store)
    panel.load_run(config.name)
    assert "made from a config file" in shown[-1]
    reason = panel.state.reason_disabled
    assert f"napari-dacapo train --run {config.name} --iterations N" in reason
    assert "made from a config file" in reason and not panel.continue_button.isEnabled()
    assert panel.status.continue_button.toolTip() == reason


def _reason(panel, qtbot):
    """Train's reason once the background data check is done."""
    panel._refresh_enabled()
    qtbot.waitUntil(lambda: panel.data_check._checking is None, timeout=WAIT_MS)
    return panel._refresh_enabled()


def test_anisotropic_stack_gets_an_anisotropic_network(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((24, 128, 128), seed=1)
    geometry = {"scale": (0.4, 0.1, 0.1)}  # z spacing 4 times x, y
    viewer.add_image(raw, name="raw", **geometry)
    viewer.add_labels(labels, name="labels", **geometry)
    panel = TrainWidget(viewer, store=FileStore(tmp_path / "runs"))
    network = panel.settings.settings()["architecture_config"]
    assert network.downsample_factors == [(1, 2, 2), (1, 2, 2)]
    assert network.input_shape == (9, 60, 60)
    assert network.kernel_size_down[0] == [(1, 3, 3)] * 2
    assert _reason(panel, qtbot) == ""
    # A preset picked again is fitted alike (it was applied isotropically).
    panel.settings.presets.setCurrentText("3D large")
    panel.settings.presets.setCurrentText("3D small")
    assert panel.settings.settings()["architecture_config"] == network
    assert _reason(panel, qtbot) == ""
    # An isotropic network (loaded, or edited) does not fit 24 slices: the reason says, in
    # a line, which preset to pick to fit it (in the layers' units).
    panel.settings.architecture_form.set_value(PRESETS["3D small"].architecture())
    reason = _reason(panel, qtbot)
    assert reason == (
        "The network input (60, 60, 60) is larger than the annotated region (24, 128, 128) "
        "(voxels where image and labels overlap): pick the preset '3D small' again to fit "
        "the network to these anisotropic voxels (voxel size (0.4, 0.1, 0.1)), or use fewer "
        "downsampling levels, or annotate a larger region.")
    assert panel.state.reason_disabled == reason
    panel.settings.presets.textActivated.emit("3D small")
    assert panel.settings.settings()["architecture_config"] == network
    assert _reason(panel, qtbot) == ""


def test_thin_anisotropic_stack_gets_a_network_that_fits(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((8, 96, 96), seed=1)  # 8 confocal slices
    viewer.add_image(raw, name="raw", scale=(4, 1, 1))
    viewer.add_labels(labels, name="labels", scale=(4, 1, 1))
    panel = TrainWidget(viewer, store=FileStore(tmp_path / "runs"))
    network = panel.settings.settings()["architecture_config"]
    assert network.downsample_factors == [(1, 2, 2), (1, 2, 2)]
    assert network.input_shape[0] <= 8
    assert _reason(panel, qtbot) == ""


def test_channels_last_image_says_to_move_its_channels(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    viewer.add_image(np.stack([raw, raw], -1), name="two")
    viewer.add_labels(labels, name="labels")
    panel = TrainWidget(viewer, store=FileStore(tmp_path / "runs"))
    network = panel.settings.settings()["architecture_config"]
    assert len(network.input_shape) == 2 and network.fmaps_in == 2  # no 3D preset
    reason = _reason(panel, qtbot)
    assert "reads channels from the first axis" in reason
    assert "np.moveaxis(viewer.layers['two'].data, -1, 0)" in reason
    viewer.layers["two"].data = np.moveaxis(viewer.layers["two"].data, -1, 0)
    assert _reason(panel, qtbot) == ""


def test_a_first_axis_read_as_channels_is_said_under_the_data(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    viewer.add_image(np.stack([raw] * 5), name="movie")  # e.g. 5 time points
    viewer.add_labels(labels, name="frame labels")
    panel = TrainWidget(viewer, store=FileStore(tmp_path / "runs"))
    viewer.window.add_dock_widget(panel)
    panel._refresh_enabled()
    assert panel.settings.settings()["architecture_config"].fmaps_in == 5
    note = panel.state.data_status
    assert "read as 5 channels" in note and "split it into 2D frames" in note
    assert panel.data.status_line.value == note  # shown under the pickers
    viewer.add_image(raw, name="one frame")
    panel.data.raw.value = viewer.layers["one frame"]
    panel._refresh_enabled()
    assert "channels" not in panel.state.data_status


def test_a_run_trained_on_layers_in_micrometers_exports_in_micrometers(viewer, tmp_path,
                                                                        qtbot):
    """Layers at scale 0.5 µm train in integer units of 0.1 µm; the run records the
    layers' units, so its export gives voxel size 0.5 in micrometers (it said '')."""
    import yaml

    from napari_dacapo.export import export_model
    from napari_dacapo.store.file_store import read_display

    for layer in viewer.layers:
        layer.units = ("micrometer", "micrometer")
    panel = make_panel(viewer, tmp_path, iterations=2)
    qtbot.waitUntil(lambda: panel.state.reason_disabled == "", timeout=WAIT_MS)
    panel.train_button.click()
    wait_for(qtbot, panel, Phase.FINISHED, Phase.CRASHED)
    assert panel.state.phase is Phase.FINISHED, panel.state.message
    assert read_display(panel.store.run_dir("tiny"))["units"] == ["micrometer"] * 2
    with pytest.warns(UserWarning, match="records no post-processing parameters"):
        exported = export_model("tiny", "latest", tmp_path / "export", store=panel.store)
    metadata = yaml.safe_load(exported.metadata.read_text())
    assert metadata["input"]["voxel_size"] == [0.5, 0.5]
    assert metadata["input"]["units"] == ["micrometer", "micrometer"]


def test_a_run_name_too_long_for_a_folder_disables_train_with_the_reason(viewer, tmp_path,
                                                                         errors):
    panel = make_panel(viewer, tmp_path)
    panel.settings.set_settings({"name": "cells_" + "x" * 260})
    reason = panel._refresh_enabled()  # the file system's OSError escaped here before
    assert "is too long (266 characters)" in reason and "at most 255" in reason
    assert not panel.train_button.isEnabled() and not panel.train()
    assert "too long" in errors[-1]


def _trained_panel(viewer, tmp_path, qtbot):
    panel = make_panel(viewer, tmp_path)
    panel.status.live.setChecked(False)
    panel.train_button.click()
    wait_for(qtbot, panel, Phase.FINISHED, Phase.CRASHED)
    assert panel.state.phase is Phase.FINISHED
    panel.status.more_iterations.setValue(2)
    panel._refresh_enabled()
    return panel


def test_a_cut_short_latest_checkpoint_disables_continue_with_the_fix(viewer, tmp_path, qtbot,
                                                                     errors):
    from qtpy.QtCore import QThreadPool

    panel = _trained_panel(viewer, tmp_path, qtbot)
    path = panel.store.checkpoint_path("tiny", 6)
    QThreadPool.globalInstance().waitForDone(WAIT_MS)  # the data check after training
    qtbot.wait(4 * train_widget_module.REFRESH_MS)  # and the refresh it asked for
    path.write_bytes(path.read_bytes()[:100])
    # Found without pressing, though no field changed: the panel looks at the store.
    panel._on_store_timer_timeout()
    qtbot.waitUntil(lambda: not panel.continue_button.isEnabled())
    panel.settings.set_settings({"num_iterations": 8})  # Train would resume from it too
    panel._refresh_enabled()
    reason = panel.continue_button.toolTip()
    assert str(path) in reason and "Delete that file to " in reason
    assert panel.state.reason_disabled == reason
    assert not panel.continue_button.isEnabled() and not panel.train_button.isEnabled()
    assert not panel.continue_training() and str(path) in errors[-1]
    assert panel.settings.run_form.values()["num_iterations"] == 8


def test_a_continue_that_fails_leaves_the_forms_as_they_were(viewer, tmp_path, qtbot,
                                                            monkeypatch, errors):
    panel = _trained_panel(viewer, tmp_path, qtbot)
    assert panel.continue_button.isEnabled()

    def fails(*args, **kwargs):
        raise RuntimeError("disk gone")
        yield

    monkeypatch.setattr("napari_dacapo.train.train_run", fails)
    panel.continue_button.click()
    wait_for(qtbot, panel, Phase.CRASHED, Phase.FINISHED)
    assert "disk gone" in errors[-1]
    qtbot.waitUntil(lambda: not panel.controller.running)
    # Continue's own total (6 + 2) was never stored: the form keeps the user's 6.
    assert panel.settings.run_form.values()["num_iterations"] == 6
    assert panel.store.retrieve_run_config("tiny").num_iterations == 6


@pytest.mark.filterwarnings("always::UserWarning")
def test_a_run_without_checkpoints_left_says_continue_cannot_and_train_starts_over(
        viewer, tmp_path, qtbot, monkeypatch):
    panel = _trained_panel(viewer, tmp_path, qtbot)
    for iteration in panel.store.checkpoint_iterations("tiny"):
        panel.store.checkpoint_path("tiny", iteration).unlink()
    said = []
    monkeypatch.setattr(train_widget_module, "show_warning", said.append)
    monkeypatch.setattr(train_widget_module, "show_info", said.append)
    panel.load_run("tiny")
    assert "no checkpoint left" in said[-1] and "Press Continue" not in said[-1]
    panel._refresh_enabled()
    assert not panel.continue_button.isEnabled()
    assert "(pruned or deleted)" in panel.continue_button.toolTip()
    assert panel.train_button.isEnabled()
    # Said before Train is pressed, under the data.
    assert "Train: Run 'tiny' has no checkpoint left" in panel.state.data_status
    assert "starts over from iteration 0" in panel.state.data_status

    from napari_dacapo.gui import controller as controller_module

    monkeypatch.setattr(controller_module, "show_warning", said.append)
    said.clear()  # said again as the run starts (a warning of the training worker)
    panel.train_button.click()
    wait_for(qtbot, panel, Phase.FINISHED, Phase.CRASHED)
    assert any("starts over from iteration 0" in s for s in said)
    assert panel.state.phase is Phase.FINISHED


def test_a_refresh_lists_the_checkpoints_once(viewer, tmp_path, qtbot, monkeypatch):
    """The buttons' refresh (and the store poll) read the checkpoints folder once: it was
    listed again to find whether the run can continue (a slow network disk pays each)."""
    panel = _trained_panel(viewer, tmp_path, qtbot)
    listed, listing = [], panel.store.checkpoint_iterations
    monkeypatch.setattr(panel.store, "checkpoint_iterations",
                        lambda name: listed.append(name) or listing(name))
    panel._refresh_enabled()
    assert listed == ["tiny"] and panel.continue_button.isEnabled()
    listed.clear()
    panel._on_store_timer_timeout()
    assert listed == ["tiny"]


def test_the_layer_warm_up_leaves_no_unit_registry_half_filled():
    """The warm-up thread made the first layer of the process, and with it filled pint's
    unit registry, which has no lock: a layer made on the GUI thread meanwhile (a stored
    run's data, loaded at once) failed with "'pixel' is not defined". The registry is
    filled before the thread starts. In a fresh process: this one's is filled already."""
    import subprocess
    import sys

    script = (
        "import pint\n"
        "from napari_dacapo.gui.layers import warm_up_layer_types\n"
        "registry = pint.get_application_registry()\n"
        "assert type(registry._registry).__name__ == 'LazyRegistry'  # not filled yet\n"
        "warm_up_layer_types()\n"
        "print(type(registry._registry).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "UnitRegistry"


def test_an_rgb_image_trains_with_its_snapshot_in_rgb(make_napari_viewer, tmp_path, qtbot):
    """Training on an RGB image added its raw crop as a (3, Y, X) layer: the 2D viewer
    turned 3D, one colour per slice."""
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    grey = np.clip(raw, 0, 255).astype(np.uint8)
    viewer.add_image(np.stack([grey, 255 - grey, grey // 2], axis=-1), name="rgb", rgb=True)
    viewer.add_labels(labels, name="labels")
    panel = make_panel(viewer, tmp_path, iterations=2)
    network = panel.settings.architecture_form.value()
    panel.settings.set_settings({"architecture_config": network.replace(fmaps_in=3)})
    panel.status.live.setChecked(False)
    qtbot.waitUntil(lambda: panel._refresh_enabled() == "", timeout=WAIT_MS)
    panel.train_button.click()
    wait_for(qtbot, panel, Phase.FINISHED, Phase.CRASHED)
    assert panel.state.phase is Phase.FINISHED, panel.state.message
    name = layer_name("tiny", "snapshot raw")
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=WAIT_MS)
    snapshot = viewer.layers[name]
    assert snapshot.rgb and snapshot.data.shape[-1] == 3 and snapshot.data.ndim == 3
    assert viewer.dims.ndim == 2
    # Opened from the run folder (Open outputs, a run followed), the same.
    (data, meta, _), = [layer for layer in read_run(panel.store.run_dir("tiny"))
                        if layer[1]["name"] == name]
    assert meta["rgb"] and data.shape == snapshot.data.shape
    np.testing.assert_allclose(meta["scale"], snapshot.scale)
    np.testing.assert_allclose(meta["translate"], snapshot.translate)


def test_the_status_shows_the_run_named_in_the_form_not_the_one_trained_before(
        viewer, tmp_path, qtbot, monkeypatch):
    """After training one run, a new name typed or another run loaded still showed the
    trained run's 'iteration 2 / 2', its speed and loss and 'finished at iteration 2'."""
    from conftest import store_random_weights

    monkeypatch.setattr(train_widget_module, "show_info", lambda message: None)
    panel = make_panel(viewer, tmp_path, iterations=2, name="first")
    panel.status.live.setChecked(False)
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.state.phase is Phase.FINISHED
                    and not panel.controller.running, timeout=WAIT_MS)
    status = panel.status

    def shown():
        status.render()
        panel.plots.redraw()
        return (status.progress.format(), status.speed.text(), status.message.text(),
                len(panel.plots._loss_x))

    progress, speed, message, losses = shown()
    assert progress == "iteration 2 / 2" and "loss" in speed and losses == 2
    assert message == "finished at iteration 2"

    panel.settings.set_settings({"name": "second"})  # typed: a run not stored
    panel._refresh_enabled()
    assert shown() == ("iteration 0 / 0", "", "idle", 0)
    assert panel.state.phase is Phase.IDLE and panel.state.run == "second"

    store_random_weights(panel.store, tiny_config(2, name="midway"), iteration=3)
    panel.load_run("midway")  # e.g. the runs browser's Continue
    assert shown() == ("iteration 3 / 6", "", "idle: run 'midway' is stored at iteration 3 "
                       "of 6", 0)
    panel.settings.set_settings({"name": "first"})  # the run trained here, as stored
    panel._refresh_enabled()
    assert shown()[:3] == ("iteration 2 / 2", "", "idle: run 'first' is stored at "
                           "iteration 2 of 2")
    # While a run trains, its own progress is shown (the form is locked meanwhile).
    panel.settings.set_settings({"name": "third", "num_iterations": 2})
    panel._refresh_enabled()
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.state.phase is Phase.FINISHED
                    and not panel.controller.running, timeout=WAIT_MS)
    qtbot.wait(4 * train_widget_module.REFRESH_MS)  # the refresh after the run ended
    progress, speed, message, losses = shown()
    assert (progress, message, losses) == ("iteration 2 / 2", "finished at iteration 2", 2)
    assert "loss" in speed and panel.state.run == "third"
