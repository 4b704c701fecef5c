"""The predict panel: a tiny trained run predicts an image layer tile by tile, a region
only, and cancels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import store_random_weights

from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.gui.layers import layer_name
from napari_dacapo.gui.predict_widget import VIEW, PredictWidget
from napari_dacapo.predict import apply, predict

pytestmark = pytest.mark.gui

CHECKPOINT = "best:blob__dice"


def run_prediction(widget, qtbot, timeout=60_000):
    # A floating-point image in memory is first searched for NaN, in a worker.
    qtbot.waitUntil(lambda: not widget.reason_disabled().startswith("Searching"),
                    timeout=10_000)
    assert widget.predict_button.enabled, widget.reason_disabled()
    widget.predict_button.native.click()
    assert widget.worker is not None  # it runs in a worker, not in the click
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_predicts_whole_image_into_layers(predict_panel, qtbot, trained_store):
    viewer, widget = predict_panel
    raw, _ = synthetic_blobs((48, 72), seed=5)
    viewer.add_image(raw, name="blobs", translate=(10, 20))
    assert widget.run_choice.value == "tiny_2d"
    assert set(widget.checkpoint_choice.choices) >= {"latest", CHECKPOINT, "3", "6"}
    widget.checkpoint_choice.value = CHECKPOINT

    run_prediction(widget, qtbot)

    prediction = viewer.layers[layer_name("tiny_2d", "prediction blobs")]
    labels = viewer.layers[layer_name("tiny_2d", "labels blobs")]
    assert prediction.data.shape == labels.data.shape == raw.shape
    assert tuple(prediction.translate) == tuple(labels.translate) == (10, 20)
    assert widget.progress.value == widget.progress.max > 1  # several tiles
    # Which best post-processing made the labels is said.
    criterion = CHECKPOINT.removeprefix("best:")
    assert widget.status.value.startswith("Predicted")
    assert f"labels with the parameters best for '{criterion}'" in widget.status.value
    # The same numbers as the library functions (voxel size 1 as in training).
    expected = predict("tiny_2d", CHECKPOINT, raw, store=trained_store)[0]
    np.testing.assert_allclose(prediction.data, expected, atol=1e-5)
    segmentation = apply("tiny_2d", CHECKPOINT, raw, store=trained_store)
    np.testing.assert_array_equal(labels.data, segmentation.reshape(raw.shape))
    # The smallest type that holds the ids: napari recasts wider ones at every redraw.
    assert labels.data.dtype == np.uint8


def test_predicts_a_shapes_region_with_its_context(predict_panel, qtbot, trained_store):
    viewer, widget = predict_panel
    raw, _ = synthetic_blobs((64, 64), seed=6)
    viewer.add_image(raw, name="blobs")
    shapes = viewer.add_shapes([[[20, 30], [20, 50], [36, 50], [36, 30]]],
                               shape_type="rectangle", name="region")
    widget.region_choice.value = shapes
    widget.labels_check.value = False

    run_prediction(widget, qtbot)

    prediction = viewer.layers[layer_name("tiny_2d", "prediction blobs")]
    assert tuple(prediction.translate) == (20, 30) and prediction.data.shape == (16, 20)
    # Ended at N of N, as a whole image does (the last tiles lie in the context only).
    assert widget.status.value.startswith("Predicted")
    assert widget.progress.value == widget.progress.max > 1
    assert layer_name("tiny_2d", "labels blobs") not in viewer.layers
    # The region saw its real surroundings: equal to the whole image's prediction there
    # (tiles on a grid of the same parity, so the network pools alike).
    whole = predict("tiny_2d", "latest", raw, store=trained_store)[0]
    np.testing.assert_allclose(prediction.data, whole[20:36, 30:50], atol=1e-5)


def test_shapes_regions_that_cannot_be_predicted_disable_predict(predict_panel):
    """Before Predict is pressed, and again as the shapes are drawn, moved, selected
    and deleted."""
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((40, 40), np.uint8), name="blobs")
    region = widget.region_choice.value = viewer.add_shapes(name="region")
    empty = "Shapes layer 'region' has no shapes. Draw a rectangle around the region to predict."
    assert not widget.predict_button.enabled and widget.status.value == empty
    region.add_rectangles([[100, 100], [120, 130]])  # beside the image
    assert not widget.predict_button.enabled
    assert widget.status.value == ("The shapes of 'region' do not overlap image 'blobs'. Move "
                                   "the shapes over the image.")
    widget.predict_button.native.click()
    assert widget.worker is None
    region.add_rectangles([[5, 5], [20, 30]])  # over it
    assert widget.predict_button.enabled, widget.reason_disabled()
    region.selected_data = {0}  # only the one beside it is predicted
    assert widget.reason_disabled().startswith("The shapes of 'region' do not overlap")
    region.data = [np.array([[10, 10], [10, 20], [20, 20], [20, 10]]), region.data[1]]
    assert widget.predict_button.enabled, widget.reason_disabled()  # moved over it
    region.selected_data = set()
    region.data = []
    assert widget.status.value == empty
    widget.region_choice.value = "whole image"
    assert widget.predict_button.enabled


def test_a_shapes_layer_far_from_the_image_disables_predict(predict_panel):
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((40, 40), np.uint8), name="vol")
    far = viewer.add_shapes([np.array([[500, 500], [600, 600]])], shape_type="rectangle",
                            name="far away")
    widget.region_choice.value = far
    assert not widget.predict_button.enabled
    assert widget.reason_disabled() == ("The shapes of 'far away' do not overlap image "
                                        "'vol'. Move the shapes over the image.")
    widget.start()  # refused when called, as the button would be
    assert widget.worker is None


def test_a_checkpoint_that_cannot_be_read_disables_predict(predict_panel, qtbot,
                                                            trained_store):
    """A truncated latest checkpoint: ``latest`` and its iteration are refused before
    Predict is pressed; once it is deleted (as the reason says), ``latest`` is the
    one before."""
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((40, 40), np.uint8), name="blobs")
    path = trained_store.checkpoint_path("tiny_2d", 6)
    path.write_bytes(path.read_bytes()[:100])
    widget.refresh_runs()
    qtbot.waitUntil(lambda: widget.info is not None, timeout=20_000)
    problem = trained_store.checkpoint_problem("tiny_2d", 6)
    assert "cannot be read" in problem and "Delete that file" in problem
    for checkpoint in ("latest", "6"):
        widget.checkpoint_choice.value = checkpoint
        assert not widget.predict_button.enabled
        assert widget.status.value == problem
    widget.checkpoint_choice.value = "3"
    assert widget.predict_button.enabled, widget.reason_disabled()
    path.unlink()
    widget.checkpoint_choice.value = "latest"
    assert widget.predict_button.enabled, widget.reason_disabled()


def test_a_deleted_best_checkpoint_disables_predict(predict_panel, trained_store):
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((40, 40), np.uint8), name="blobs")
    widget.checkpoint_choice.value = "latest"
    iteration = widget.info.best["blob__dice"][0]
    path = trained_store.checkpoint_path("tiny_2d", iteration)
    path.unlink()
    widget.checkpoint_choice.value = CHECKPOINT
    assert not widget.predict_button.enabled
    assert widget.status.value == (
        f"The best checkpoint for 'blob__dice' (iteration {iteration}): Checkpoint {path} "
        f"does not exist (deleted?). Pick another checkpoint, or press Refresh runs to "
        f"re-read the run.")


def test_a_checkpoint_deleted_after_it_was_chosen_is_refused_at_predict(predict_panel):
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((40, 40), np.uint8), name="blobs")
    widget.checkpoint_choice.value = "3"
    assert widget.predict_button.enabled
    widget.store.checkpoint_path("tiny_2d", 3).unlink()
    widget.predict_button.native.click()
    assert widget.worker is None
    assert not widget.predict_button.enabled
    assert "checkpoints/3.pt does not exist (deleted?)" in widget.status.value


def test_a_failure_that_names_its_fix_is_shown_without_a_traceback(
        predict_panel, qtbot, trained_store, capfd):
    """A checkpoint damaged where only reading it finds out (its zip directory is whole)."""
    import zipfile

    from napari.utils.notifications import notification_manager

    viewer, widget = predict_panel
    viewer.add_image(np.zeros((40, 40), np.uint8), name="blobs")
    with zipfile.ZipFile(trained_store.checkpoint_path("tiny_2d", 6), "w") as damaged:
        damaged.writestr("archive/data.pkl", b"not a pickle")
    widget.checkpoint_choice.value = "latest"
    shown = len(notification_manager.records)
    with qtbot.capture_exceptions() as raised:
        run_prediction(widget, qtbot)

    assert not raised  # not re-raised: a traceback on stderr
    assert "Traceback" not in capfd.readouterr().err
    assert widget.status.value.startswith("Prediction failed: Checkpoint ")
    assert "cannot be read" in widget.status.value
    notified = [str(n.message) for n in notification_manager.records[shown:]]
    assert any("6.pt cannot be read" in message for message in notified), notified


def test_an_unexpected_failure_is_logged_with_its_traceback(predict_panel, qtbot, caplog,
                                                           monkeypatch):
    from napari_dacapo.gui import predict_widget

    def broken(job, cancel, pace):
        raise ZeroDivisionError("a bug")
        yield

    monkeypatch.setattr(predict_widget, "prediction_events", broken)
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((40, 40), np.uint8), name="blobs")
    with qtbot.capture_exceptions() as raised:
        run_prediction(widget, qtbot)

    assert not raised
    assert widget.status.value == "Prediction failed: a bug"
    record, = [r for r in caplog.records if r.name == predict_widget.__name__]
    assert isinstance(record.exc_info[1], ZeroDivisionError)


def test_current_view_predicts_what_is_visible(predict_panel, qtbot):
    viewer, widget = predict_panel
    raw, _ = synthetic_blobs((64, 64), seed=8)
    image = viewer.add_image(raw, name="blobs", scale=(0.5, 0.5))
    widget.region_choice.value = VIEW
    widget.labels_check.value = False
    image.corner_pixels = np.array([[10, 12], [29, 41]])  # what the canvas would set

    run_prediction(widget, qtbot)

    prediction = viewer.layers[layer_name("tiny_2d", "prediction blobs")]
    assert prediction.data.shape == (20, 30)
    np.testing.assert_allclose(prediction.translate, (5.0, 6.0))
    np.testing.assert_allclose(prediction.scale, (0.5, 0.5))


def test_shapes_regions_of_a_volume_cover_what_a_training_mask_covers(
    make_napari_viewer, qtbot, store
):
    """A rectangle drawn in 2D over a volume predicts every slice, one drawn on a slice of
    it that slice: the voxels the same shapes cover as a training mask or validation
    region, whichever slice is shown."""
    from conftest import tiny_config

    from napari_dacapo.gui.box_mask import shape_boxes

    store_random_weights(store, tiny_config(3, name="tiny_3d"))
    viewer = make_napari_viewer()
    widget = PredictWidget(viewer, store=store)
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(lambda: widget.info is not None, timeout=20_000)
    image = viewer.add_image(np.zeros((20, 48, 48), np.uint8), name="vol")
    widget.checkpoint_choice.value = "latest"
    widget.labels_check.value = False
    viewer.dims.set_current_step(0, 15)
    drawn_2d = viewer.add_shapes([[[8, 8], [40, 40]]], shape_type="rectangle")
    on_slice = viewer.add_shapes([[[10, 8, 8], [10, 8, 40], [10, 40, 40], [10, 40, 8]]],
                                 shape_type="rectangle")
    prediction = layer_name("tiny_3d", "prediction vol")
    for shapes, shape, translate in ((drawn_2d, (20, 32, 32), (0, 8, 8)),
                                     (on_slice, (1, 32, 32), (10, 8, 8))):
        widget.region_choice.value = shapes
        run_prediction(widget, qtbot)
        layer = viewer.layers[prediction]
        assert layer.data.shape[-3:] == shape
        np.testing.assert_allclose(layer.translate[-3:], translate)
        (box,) = shape_boxes(shapes, image, 3)
        assert tuple(b.stop - b.start for b in box) == shape


def test_current_view_in_3d_display_is_the_whole_volume(make_napari_viewer):
    """napari draws a volume whole in 3D display: 'current view' is all of it (in 2D
    display, the part of the slice in view)."""
    from napari_dacapo.gui.layer_arrays import layer_array_config
    from napari_dacapo.gui.regions import region_roi

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((20, 48, 64), np.uint8), scale=(4, 1, 1))
    array = layer_array_config(image, "vol", 3, 1).array()
    viewer.dims.set_current_step(0, 7)
    viewer.dims.ndisplay = 3
    image.corner_pixels = np.array([[6, 0, 10], [8, 47, 40]])  # a part of it
    assert region_roi(viewer, image, None, array) == array.roi
    viewer.dims.ndisplay = 2
    image.corner_pixels = np.array([[7, 2, 10], [7, 29, 40]])
    assert region_roi(viewer, image, None, array).get_begin() == (28, 2, 10)
    assert region_roi(viewer, image, None, array).get_shape() == (4, 28, 31)


def test_images_the_run_cannot_take_disable_predict(predict_panel):
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((4, 40, 40), np.uint8), name="stack")
    assert "stack of images must be predicted one by one" in widget.reason_disabled()
    assert not widget.predict_button.enabled
    assert widget.status.value == widget.reason_disabled()
    viewer.add_image(np.zeros((2, 4, 40, 40), np.uint8), name="volumes")
    widget.image_choice.value = viewer.layers["volumes"]
    assert "(2, 4, 40, 40) but run 'tiny_2d' predicts 2D images, shaped (y, x)" in (
        widget.reason_disabled())
    viewer.add_image(np.zeros((40, 40, 3), np.uint8), name="colour", rgb=True)
    widget.image_choice.value = viewer.layers["colour"]
    assert "has 3 channel(s)" in widget.reason_disabled()
    assert "an RGB image: convert it to grayscale" in widget.reason_disabled()
    assert "stack" not in widget.reason_disabled()
    viewer.layers.remove("stack")
    viewer.layers.remove("volumes")
    viewer.layers.remove("colour")
    assert widget.image_choice.value is None
    assert widget.reason_disabled() == "Add or open an image layer to predict."


def test_cancel_stops_between_tiles(predict_panel, qtbot):
    viewer, widget = predict_panel
    raw, _ = synthetic_blobs((640, 640), seed=7)
    viewer.add_image(raw, name="big")
    widget.predict_button.native.click()
    qtbot.waitUntil(lambda: widget.progress.value >= 1, timeout=30_000)
    assert widget.cancel_button.enabled and not widget.predict_button.enabled
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)

    assert widget.progress.value < widget.progress.max
    assert widget.status.value.startswith("Cancelled")
    assert layer_name("tiny_2d", "prediction big") in viewer.layers  # tiles done so far
    assert widget.predict_button.enabled  # ready for the next one


def test_an_image_there_before_the_panel_is_taken_as_if_picked(make_napari_viewer, qtbot,
                                                                trained_store, tmp_path):
    """Its mode (blockwise for a zarr image) and its scale, followed as for an image
    picked later."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )
    from napari_dacapo.gui.predict_widget import BLOCKWISE, TILES

    viewer = make_napari_viewer()
    raw, _ = synthetic_blobs((48, 72), seed=5)
    write_zarr_array(tmp_path / "in.zarr", "raw", raw, voxel_size=(1, 1))
    viewer.open(str(tmp_path / "in.zarr"), plugin="napari-dacapo")
    widget = PredictWidget(viewer, store=trained_store)
    assert widget.mode_choice.value == BLOCKWISE

    viewer.layers.clear()
    image = viewer.add_image(raw, name="blobs")
    widget = PredictWidget(viewer, store=trained_store)
    qtbot.waitUntil(lambda: widget.info is not None, timeout=20_000)
    assert widget.mode_choice.value == TILES and "Note" not in widget.status.value
    image.scale = (2, 2)  # not re-picked: followed all the same
    assert widget.status.value.startswith("Note: run 'tiny_2d' was trained on voxel size")


def test_disabled_with_reasons(make_napari_viewer, tmp_path):
    from napari_dacapo.store.file_store import FileStore

    viewer = make_napari_viewer()
    widget = PredictWidget(viewer, store=FileStore(tmp_path / "empty"))
    assert "No runs are stored" in widget.reason_disabled()
    assert not widget.predict_button.enabled
    assert widget.region_choice.choices == ("whole image", VIEW)


def test_predicts_a_multiscale_image_at_full_resolution(predict_panel, qtbot, trained_store):
    """A multiscale image (e.g. an opened OME-Zarr) is predicted at its level 0."""
    viewer, widget = predict_panel
    raw, _ = synthetic_blobs((48, 72), seed=5)
    image = viewer.add_image([raw, raw[::2, ::2]], name="pyramid", translate=(10, 20))
    assert image.multiscale
    widget.image_choice.value = image
    widget.checkpoint_choice.value = CHECKPOINT
    assert widget.mode_choice.value == "tiles in memory"

    run_prediction(widget, qtbot)

    assert widget.status.value.startswith("Predicted"), widget.status.value
    prediction = viewer.layers[layer_name("tiny_2d", "prediction pyramid")]
    assert prediction.data.shape == raw.shape
    assert tuple(prediction.translate) == (10, 20)
    expected = predict("tiny_2d", CHECKPOINT, raw, store=trained_store)[0]
    np.testing.assert_allclose(prediction.data, expected, atol=1e-5)


def test_missing_values_in_an_image_in_memory_disable_predict(predict_panel, qtbot,
                                                              monkeypatch):
    """Searched once per array, in a worker, when the image is picked (as training
    refuses such raw data before it starts); replacing them enables Predict."""
    from napari_dacapo.gui import image_values

    searched = []
    search = image_values.non_finite
    monkeypatch.setattr(image_values, "non_finite",
                        lambda data: searched.append(data) or search(data))
    viewer, widget = predict_panel
    raw, _ = synthetic_blobs((48, 72), seed=5)
    holes = (raw / 255).astype(np.float32)
    holes[20:24, 30:34] = np.nan
    image = widget.image_choice.value = viewer.add_image(holes, name="holes")
    widget.labels_check.value = False
    qtbot.waitUntil(lambda: "holds NaN" in widget.status.value, timeout=10_000)
    assert not widget.predict_button.enabled
    assert widget.predict_button.tooltip == widget.status.value
    assert "numpy.nan_to_num(viewer.layers['holes'].data)" in widget.status.value
    widget.predict_button.native.click()
    assert widget.worker is None
    for _ in range(3):  # the panel refreshes often (e.g. its store timer): searched once
        widget.checkpoint_choice.value = "3"
        widget.checkpoint_choice.value = "latest"
    assert len(searched) == 1 and searched[0] is holes

    image.data = np.nan_to_num(image.data)  # the fix the status gives
    run_prediction(widget, qtbot)
    assert widget.status.value.startswith("Predicted"), widget.status.value
    assert len(searched) == 2


def test_missing_values_in_a_lazy_image_are_warned_of_after(predict_panel, qtbot,
                                                             monkeypatch):
    """A lazily read image (possibly bigger than memory) is not scanned beforehand; the
    status says so, and the prediction warns of them."""
    import dask.array as da

    from napari_dacapo.gui import image_values, predict_widget

    warned: list[str] = []
    monkeypatch.setattr(predict_widget, "show_warning", warned.append)
    monkeypatch.setattr(image_values, "non_finite", lambda data: pytest.fail("scanned"))
    viewer, widget = predict_panel
    raw, _ = synthetic_blobs((48, 72), seed=5)
    holes = (raw / 255).astype(np.float32)
    holes[20:24, 30:34] = np.nan
    widget.image_choice.value = viewer.add_image(da.from_array(holes, chunks=16),
                                                 name="holes")
    widget.labels_check.value = False
    assert widget.predict_button.enabled
    assert widget.status.value == image_values.LAZY_NOTE
    run_prediction(widget, qtbot)
    assert widget.status.value.startswith("Predicted")
    assert len(warned) == 1 and "NaN or infinite values" in warned[0]
    layer = viewer.layers[layer_name("tiny_2d", "prediction holes")]
    assert np.isfinite(layer.contrast_limits).all()  # from the finite values


def test_provisional_tile_labels_never_share_an_id(trained_store, monkeypatch):
    """Before the whole prediction is post-processed (and if it never is: cancelled),
    each tile's objects get ids of their own."""
    import threading

    from funlib.geometry import Coordinate

    import napari_dacapo.predict as predict_module
    from napari_dacapo.experiments import NumpyArrayConfig
    from napari_dacapo.gui.prediction_job import PredictJob, TilesDone, prediction_events

    def two_objects(prediction):  # whatever the tiny model learnt: objects 1 and 2
        labels = np.zeros(prediction.shape, np.uint64)
        labels[..., : prediction.shape[-1] // 2] = 1
        labels[..., prediction.shape[-1] // 2 :] = 2
        return labels

    monkeypatch.setattr(predict_module, "post_processing", lambda *args: two_objects)

    raw, _ = synthetic_blobs((96, 96), seed=3)
    job = PredictJob(
        trained_store, "tiny_2d", CHECKPOINT,
        NumpyArrayConfig(name="raw", data=raw, voxel_size=Coordinate(1, 1)), None,
        CHECKPOINT.split(":")[1],
    )
    ids = [set(np.unique(tile.labels)) - {0}
           for e in prediction_events(job, threading.Event()) if isinstance(e, TilesDone)
           for tile in e.tiles]
    assert sum(1 for tile in ids if tile) > 1  # several tiles hold objects
    assert sum(len(tile) for tile in ids) == len(set().union(*ids))  # none shared


def test_an_image_of_another_voxel_size_is_noted_and_warned_of(predict_panel, qtbot,
                                                               monkeypatch):
    from napari_dacapo.gui import predict_widget

    warned: list[str] = []
    monkeypatch.setattr(predict_widget, "show_warning", warned.append)
    compared: list[tuple] = []  # by the prediction itself, in the worker
    monkeypatch.setattr("napari_dacapo.predict.inputs.voxel_size_mismatch",  # where read
                        lambda *args, **kwargs: compared.append(args) or "")
    viewer, widget = predict_panel
    raw, _ = synthetic_blobs((48, 72), seed=5)
    image = viewer.add_image(raw, name="blobs", scale=(2, 2))
    widget.labels_check.value = False
    note = ("Note: run 'tiny_2d' was trained on voxel size (1, 1), the image has (2, 2): "
            "resample it, or correct its scale if that is wrong.")
    assert widget.status.value == note
    assert widget.predict_button.enabled  # a note, not a reason to refuse

    run_prediction(widget, qtbot)
    assert len(warned) == 1 and warned[0].startswith(
        "The voxel size of image 'blobs' (its layer scale) (2, 2) differs from the voxel size "
        "of the data run 'tiny_2d' was trained on, (1, 1): ")
    assert "set it to the image's voxel size" in warned[0]
    assert "viewer.layers['blobs'].scale" in warned[0]
    assert widget.status.value.startswith("Predicted") and widget.status.value.endswith(note)
    # Said once, by the panel, in the layers' units: the prediction in the worker (whose
    # integer units may differ from the run's) leaves it to the panel.
    assert compared == []

    image.scale = (1, 1)  # corrected: the note goes
    assert "Note" not in widget.status.value
    warned.clear()
    run_prediction(widget, qtbot)
    assert warned == [] and widget.status.value.startswith("Predicted")


def test_voxel_sizes_compare_in_the_layers_units(trained_store, tmp_path):
    """A run trained on layers at scale 0.1 records voxel size 1 in units of 1/10 (world
    factor 10); blockwise, the zarr array's voxel size counts (in the layers' units), which
    the layer may show otherwise (napari's own zarr reader: scale 1)."""
    import dask.array as da
    import zarr
    from napari.layers import Image

    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )
    from napari_dacapo.gui.prediction_job import training_scales, voxel_size_warning

    config = trained_store.retrieve_run_config("tiny_2d")
    assert training_scales(trained_store, config) == [(1.0, 1.0)]
    trained_store.store_display("tiny_2d", {"world_factor": 10})
    assert training_scales(trained_store, config) == [(0.1, 0.1)]
    raw = np.zeros((40, 40), np.uint8)
    fine = Image(raw, scale=(0.1, 0.1), translate=(0.05, 0))
    assert voxel_size_warning(fine, 2, False, [(0.1, 0.1)], "r") == ("", "")
    note, warning = voxel_size_warning(Image(raw, scale=(1, 1)), 2, False, [(0.1, 0.1)], "r")
    assert note == ("Note: run 'r' was trained on voxel size (0.1, 0.1), the image has "
                    "(1, 1): resample it, or correct its scale if that is wrong.")

    write_zarr_array(tmp_path / "in.zarr", "raw", raw, voxel_size=(5, 5))
    zarr.open_array(str(tmp_path / "in.zarr"), path="raw", mode="r+").attrs[
        "napari_dacapo"] = {"world_factor": 10}
    lazy = da.from_zarr(zarr.open_array(str(tmp_path / "in.zarr"), path="raw", mode="r"))
    layer = Image(lazy, name="z")
    assert voxel_size_warning(layer, 2, True, [(0.5, 0.5)], "r") == ("", "")
    note, warning = voxel_size_warning(layer, 2, True, [(1.0, 1.0), (2.0, 2.0)], "r")
    assert warning.startswith(
        "The voxel size of image 'z' (as its zarr array records it) (0.5, 0.5) differs from "
        "each voxel size of the data run 'r' was trained on, (1, 1), (2, 2): ")
    assert warning.endswith("correct the array's voxel_size attribute.")
    assert note.startswith("Note: run 'r' was trained on voxel sizes (1, 1), (2, 2), the "
                           "image has (0.5, 0.5)")


def test_picking_another_image_drops_the_last_predictions_outcome(predict_panel, qtbot):
    viewer, widget = predict_panel
    raw, _ = synthetic_blobs((48, 72), seed=5)
    viewer.add_image(raw, name="first")
    widget.labels_check.value = False
    run_prediction(widget, qtbot)
    assert widget.status.value.startswith("Predicted")
    second = viewer.add_image(raw[:40, :60], name="second")
    widget.image_choice.value = second
    assert not widget.status.value.startswith("Predicted"), widget.status.value


def test_an_image_brighter_than_the_training_data_can_be_scaled_by_its_own_range(
    make_napari_viewer, trained_store, qtbot, tmp_path, monkeypatch
):
    """A run whose training raw was scaled from a range (as the training panel scales new
    runs) predicts an image with that range by default; the panel's choice scales it from
    the image's own 1st-99.8th percentiles instead (an image brighter than the training
    data segmented worse with the training range)."""
    from napari_dacapo.experiments import IntensitiesArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        intensity_range,
    )

    config = trained_store.retrieve_run_config("tiny_2d")
    split = config.datasplit_config
    train = split.train_configs[0]
    scaled = train.replace(raw_config=IntensitiesArrayConfig(
        name="scaled", source_array_config=train.raw_config, min=0, max=200))
    config = config.replace(name="ranged", datasplit_config=split.replace(
        train_configs=[scaled], validate_configs=[]))
    # Weights whose output varies with the input (a random init may give a constant one).
    store_random_weights(trained_store, config, iteration=1)

    viewer = make_napari_viewer()
    widget = PredictWidget(viewer, store=trained_store)
    viewer.window.add_dock_widget(widget)
    widget.run_choice.value = "ranged"
    qtbot.waitUntil(lambda: widget.info is not None and widget.info.name == "ranged",
                    timeout=20_000)
    raw, _ = synthetic_blobs((48, 72), seed=5)
    bright = (raw.astype(np.float32) * 3 + 100).astype(np.uint16)
    viewer.add_image(bright, name="bright")
    widget.checkpoint_choice.value = "latest"
    widget.labels_check.value = False
    assert widget.range_check.enabled and "0-200 become 0-1" in widget.range_check.tooltip

    widget.range_check.value = True
    run_prediction(widget, qtbot)
    shown = np.asarray(viewer.layers[layer_name("ranged", "prediction bright")].data)
    own = intensity_range(bright)
    expected = predict("ranged", "latest", bright, store=trained_store,
                       rescale=(own.low, own.high))
    as_trained = predict("ranged", "latest", bright, store=trained_store)
    np.testing.assert_allclose(shown, expected[0], atol=1e-6)
    assert not np.allclose(shown, as_trained[0], atol=1e-3)

    # Blockwise (a zarr image) too: the job measures the range in its process, and the
    # child passes it on to predict_blockwise (which measures it once; tested with the CLI).
    import dataclasses
    import json

    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )
    from napari_dacapo.gui import blockwise_job
    from napari_dacapo.gui.predict_widget import BLOCKWISE

    write_zarr_array(tmp_path / "bright.zarr", "raw", bright, voxel_size=(1, 1))
    widget.image_choice.value = viewer.open(str(tmp_path / "bright.zarr"),
                                            plugin="napari-dacapo")[0]
    assert widget.mode_choice.value == BLOCKWISE and widget.range_check.enabled
    started = []
    monkeypatch.setattr(type(widget.blockwise), "start",
                        lambda _, job, name: started.append(job))
    widget.predict_button.native.click()
    assert started and started[0].rescale == "image"
    calls = []
    monkeypatch.setattr("napari_dacapo.blockwise.predict_blockwise",
                        lambda *args, **kwargs: calls.append(kwargs))
    blockwise_job.main([json.dumps(dataclasses.asdict(started[0]))])
    assert calls and calls[0]["rescale"] == "image"
    widget.range_check.value = False
    started.clear()
    widget.predict_button.native.click()
    assert started and started[0].rescale is True

    # The tiny_2d run was trained on uint8 images without a range (divided by 255, about
    # 0-1): the uint16 image's own range is offered, and its other scale noted.
    widget.run_choice.value = "tiny_2d"
    qtbot.waitUntil(lambda: widget.info is not None and widget.info.name == "tiny_2d",
                    timeout=20_000)
    qtbot.waitUntil(lambda: widget.range_check.enabled, timeout=20_000)
    assert "(uint8, 0–255 scaled to 0–1)" in widget.range_check.tooltip


def test_a_run_whose_checkpoints_were_deleted_is_not_called_untrained(trained_store):
    from napari_dacapo.gui.predict_reasons import run_reason
    from napari_dacapo.gui.run_info import read_run_info

    for iteration in trained_store.checkpoint_iterations("tiny_2d"):
        trained_store.checkpoint_path("tiny_2d", iteration).unlink()
    info = read_run_info(trained_store, "tiny_2d")
    reason = run_reason(trained_store, "tiny_2d", info, "latest")
    assert "no checkpoint left (pruned or deleted)" in reason and "yet" not in reason


def test_a_run_that_cannot_be_read_is_said_not_waited_for(make_napari_viewer, trained_store,
                                                          qtbot):
    (trained_store.run_dir("tiny_2d") / "config.yaml").write_text("task_config: [unclosed")
    widget = PredictWidget(make_napari_viewer(), store=trained_store)
    qtbot.waitUntil(lambda: "cannot be read" in widget.reason_disabled(), timeout=20_000)
    assert "Run 'tiny_2d' cannot be read" in widget.reason_disabled()
    assert not widget.predict_button.enabled


def test_a_checkpoint_cut_short_while_the_panel_is_open_disables_predict(predict_panel, qtbot,
                                                                          trained_store):
    viewer, widget = predict_panel
    viewer.add_image(synthetic_blobs((48, 72), seed=5)[0], name="blobs")
    widget.checkpoint_choice.value = "latest"
    assert widget.predict_button.enabled
    latest = trained_store.checkpoint_path("tiny_2d", trained_store.latest_iteration("tiny_2d"))
    latest.write_bytes(latest.read_bytes()[:100])  # behind the panel's back
    qtbot.waitUntil(lambda: not widget.predict_button.enabled, timeout=10_000)
    assert "cut short" in widget.status.value
