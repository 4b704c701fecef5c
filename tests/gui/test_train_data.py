"""The training panel's data side (masks and validation regions from Shapes layers, the
datasplit of the picked layers) and its observable state."""

from __future__ import annotations

import math

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from psygnal.testing import assert_emitted

from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.gui.box_mask import BoxMask, shape_boxes, shape_regions
from napari_dacapo.gui.data_panel import DataPanel, DataProblem
from napari_dacapo.gui.state import Phase, TrainingState
from napari_dacapo.train import (
    CheckpointSaved,
    IterationDone,
    RunFinished,
    RunStarted,
    RunStopped,
    ValidationDone,
)

pytestmark = pytest.mark.gui


def test_box_mask_reads_blocks_lazily():
    mask = BoxMask((6, 8), include=[(slice(1, 4), slice(2, 6))],
                   exclude=[(slice(2, 3), slice(0, 8))])
    full = np.asarray(mask)
    assert full.dtype == np.uint8 and full.sum() == 8
    np.testing.assert_array_equal(mask[1:3, 4:8], full[1:3, 4:8])
    labelled = BoxMask((3, 3), base=np.eye(3, dtype=np.uint32), exclude=[(slice(0, 1),) * 2])
    np.testing.assert_array_equal(np.asarray(labelled), np.diag([0, 1, 1]))
    with pytest.raises(TypeError, match="slices with step 1"):
        mask[::2]


def test_shape_boxes_cover_voxel_centres_in_world_coordinates(make_napari_viewer):
    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((10, 40, 40), np.uint8), scale=(2, 0.5, 0.5),
                               translate=(0, 1, 1))
    # World y 3..6 covers voxel centres 4..10 (1 + 0.5 * i), one slice at z = 4 (world 8).
    flat = viewer.add_shapes([[[8, 3, 3], [8, 3, 6], [8, 6, 6], [8, 6, 3]]],
                             shape_type="rectangle")
    assert shape_boxes(flat, labels, 3) == [(slice(4, 5), slice(4, 11), slice(4, 11))]
    # A 2D shape over a 3D image spans every slice; shapes outside are dropped.
    column = viewer.add_shapes([[[3, 3], [6, 6]], [[500, 500], [600, 600]]],
                               shape_type="rectangle")
    assert shape_boxes(column, labels, 3) == [(slice(0, 10), slice(4, 11), slice(4, 11))]


def test_rotated_rectangles_polygons_and_ellipses_mask_only_what_they_cover(
    make_napari_viewer,
):
    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((48, 64), np.uint8), scale=(2, 2), translate=(1, 1))
    rows, cols = np.indices((48, 64))

    def world(*voxel):  # a voxel centre in world coordinates
        return [1 + 2 * v for v in voxel]

    diamond = [world(20, 10), world(30, 20), world(20, 30), world(10, 20)]  # 45 degrees
    ellipse = [world(12, 38), world(12, 62), world(28, 62), world(28, 38)]  # 8 x 12 voxels
    shapes = viewer.add_shapes([diamond, ellipse], shape_type=["rectangle", "ellipse"],
                               name="crops")
    regions = shape_regions(shapes, labels, 2)
    assert [r.inside is not None for r in regions] == [True, True]
    mask = BoxMask((48, 64), regions)
    full = np.asarray(mask)
    in_diamond = np.abs(rows - 20) + np.abs(cols - 20) <= 10
    radius = ((rows - 20) / 8) ** 2 + ((cols - 50) / 12) ** 2
    np.testing.assert_array_equal(full[:, :35], in_diamond[:, :35])  # not its bounding box
    right = cols >= 35
    assert full[right & (radius <= 0.9)].all() and not full[right & (radius >= 1.1)].any()
    assert full[:, 35:].sum() == pytest.approx(np.pi * 8 * 12, rel=0.05)
    # Blocks read lazily agree with the whole, also across a shape's border.
    np.testing.assert_array_equal(mask[5:17, 11:45], full[5:17, 11:45])

    # Validation regions are crops: only axis-aligned rectangles. Messages number the
    # shapes as the layer does, counting those outside the labels.
    shapes.data = [[world(-50, -50), world(-40, -40)], *shapes.data]
    with pytest.raises(ValueError, match="Shape 2 of 'crops' is not an axis-aligned"):
        shape_boxes(shapes, labels, 2)
    line = viewer.add_shapes([[world(0, 0), world(9, 9)]], shape_type="line", name="line")
    with pytest.raises(ValueError, match="Shape 1 of 'line' is a line: it encloses no"):
        shape_regions(line, labels, 2)


def test_shapes_over_3d_labels_cover_their_slice_or_every_slice(make_napari_viewer):
    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((6, 30, 30), np.uint8))
    triangle = [[2, 0], [2, 20], [22, 0]]  # 2D: drawn over every slice
    on_slice = [[4, 5, 5], [4, 5, 25], [4, 25, 5]]  # 3D: on slice 4 only
    regions = [
        *shape_regions(viewer.add_shapes([triangle], shape_type="polygon"), labels, 3),
        *shape_regions(viewer.add_shapes([on_slice], shape_type="polygon"), labels, 3),
    ]
    full = np.asarray(BoxMask((6, 30, 30), regions))
    rows, cols = np.indices((30, 30))
    first = (rows >= 2) & (cols >= 0) & (rows - 2 + cols <= 20)
    second = (rows >= 5) & (cols >= 5) & (rows - 5 + cols - 5 <= 20)
    for z in range(6):
        np.testing.assert_array_equal(full[z], first | (second if z == 4 else False))
    tilted = viewer.add_shapes([[[0, 0, 0], [5, 0, 20], [0, 20, 0]]], shape_type="polygon",
                               name="tilted")
    with pytest.raises(ValueError, match="not drawn on one slice"):
        shape_regions(tilted, labels, 3)


def test_shapes_mask_and_validation_region_make_the_datasplit(make_napari_viewer):
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((64, 64))
    viewer.add_image(raw, name="raw", scale=(2, 2))
    viewer.add_labels(labels, name="labels", scale=(2, 2))
    annotated = viewer.add_shapes([[[0, 0], [80, 80]]], shape_type="rectangle", name="crops")
    held_out = viewer.add_shapes([[[0, 0], [20, 20]]], shape_type="rectangle", name="val")
    panel = DataPanel(viewer)
    assert panel.labels.value is viewer.layers["labels"]  # the first Labels layer is picked
    panel.mask.value, panel.validation_region.value = annotated, held_out

    selection = panel.selection(dims=2)
    train = selection.datasplit.train_configs[0]
    (validate,) = selection.datasplit.validate_configs
    assert selection.factor == 1 and selection.region == Roi((0, 0), (128, 128))
    assert validate.gt_config.roi == Roi((0, 0), (22, 22))  # voxels 0..10, 2 units each
    mask = np.asarray(train.mask_config.data)
    assert mask[:11, :11].sum() == 0 and mask[11:41, 11:41].all() and not mask[41:].any()
    assert train.raw_config.data is viewer.layers["raw"].data  # no copy
    assert validate.raw_config is train.raw_config

    annotated.data = []
    with pytest.raises(DataProblem, match="no shape over the labels"):
        panel.selection(dims=2)
    panel.mask.value = None
    held_out.data = [[[500, 500], [520, 520]]]  # away from the labels: nothing to validate
    with pytest.raises(DataProblem, match="Validation region 'val' has no rectangle over"):
        panel.selection(dims=2)
    panel.mask.value, held_out.data = annotated, [[[0, 0], [20, 20]]]
    annotated.add_lines([[0, 0], [40, 40]])
    with pytest.raises(DataProblem, match="Shape 1 of 'crops' is a line"):
        panel.selection(dims=2)
    with pytest.raises(DataProblem, match="3D"):
        panel.validation_region.value = panel.mask.value = None
        panel.selection(dims=3)
    panel.close()


def test_state_follows_the_training_events():
    state = TrainingState()
    state.begin("run", 10)
    assert state.phase is Phase.TRAINING and state.phase.busy
    state.apply(RunStarted("run", 4, 10, "cpu (fp32)"))
    assert (state.iteration, state.start_iteration, state.device) == (4, 4, "cpu (fp32)")
    assert "resumed from iteration 4" in state.message
    with assert_emitted(state.events.iteration), assert_emitted(state.events.eta_seconds):
        state.apply(IterationDone(4, 0.5, 0.1, 2.0))
    assert state.iteration == 5 and state.eta_seconds == pytest.approx(2.5)
    # A non-finite loss is shown as such (it was hidden behind the last finite one).
    with assert_emitted(state.events.last_loss):
        state.apply(IterationDone(5, float("nan"), 0.1, 2.0))
    assert math.isnan(state.last_loss)
    state.apply(CheckpointSaved(6))
    assert state.message == "checkpoint saved at iteration 6"
    state.apply(ValidationDone(6, None, ["dice"], {"dice": (6, 0.8)}))
    assert state.best_scores == {"dice": (6, 0.8)}
    state.apply(RunStopped(7))
    assert state.phase is Phase.STOPPED and not state.phase.busy and state.iteration == 7
    state.apply(RunFinished(10))
    assert state.phase is Phase.FINISHED and state.eta_seconds == 0.0


def test_live_slot_keeps_the_latest_request():
    from napari_dacapo.gui.live_view import LiveSlot

    slot = LiveSlot()
    assert slot.take() is None
    slot.put(Roi((0, 0), (4, 4)))
    slot.put(Roi(Coordinate(2, 2), (4, 4)))  # a newer request replaces a waiting one
    assert slot.take() == Roi((2, 2), (4, 4)) and slot.take() is None
    assert slot.last == Roi((2, 2), (4, 4))  # for the last prediction, at the end
    slot.put(Roi((0, 0), (4, 4)))
    slot.forget()  # the live view was switched off
    assert slot.take() is None and slot.last is None


@pytest.mark.parametrize("live_on", [True, False])
def test_the_live_layer_ends_showing_the_model_as_trained(tmp_path, live_on):
    """The live view's region is predicted once more when training ends (it showed the
    model of some iterations before the end, named "live" after training), unless the
    live view was switched off."""
    import threading

    from conftest import tiny_config

    from napari_dacapo.gui.controller import training_events
    from napari_dacapo.gui.live_view import LivePredictionReady, LiveSlot
    from napari_dacapo.store.file_store import FileStore

    slot = LiveSlot()
    roi = Roi((0, 0), (40, 40))
    slot.put(roi)  # taken after the first iteration; no request after that
    events = []
    for event in training_events(tiny_config(2, validation_interval=100),
                                 FileStore(tmp_path / "runs"), threading.Event(), slot):
        events.append(event)
        if isinstance(event, LivePredictionReady) and not live_on:
            slot.forget()
    shown = [e.iteration for e in events if isinstance(e, LivePredictionReady)]
    assert shown == ([1, 6] if live_on else [1])
    last = events[-1]
    if live_on:
        assert isinstance(last, LivePredictionReady) and last.data.shape[-2:] == (40, 40)


def test_readable_views_of_outputs():
    from napari_dacapo.gui.outputs import readable

    single = np.zeros((1, 4, 5))
    assert readable(single, dims=2, rgb=False)[0].shape == (4, 5)
    affinities = np.stack([np.full((4, 5), 0.2), np.full((4, 5), 1.7)])
    view, rgb = readable(affinities, dims=2, rgb=True)
    assert rgb and view.shape == (4, 5, 3)
    np.testing.assert_allclose(view[0, 0], [0.2, 1.0, 0.0])  # clipped, missing channel black
    classes = np.zeros((3, 4, 5))
    view, rgb = readable(classes, dims=2, rgb=False)
    assert view is classes and not rgb  # channels stay a leading axis
