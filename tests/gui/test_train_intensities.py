"""What the training panel makes of the picked data: the intensity range a new run scales
its raw data with (measured off the GUI thread, stored with the run, repeated by
prediction, kept when the run continues), and classes that no label holds."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import store_random_weights, tiny_config

from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.experiments import (
    IntensitiesArrayConfig,
    IntensityAugmentConfig,
    NumpyArrayConfig,
    OneHotTaskConfig,
    RunConfig,
    SimpleAugmentConfig,
    ZarrArrayConfig,
)
from napari_dacapo.gui import data_check as data_check_module
from napari_dacapo.gui import train_widget as train_widget_module
from napari_dacapo.gui.layers import layer_name
from napari_dacapo.gui.state import Phase
from napari_dacapo.gui.train_widget import TrainWidget
from napari_dacapo.store.file_store import FileStore

pytestmark = pytest.mark.gui

WAIT_MS = 60_000
MEASURING = "Measuring the image's intensities…"


def float_image(seed: int = 1, shape=(96, 96)) -> tuple[np.ndarray, np.ndarray]:
    """Blobs as a float32 image of about 300-2800 (e.g. background-subtracted), as a
    tester's image that trained to nothing when fed to the network as stored."""
    raw, labels = synthetic_blobs(shape, seed=seed)
    return (300 + raw.astype(np.float32) / 255 * 2500).astype(np.float32), labels


def make_panel(viewer, tmp_path, name="float", **overrides):
    panel = TrainWidget(viewer, store=FileStore(tmp_path / "runs"))
    viewer.window.add_dock_widget(panel)
    config = tiny_config(2, name=name, iterations=4, validation_interval=4,
                         snapshot_interval=2, **overrides)
    # The panel's default augments: the intensity augment clips samples to [0, 1].
    trainer = config.trainer_config.replace(augments=[
        SimpleAugmentConfig(name="mirror_transpose"),
        IntensityAugmentConfig(name="intensity", scale=(0.9, 1.1), shift=(-0.1, 0.1)),
    ])
    panel.settings.set_config(config.replace(trainer_config=trainer))
    panel.status.live.setChecked(False)
    panel._refresh_enabled()
    return panel


def raw_configs(config) -> list:
    split = config.datasplit_config
    return [d.raw_config for d in (*split.train_configs, *split.validate_configs)]


def ready(qtbot, panel) -> None:
    qtbot.waitUntil(lambda: panel.state.reason_disabled == "", timeout=WAIT_MS)


def test_a_float_image_trains_scaled_by_its_percentiles_and_prediction_repeats_it(
    make_napari_viewer, tmp_path, qtbot
):
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_array import (
        IntensitiesArray,
    )
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        intensity_range,
    )
    from napari_dacapo.predict import predict, prediction_input, training_intensity_range

    viewer = make_napari_viewer()
    raw, labels = float_image()
    viewer.add_image(raw, name="raw")
    viewer.add_labels(labels, name="labels")
    viewer.add_shapes([np.array([[60, 60], [60, 96], [96, 96], [96, 60]])],
                      shape_type="rectangle", name="held out")
    panel = make_panel(viewer, tmp_path)
    panel.data.validation_region.value = viewer.layers["held out"]
    # Measured in a worker: Train waits for it, and says why.
    assert panel._refresh_enabled() == MEASURING
    assert not panel.train_button.isEnabled()
    ready(qtbot, panel)

    expected = intensity_range(raw)
    assert 300 <= expected.low < 1000 < 2000 < expected.high <= 2800
    configs = raw_configs(panel._config)
    assert len(configs) == 2  # training raw and the held-out region's raw
    for config in configs:
        assert isinstance(config, IntensitiesArrayConfig)
        assert (config.min, config.max) == (expected.low, expected.high)
        assert isinstance(config.source_array_config, NumpyArrayConfig)
    note = f"{expected.low:.5g}–{expected.high:.5g} are scaled to 0–1 (1st–99.8th percentile)"
    assert note in panel.state.data_status
    assert panel.data.status_line.value == panel.state.data_status
    assert not panel.data.status_line.native.isHidden()

    panel.train_button.click()
    qtbot.waitUntil(lambda: not panel.state.phase.busy, timeout=WAIT_MS)
    assert panel.state.phase is Phase.FINISHED, panel.state.message
    # The network saw intensities spread over 0-1 (as stored, clipped: all 1.0).
    snapshot = layer_name("float", "snapshot raw")
    qtbot.waitUntil(lambda: snapshot in viewer.layers, timeout=WAIT_MS)
    seen = np.asarray(viewer.layers[snapshot].data)
    assert len(np.unique(seen)) > 100 and seen.min() < 0.3 and seen.max() > 0.7

    # Stored: the scaling around the layer data written to the run's data/*.zarr.
    store = panel.store
    stored = store.retrieve_run_config("float")
    for config in raw_configs(stored):
        assert isinstance(config, IntensitiesArrayConfig)
        assert (config.min, config.max) == (expected.low, expected.high)
        source = config.source_array_config
        assert isinstance(source, ZarrArrayConfig)
        assert str(source.file_name).startswith(str(store.run_dir("float") / "data"))
    np.testing.assert_array_equal(
        np.asarray(raw_configs(stored)[0].source_array_config.array().data), raw
    )
    # Prediction repeats the scaling (the CLI and the predict panel call predict_tiles).
    assert training_intensity_range(stored) == (expected.low, expected.high)
    from napari_dacapo.experiments.run import Run

    array = prediction_input(Run(stored), raw)
    assert isinstance(array, IntensitiesArray)
    assert (array.config.min, array.config.max) == (expected.low, expected.high)
    predicted = predict("float", "latest", raw, store=store)
    explicit = predict("float", "latest", raw, store=store,
                       rescale=(expected.low, expected.high))
    unscaled = predict("float", "latest", raw, store=store, rescale=False)
    np.testing.assert_array_equal(predicted, explicit)
    assert not np.allclose(predicted, unscaled)

    # Continued, the run keeps its stored range: never measured again, even for an image
    # whose percentiles changed since (another range would make the config differ).
    viewer.layers["raw"].data = raw * 2
    panel.status.more_iterations.setValue(2)
    assert "Measuring" not in panel._refresh_enabled()
    for config in raw_configs(panel._config):
        assert (config.min, config.max) == (expected.low, expected.high)
    assert panel.continue_button.isEnabled(), panel.continue_button.toolTip()
    assert "as run 'float' was trained" in panel.state.data_status
    # A new run measures the image as it is now.
    panel.settings.set_settings({"name": "again"})
    assert panel._refresh_enabled() == MEASURING
    ready(qtbot, panel)
    config = raw_configs(panel._config)[0]
    assert config.min == pytest.approx(2 * expected.low, rel=1e-3)

    # Loaded in another viewer, the run shows its image as stored (not scaled), which the
    # panel scales again as the run was trained: ready to continue.
    other = TrainWidget(make_napari_viewer(), store=store)
    other.viewer.window.add_dock_widget(other)
    other.load_run("float")
    shown = other.viewer.layers[layer_name("float", "stored raw")]
    np.testing.assert_array_equal(np.asarray(shown.data), raw)
    other.status.more_iterations.setValue(2)
    other._refresh_enabled()
    assert other.continue_button.isEnabled(), other.continue_button.toolTip()


def test_a_run_stored_without_scaling_continues_unchanged(make_napari_viewer, tmp_path):
    """Runs stored before the panel scaled intensities keep their raw data as stored."""
    viewer = make_napari_viewer()
    raw, labels = float_image()
    viewer.add_image(raw, name="raw")
    viewer.add_labels(labels, name="labels")
    panel = make_panel(viewer, tmp_path, name="old")
    settings = panel.settings.settings()
    old = RunConfig(datasplit_config=panel.data.selection(2).datasplit, **settings)
    panel.store.store_run_config(old)

    assert panel._refresh_enabled() == ""  # nothing to measure
    assert isinstance(raw_configs(panel._config)[0], NumpyArrayConfig)
    assert "no checkpoint yet" in panel.continue_button.toolTip()  # not a differing config
    assert panel.state.data_status == (
        "Intensities are used as stored (floats, not rescaled), as run 'old' was trained.")


def test_uint8_images_are_used_as_stored(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    viewer.add_image(raw, name="raw")
    viewer.add_labels(labels, name="labels")
    panel = make_panel(viewer, tmp_path)
    assert panel._refresh_enabled() == ""
    assert isinstance(raw_configs(panel._config)[0], NumpyArrayConfig)
    assert panel.state.data_status == "Intensities 0–255 (8-bit) are scaled to 0–1."


def test_a_run_trained_on_uint8_is_not_continued_on_another_intensity_scale(
    make_napari_viewer, tmp_path, qtbot, monkeypatch
):
    """A run trained on uint8 images without a range learned intensities divided by 255.
    Its raw layer made uint16 (divided by 65535: 1000-3550 become 0.015-0.054) or float
    0-255 (used as they are) would continue on another scale: Train and Continue are
    refused with the reason and the fix, before any work; floats of 0-1 continue."""
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    viewer.add_image(raw, name="raw")
    viewer.add_labels(labels, name="labels")
    panel = make_panel(viewer, tmp_path, name="eight")
    assert panel._refresh_enabled() == ""
    store_random_weights(panel.store, panel._config, iteration=2)
    panel.status.more_iterations.setValue(2)
    panel._refresh_enabled()
    assert panel.continue_button.isEnabled(), panel.continue_button.toolTip()
    # Not "as stored": divided by 255.
    assert panel.state.data_status == (
        "Intensities 0–255 (8-bit) are scaled to 0–1, as run 'eight' was trained.")
    errors: list[str] = []
    monkeypatch.setattr(train_widget_module, "show_error", errors.append)
    started = []
    monkeypatch.setattr(panel.controller, "start", lambda *args: started.append(args))

    viewer.layers["raw"].data = raw.astype(np.uint16) * 10 + 1000
    reason = panel._refresh_enabled()
    assert reason.startswith(
        "The intensities of raw 'raw' (uint16, divided by 65535) reach the network on another "
        "scale than those of the data run 'eight' was trained on (uint8, 0–255 scaled to "
        "0–1): continued, the network would train on intensities unlike those it learned. "
        "Convert the image to uint8"), reason
    assert "train it as a new run (another run name)" in reason
    assert not panel.continue_button.isEnabled() and not panel.train_button.isEnabled()
    assert reason in panel.continue_button.toolTip()
    assert not panel.continue_training() and not panel.train()
    assert not started and len(errors) == 2
    stored = raw_configs(panel.store.retrieve_run_config("eight"))[0]
    assert stored.array().dtype == np.uint8  # the run's data was not replaced

    viewer.layers["raw"].data = raw.astype(np.float32)  # 0-255, used as they are
    assert panel._refresh_enabled() == MEASURING
    qtbot.waitUntil(lambda: "lie far outside 0 to 1" in panel.state.reason_disabled,
                    timeout=WAIT_MS)
    assert "(float32, used as they are: " in panel.state.reason_disabled
    assert not panel.continue_button.isEnabled()

    viewer.layers["raw"].data = raw.astype(np.float32) / 255  # 0-1, as uint8 became
    panel._refresh_enabled()
    qtbot.waitUntil(panel.continue_button.isEnabled, timeout=WAIT_MS)
    assert panel.state.reason_disabled == ""
    assert "as run 'eight' was trained" in panel.state.data_status


def test_a_validation_image_on_another_intensity_scale_is_refused(make_napari_viewer,
                                                                   tmp_path):
    """A new run on a uint8 image trains without a range (divided by 255): a uint16
    validation image (divided by 65535) would be scored on another scale."""
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    other, other_labels = synthetic_blobs((96, 96), seed=2)
    viewer.add_image(raw, name="raw")
    viewer.add_labels(labels, name="labels")
    viewer.add_image(other.astype(np.uint16) * 257, name="validation")
    viewer.add_labels(other_labels, name="validation labels")
    panel = make_panel(viewer, tmp_path)
    panel.data.validation_raw.value = viewer.layers["validation"]
    panel.data.validation_labels.value = viewer.layers["validation labels"]
    reason = panel._refresh_enabled()
    assert reason.startswith("The validation raw image is uint16, but the training raw is "
                             "uint8"), reason
    assert "Convert the validation image to uint8, or pick none." in reason
    viewer.layers["validation"].data = other
    assert panel._refresh_enabled() == ""


def test_a_constant_image_is_refused_with_the_reason(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer()
    _, labels = synthetic_blobs((96, 96), seed=1)
    viewer.add_image(np.full((96, 96), 1200, np.uint16), name="raw")
    viewer.add_labels(labels, name="labels")
    panel = make_panel(viewer, tmp_path)
    qtbot.waitUntil(lambda: "single value 1200" in panel.state.reason_disabled,
                    timeout=WAIT_MS)
    assert not panel.train_button.isEnabled()


def test_a_class_without_labels_is_warned_about_once(
    make_napari_viewer, tmp_path, qtbot, monkeypatch
):
    """A one-hot class that no label holds trains without it (NaN dice, no best
    checkpoint): a warning in the data section and one notification, not a refusal."""
    warnings: list[str] = []
    monkeypatch.setattr(data_check_module, "show_warning", warnings.append)
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((96, 96), seed=1)
    viewer.add_image(raw, name="raw")
    viewer.add_labels((labels > 0).astype(np.uint8), name="classes")
    panel = make_panel(viewer, tmp_path)
    task = OneHotTaskConfig(name="classes", classes=["background", "cell", "nucleus"])
    panel.settings.set_settings({"task_config": task})
    panel._refresh_enabled()
    qtbot.waitUntil(lambda: "'nucleus'" in panel.state.data_status, timeout=WAIT_MS)
    assert "Class 'nucleus' has no labelled voxel" in panel.state.data_status
    assert "'cell'" not in panel.state.data_status
    assert panel.state.reason_disabled == "" and panel.train_button.isEnabled()
    assert warnings == [panel.state.data_status.splitlines()[-1]]
    # The check runs again at every change: the same answer is not notified again.
    panel.settings.set_settings({"num_iterations": 5})
    panel._schedule_refresh()
    assert panel.data_check.warnings() == []  # checking again
    qtbot.waitUntil(lambda: panel.data_check.warnings() != [], timeout=WAIT_MS)
    assert len(warnings) == 1
    # Painted, the class is no longer warned about.
    data = viewer.layers["classes"].data
    data[:4, :4] = 2
    viewer.layers["classes"].data = data
    qtbot.waitUntil(lambda: "'nucleus'" not in panel.state.data_status, timeout=WAIT_MS)


def test_data_warnings_name_classes_and_channels_without_labels():
    """Qt-free: one-hot classes by their index, distance channels by their id 1..N, and
    only where the loss counts (the mask)."""
    from napari_dacapo.experiments import (
        DistanceTaskConfig,
        RawGTDatasetConfig,
        TrainValidateDataSplitConfig,
    )
    from napari_dacapo.gui.data_check import data_warnings

    raw = np.zeros((32, 32), np.uint8)
    gt = np.zeros((32, 32), np.uint8)
    gt[:8] = 1
    gt[-8:] = 2
    mask = np.ones((32, 32), np.uint8)
    mask[-8:] = 0  # class 2 is only where the loss does not count

    def config(task, with_mask):
        dataset = RawGTDatasetConfig(
            name="train", raw_config=NumpyArrayConfig(name="raw", data=raw),
            gt_config=NumpyArrayConfig(name="gt", data=gt),
            mask_config=NumpyArrayConfig(name="mask", data=mask) if with_mask else None,
        )
        split = TrainValidateDataSplitConfig(name="s", train_configs=[dataset],
                                             validate_configs=[])
        return tiny_config(2).replace(datasplit_config=split, task_config=task)

    one_hot = OneHotTaskConfig(name="o", classes=["bg", "a", "b", "c"])
    assert data_warnings(config(one_hot, False))[0].startswith("Class 'c' has no")
    assert data_warnings(config(one_hot, True))[0].startswith("Classes 'b', 'c' have no")
    distance = DistanceTaskConfig(name="d", channels=["a", "b"], clip_distance=4,
                                  tol_distance=1, scale_factor=2)
    assert data_warnings(config(distance, False)) == []
    assert data_warnings(config(distance, True))[0].startswith("Channel 'b' has no")
    single = distance.replace(channels=["a"])
    assert data_warnings(config(single, True)) == []


def test_intensity_range_reads_a_bounded_sample_of_chunked_data(tmp_path):
    import dask.array as da
    import zarr

    from napari_dacapo.experiments.datasplits.datasets.arrays import (
        intensity_range as intensities,
    )

    rng = np.random.default_rng(0)
    image = (300 + 2500 * rng.random((1500, 1600))).astype(np.float32)
    whole = np.percentile(image, intensities.PERCENTILES)
    stored = zarr.open_array(tmp_path / "a.zarr", mode="w", shape=image.shape,
                             chunks=(256, 256), dtype="f4")
    stored[:] = image
    for data in (image, da.from_array(image, chunks=(300, 400)), stored):
        values = intensities.sample_values(data, limit=500_000)
        assert 100_000 < values.size <= 500_000
        found = intensities.intensity_range(data)
        np.testing.assert_allclose((found.low, found.high), whole, rtol=0.01)
    # Mostly background with a few bright spots: the percentiles are equal.
    spots = np.zeros((100, 100), np.uint16)
    spots[5, 5], spots[50, 50] = 300, 1000
    found = intensities.intensity_range(spots)
    assert (found.low, found.high) == (0, 1000) and "minimum–maximum" in found.how
    with pytest.raises(ValueError, match="no finite value"):
        intensities.intensity_range(np.full((4, 4), np.nan, np.float32))


def _broken(*_):
    raise OSError("the store is gone")


def test_a_failing_data_check_is_warned_about_once_not_raised(qtbot, monkeypatch, capfd):
    """A check that fails other than with a data problem (the data unreadable): one
    warning in the data section, nothing re-raised by napari's worker (a traceback)."""
    from napari_dacapo.gui.data_check import DataCheck

    warnings: list[str] = []
    monkeypatch.setattr(data_check_module, "show_warning", warnings.append)
    monkeypatch.setattr(data_check_module, "data_problem", _broken)
    check = DataCheck()
    with qtbot.capture_exceptions() as raised:
        assert check.problem(None, lambda: None) == ""
        qtbot.waitUntil(lambda: check._checking is None, timeout=WAIT_MS)
    assert not raised
    assert "Traceback" not in capfd.readouterr().err
    note = ("The data could not be checked (OSError: the store is gone); Train checks it "
            "again as the run starts.")
    assert check.problem(None, lambda: None) == "" and check.warnings() == [note]
    assert warnings == [note]


def test_a_failing_intensity_measure_is_the_answer_not_raised(qtbot, monkeypatch, capfd):
    from napari_dacapo.gui import intensities
    from napari_dacapo.gui.intensities import IntensityMeasure

    monkeypatch.setattr(intensities, "_measured", _broken)
    measure, data = IntensityMeasure(), np.zeros((8, 8), np.float32)
    with qtbot.capture_exceptions() as raised:
        assert measure.range(data, lambda: None) is None
        qtbot.waitUntil(lambda: measure._measuring is None, timeout=WAIT_MS)
    assert not raised
    assert "Traceback" not in capfd.readouterr().err
    assert measure.range(data, lambda: None) == (
        "The image's intensities could not be read (OSError: the store is gone).")
