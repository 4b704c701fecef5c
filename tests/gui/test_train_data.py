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
    # World y 3..6 holds voxel centres 4..10 (1 + 0.5 * i): the one on its high edge is
    # left out, so 3 world units are 6 voxels; one slice at z = 4 (world 8).
    flat = viewer.add_shapes([[[8, 3, 3], [8, 3, 6], [8, 6, 6], [8, 6, 3]]],
                             shape_type="rectangle")
    assert shape_boxes(flat, labels, 3) == [(slice(4, 5), slice(4, 10), slice(4, 10))]
    # A 2D shape over a 3D image spans every slice; shapes outside are dropped.
    column = viewer.add_shapes([[[3, 3], [6, 6]], [[500, 500], [600, 600]]],
                               shape_type="rectangle")
    assert shape_boxes(column, labels, 3) == [(slice(0, 10), slice(4, 10), slice(4, 10))]


def test_a_rectangle_covers_as_many_pixels_as_it_is_wide_in_training_and_prediction(
    make_napari_viewer,
):
    """One rule for validation regions, masks and the predict panel's regions: a
    rectangle from pixel edge to pixel edge covers the pixels between; one whose corners
    lie on pixel centres (napari puts them at whole data coordinates) covers as many
    pixels as it is wide, not one more; rectangles sharing an edge share no pixel."""
    from napari_dacapo.gui.regions import region_box

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((20, 128, 128), np.uint16), scale=(40, 8, 8))
    on_centres = [[400, 480, 480], [400, 480, 800], [400, 800, 800], [400, 800, 480]]
    on_edges = [[400, 476, 476], [400, 476, 796], [400, 796, 796], [400, 796, 476]]
    beside = [[400, 800, 480], [400, 800, 800], [400, 880, 800], [400, 880, 480]]
    pixels = (slice(10, 11), slice(60, 100), slice(60, 100))  # pixels 60..99, slice 10
    for corners in (on_centres, on_edges):
        shapes = viewer.add_shapes([corners], shape_type="rectangle")
        assert shape_boxes(shapes, image, 3) == [pixels]  # a validation region
        lo, hi = region_box(viewer, image, shapes, 3)  # a region to predict
        assert tuple(map(slice, lo, hi)) == pixels
    next_to = viewer.add_shapes([on_centres, beside], shape_type="rectangle")
    first, second = shape_boxes(next_to, image, 3)
    assert first[1].stop == second[1].start == 100


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
    distance = np.abs(rows - 20) + np.abs(cols - 20)
    radius = ((rows - 20) / 8) ** 2 + ((cols - 50) / 12) ** 2
    # Not its bounding box: the pixels inside, and of those whose centres lie on its
    # outline the ones on its low edges, as many as its area (2 * 10 * 10).
    assert full[:, :35][distance[:, :35] < 10].all()
    assert not full[:, :35][distance[:, :35] > 10].any()
    assert full[:, :35].sum() == 200
    assert full[10, 20] and not full[30, 20] and not full[20, 30]  # top in, bottom out
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
    # Centres on the outline count on its low edges (top, left), not on the diagonal.
    first = (rows >= 2) & (cols >= 0) & (rows - 2 + cols < 20)
    second = (rows >= 5) & (cols >= 5) & (rows - 5 + cols - 5 < 20)
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
    assert validate.gt_config.roi == Roi((0, 0), (20, 20))  # voxels 0..9, 2 units each
    mask = np.asarray(train.mask_config.data)
    assert mask[:10, :10].sum() == 0 and mask[10:40, 10:40].all() and not mask[40:].any()
    # The region is scored where the mask marks the labels complete: all of it here.
    assert validate.mask_config.name == "validate_region_1_mask"
    assert np.asarray(validate.mask_config.data).all()
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


def test_a_validation_region_is_scored_only_where_the_mask_marks_labels_complete(
    make_napari_viewer, tmp_path
):
    """Scribbles on a few slices of a volume, a Labels mask of where they were painted and
    a validation region on one slice: the region's dataset carries the mask's crop
    (unpainted voxels are not scored as background) and the training mask leaves the
    region out, also once stored; likewise for a mask layer placed elsewhere than the
    labels, and for a Shapes mask."""
    from conftest import tiny_config

    from napari_dacapo.store.file_store import FileStore

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    where = np.zeros((20, 64, 64), np.uint8)
    where[8:12, 8:, ::6] = 1  # stripes on 4 slices, none above y = 8
    scribbles = (where * rng.integers(0, 2, where.shape)).astype(np.uint8)
    geometry = {"scale": (4, 1, 1)}
    viewer.add_image(rng.random(where.shape).astype(np.float32), name="em", **geometry)
    labels = viewer.add_labels(scribbles, name="scribbles", **geometry)
    painted = viewer.add_labels(where, name="painted where", **geometry)
    region = viewer.add_shapes([[[40, 4, 4], [40, 4, 40], [40, 40, 40], [40, 40, 4]]],
                               shape_type="rectangle", name="valreg")  # on slice 10
    panel = DataPanel(viewer)
    panel.labels.value, panel.mask.value = labels, painted
    panel.validation_region.value = region
    box = (slice(10, 11), slice(4, 40), slice(4, 40))

    def region_mask(datasplit):
        train, (validate,) = datasplit.train_configs[0], datasplit.validate_configs
        dataset = validate.dataset_type(validate)
        roi = dataset.gt.roi
        assert not np.asarray(train.dataset_type(train).mask.read(roi)).any()  # not trained
        assert roi == Roi((40, 4, 4), (4, 36, 36)) and dataset.mask.roi == roi
        return np.asarray(dataset.mask.read(roi))

    selection = panel.selection(3)
    np.testing.assert_array_equal(region_mask(selection.datasplit), where[box])
    config = tiny_config(3, name="scribbles").replace(datasplit_config=selection.datasplit)
    stored = FileStore(tmp_path / "runs").store_run_config(config)
    np.testing.assert_array_equal(region_mask(stored.datasplit_config), where[box])

    # The mask layer need not start where the labels do (voxels beyond it: not scored).
    panel.mask.value = viewer.add_labels(where[:, 8:], name="painted, cropped",
                                         translate=(0, 8, 0), **geometry)
    np.testing.assert_array_equal(region_mask(panel.selection(3).datasplit), where[box])
    # A Shapes mask: a 2D rectangle over every slice, rows 0..19.
    panel.mask.value = viewer.add_shapes([[[0, 0], [20, 64]]], shape_type="rectangle")
    expected = np.zeros((1, 36, 36), np.uint8)
    expected[:, :16] = 1  # rows 4..19 of the region
    np.testing.assert_array_equal(region_mask(panel.selection(3).datasplit), expected)
    panel.close()


def test_a_validation_region_that_would_score_unlabelled_voxels_is_noted(
    make_napari_viewer,
):
    """Without a mask, a region over slices with no label at all scores them as
    background: the panel says so under the pickers (training is not refused), and the
    note goes once a mask is picked or the slices are labelled."""
    viewer = make_napari_viewer()
    raw, full = synthetic_blobs((20, 48, 48), seed=3)
    partial = np.zeros_like(full)
    partial[6:14] = full[6:14]
    viewer.add_image(raw, name="em", scale=(4, 1, 1))
    labels = viewer.add_labels(partial, name="gt", scale=(4, 1, 1))
    region = viewer.add_shapes([[[8, 8], [40, 40]]], shape_type="rectangle", name="val")
    panel = DataPanel(viewer)
    panel.validation_region.value = region
    panel.show_status("Intensities are scaled.")  # what the training panel says

    note = ("Validation region 1 of 'val' has no labels on 12 of its 20 slices (slices "
            "0–5, 14–19 of 'gt'): without a mask they are scored as background. Pick a "
            "mask marking where the labels are complete, or draw the region on labelled "
            "slices only.")
    assert panel.selection(3).notes == (note,)
    assert panel.status_line.value == f"Intensities are scaled.\n{note}"
    assert not panel.status_line.native.isHidden()

    mask = np.zeros(partial.shape, np.uint8)
    mask[6:14] = 1
    panel.mask.value = viewer.add_labels(mask, name="done", scale=(4, 1, 1))
    assert panel.selection(3).notes == ()
    assert panel.status_line.value == "Intensities are scaled."
    elsewhere = np.zeros(partial.shape, np.uint8)
    elsewhere[:, :8] = 1
    panel.mask.value.data = elsewhere  # the region has nothing to score
    assert panel.selection(3).notes == (
        "Validation region 1 of 'val' lies outside mask 'done' (no pixel of it is marked "
        "complete), so it cannot be scored. Draw the region where the mask is set, or "
        "extend the mask over it.",)
    panel.mask.value = None
    labels.data = full  # every slice labelled
    assert panel.selection(3).notes == ()

    flat = np.zeros((48, 48), np.uint16)
    viewer.layers.clear()
    panel.raw.value = viewer.add_image(flat, name="em2d")
    panel.labels.value = viewer.add_labels(np.pad(np.ones((8, 8), np.uint8), 20), name="gt")
    panel.validation_region.value = viewer.add_shapes([[[0, 0], [10, 10]]], name="corner")
    assert panel.selection(2).notes == (
        "Validation region 1 of 'corner' holds no labels: without a mask all of it is "
        "scored as background. Pick a mask marking where the labels are complete, or draw "
        "the region over labelled pixels.",)
    panel.close()


def test_the_region_note_reads_no_more_than_its_bound_on_the_gui_thread(
    make_napari_viewer, monkeypatch
):
    """The note is read again after every paint stroke, on the GUI thread: labels under
    a region beyond NOTE_BYTES are not read for it (no note, no stall)."""
    from napari_dacapo.gui import held_out

    viewer = make_napari_viewer()
    raw, _ = synthetic_blobs((20, 48, 48), seed=3)
    viewer.add_image(raw, name="em")
    viewer.add_labels(np.pad(np.ones((4, 8, 8), np.uint8), ((8, 8), (20, 20), (20, 20))),
                      name="gt")
    panel = DataPanel(viewer)
    panel.validation_region.value = viewer.add_shapes([[[8, 8], [40, 40]]], name="val")
    assert len(panel.selection(3).notes) == 1  # 20 slices of 32² uint8: 20 KiB
    monkeypatch.setattr(held_out, "NOTE_BYTES", 10_000)
    panel.labels.value.data = panel.labels.value.data.copy()  # read again, as after painting
    assert panel.selection(3).notes == ()
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
