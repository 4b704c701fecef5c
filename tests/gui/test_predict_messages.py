"""What the panels say about images the network reads otherwise than the user may mean
(channels last, stacks of frames, time series) and about a run deleted while chosen: the
predict panel says what the training panel says, and each message names its fix."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.gui.layer_arrays import (
    channels_last_problem,
    dimensions_problem,
    layer_array_config,
)
from napari_dacapo.gui.predict_reasons import checkpoint_reason, run_reason
from napari_dacapo.gui.prediction_job import image_mismatch
from napari_dacapo.gui.run_info import read_run_info
from napari_dacapo.gui.settings_panel import SettingsPanel, image_note
from napari_dacapo.gui.train_widget import TrainWidget
from napari_dacapo.store.file_store import FileStore

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


def _run(dims: int, channels: int, name: str = "net") -> SimpleNamespace:
    """What :func:`image_mismatch` reads of a run: its name and its network's input."""
    return SimpleNamespace(name=name, dims=dims, in_channels=channels)


# -- A: the predict panel reads channels as the training panel does ----------------------


def test_channels_last_is_said_as_the_training_panel_says_it():
    chlast = Image(np.zeros((160, 160, 2), np.uint8), name="chlast")
    reason = image_mismatch(chlast, _run(2, 2, "twoch"))
    assert "160 channel" not in reason
    assert reason.startswith("Image 'chlast' has shape (160, 160, 2): its last axis looks like "
                             "2 channels, but napari-dacapo reads channels from the first axis")
    assert "np.moveaxis(viewer.layers['chlast'].data, -1, 0)" in reason
    # The training panel's reason, for the same rule (only the fix is the predict panel's).
    training = channels_last_problem(chlast)
    assert training.split(". ")[0].replace("The raw image", "Image") == reason.split(". ")[0]
    # A one-channel network: one layer per channel, not the channels moved first.
    one = image_mismatch(chlast, _run(2, 1))
    assert "channel_axis=-1" in one and "moveaxis" not in one
    # Moved first, 2 channels would not fit a 3-channel network either.
    three = image_mismatch(chlast, _run(2, 3))
    assert three.endswith("The network takes 3 channels: pick an image with 3, channels "
                          "first.")
    # A 3D network would take it as a (z, y, x) volume 2 voxels wide: refused as well.
    assert "its last axis looks like 2 channels" in image_mismatch(chlast, _run(3, 1))


@pytest.mark.parametrize(
    ("shape", "reading"),
    [((20, 128, 128), "is read as a 3D volume"), ((5, 64, 64), "is read as 5 channels")],
)
def test_a_stack_is_named_as_the_training_panel_reads_it(make_napari_viewer, tmp_path, shape,
                                                          reading):
    """A (20, Y, X) stack is a volume to the training panel (its 3D preset), not 20
    channels; a (5, Y, X) one is 5 channels (fmaps in 5). A 2D one-channel run says so."""
    viewer = make_napari_viewer()
    stack = viewer.add_image(np.zeros(shape, np.uint8), name="movie")
    panel = SettingsPanel(FileStore(tmp_path / "runs"))
    panel.match_image(stack)
    network = panel.settings()["architecture_config"]
    reason = image_mismatch(stack, _run(2, 1, "frame0"))
    if "volume" in reading:
        assert len(network.input_shape) == 3 and network.fmaps_in == 1
        assert f"{shape[0]} channel" not in reason
    else:
        assert len(network.input_shape) == 2 and network.fmaps_in == shape[0]
    assert reason.startswith(f"Image 'movie' {shape} {reading}")
    assert "a stack of images must be predicted one by one" in reason
    assert "viewer.add_image(viewer.layers['movie'].data[0], name='movie frame 0')" in reason
    assert "Split Stack" in reason


def test_a_stack_labelled_time_says_so_and_keeps_its_scale():
    movie = Image(np.zeros((5, 64, 64), np.uint8), name="movie", axis_labels=("t", "y", "x"),
                  scale=(1, 0.5, 0.5))
    reason = image_mismatch(movie, _run(2, 2))
    assert "pick an image with 2, shaped (channels, y, x)" in reason
    assert "Its first axis is labelled time: split the frame to predict" in reason
    assert "scale=viewer.layers['movie'].scale[1:]" in reason


def test_channels_for_a_network_of_other_channels_are_no_frames():
    two = Image(np.zeros((2, 64, 64), np.uint8), name="two")
    assert image_mismatch(two, _run(2, 3, "rgbrun")) == (
        "Image 'two' (2, 64, 64) is read as 2 channels of one 2D image, but the network of "
        "run 'rgbrun' takes 3 channels: pick an image with 3, shaped (channels, y, x).")


def test_images_that_fit_are_not_refused():
    assert image_mismatch(Image(np.zeros((2, 64, 64), np.uint8)), _run(2, 2)) == ""
    assert image_mismatch(Image(np.zeros((20, 128, 128), np.uint8)), _run(3, 1)) == ""
    assert image_mismatch(Image(np.zeros((64, 64, 3), np.uint8), rgb=True), _run(2, 3)) == ""
    # A run whose network takes that many channels takes the stack as channels.
    assert image_mismatch(Image(np.zeros((20, 64, 64), np.uint8)), _run(2, 20)) == ""


def test_the_predict_panel_shows_the_reading(predict_panel):
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((20, 64, 64), np.uint8), name="movie20")
    reason = widget.reason_disabled()
    assert reason.startswith("Image 'movie20' (20, 64, 64) is read as a 3D volume")
    assert widget.status.value == reason and not widget.predict_button.enabled
    widget.image_choice.value = viewer.add_image(np.zeros((64, 64, 2), np.uint8), name="cl")
    assert "its last axis looks like 2 channels" in widget.status.value


# -- B: a run deleted while chosen --------------------------------------------------------


def test_a_deleted_run_is_said_as_the_runs_browser_says_it(predict_panel, trained_store, qtbot):
    viewer, widget = predict_panel
    viewer.add_image(synthetic_blobs((48, 48), seed=2)[0], name="blobs")
    assert widget.predict_button.enabled, widget.reason_disabled()
    shutil.rmtree(trained_store.run_dir("tiny_2d"))
    gone = (f"Run 'tiny_2d' is no longer in {trained_store.root}. Pick another run, or press "
            f"Refresh runs to list the runs stored now.")
    qtbot.waitUntil(lambda: widget.status.value == gone, timeout=10_000)
    assert not widget.predict_button.enabled
    widget.start()
    assert widget.worker is None and widget.status.value == gone
    for checkpoint in ("latest", "3", "best:blob__dice"):
        assert checkpoint_reason(trained_store, widget.info, checkpoint) == gone


def test_checkpoints_deleted_after_the_run_was_read_are_not_called_untrained(trained_store):
    info = read_run_info(trained_store, "tiny_2d")
    for iteration in trained_store.checkpoint_iterations("tiny_2d"):
        trained_store.checkpoint_path("tiny_2d", iteration).unlink()
    reason = run_reason(trained_store, "tiny_2d", info, "latest")
    folder = trained_store.run_dir("tiny_2d") / "checkpoints"
    assert reason == (f"Run 'tiny_2d' has no checkpoint left in {folder} (deleted since it "
                      f"was read): train it again to predict with it, or pick another run.")


# -- C: time series and stacks of frames --------------------------------------------------


def test_labels_painted_on_one_frame_of_a_movie_say_to_split_the_frame():
    painted = np.zeros((5, 64, 64), np.uint16)
    painted[2, 10:20, 10:20] = 1
    labels = Labels(painted, name="Labels")
    with pytest.raises(ValueError) as error:
        layer_array_config(labels, "train_labels", 2, 1)
    message = str(error.value)
    assert message.startswith("Layer 'Labels' has 3 dimensions (5, 64, 64) but the run is 2D: "
                              "its first axis is short, like time or a stack of frames")
    assert "labels are painted on frame 2 only" in message
    assert "viewer.add_labels(viewer.layers['Labels'].data[2], name='Labels frame 2')" in message
    assert "pick its frame 2 as the raw image" in message
    assert "3D" not in message  # no 3D network for 5 frames
    timed = Labels(np.zeros((30, 64, 64), np.uint16), name="t", axis_labels=("time", "y", "x"))
    message = dimensions_problem(timed, 2)
    assert "its first axis is labelled time" in message and "3D" not in message
    long = dimensions_problem(Labels(np.zeros((30, 64, 64), np.uint16), name="l"), 2)
    assert "If its first axis is time or a stack of 2D frames" in long
    assert "change the network's input shape to 3D (a 3D preset)" in long


def test_image_notes_say_how_a_stack_is_read():
    movie = Image(np.zeros((5, 64, 64), np.uint8), name="movie")
    note = image_note(movie, 2)
    assert "read as 5 channels" in note and "split it into 2D frames" in note
    assert "3D volume" not in note  # not for 5 frames
    stack = Image(np.zeros((20, 128, 128), np.uint8), name="stack")
    assert "Or train it as a 3D volume (a 3D preset)." in image_note(stack, 2)
    note = image_note(stack, 3)
    assert note.startswith("'stack' (20, 128, 128) is read as a 3D volume of 20 z-slices")
    assert "viewer.add_image(viewer.layers['stack'].data[0], name='stack frame 0')" in note
    # Nothing to say where the stack says it is a volume.
    assert image_note(Image(np.zeros((20, 128, 128)), scale=(4, 1, 1)), 3) == ""
    assert image_note(Image(np.zeros((20, 128, 128)), axis_labels=("z", "y", "x")), 3) == ""
    assert image_note(Image(np.zeros((64, 64, 64))), 3) == ""
    timed = Image(np.zeros((100, 128, 128)), name="t", axis_labels=("t", "y", "x"))
    assert "its first axis is labelled time" in image_note(timed, 3)


def test_the_training_panel_guides_a_time_series(make_napari_viewer, tmp_path, qtbot):
    """The tester's movies: labels painted on frame 0 of a 5-frame movie, then a 20-frame
    movie that the panel takes as a volume."""
    viewer = make_napari_viewer()
    raw, labels = synthetic_blobs((128, 128), seed=1)
    viewer.add_image(np.stack([raw] * 5), name="movie")
    painted = np.zeros((5, 128, 128), labels.dtype)
    painted[0] = labels
    viewer.add_labels(painted, name="Labels")
    panel = TrainWidget(viewer, store=FileStore(tmp_path / "runs"))
    viewer.window.add_dock_widget(panel)
    panel._refresh_enabled()
    reason = panel.state.reason_disabled
    assert "its first axis is short, like time or a stack of frames" in reason
    assert "viewer.add_labels(viewer.layers['Labels'].data[0]" in reason
    assert "input shape to 3D" not in reason and "3D volume" not in panel.state.data_status

    viewer.add_image(np.stack([raw] * 20), name="movie20")
    panel.data.raw.value = viewer.layers["movie20"]
    panel.data.labels.value = viewer.add_labels(np.zeros((20, 128, 128), labels.dtype), name="l")
    qtbot.waitUntil(lambda: "z-slices" in panel.state.data_status, timeout=WAIT_MS)
    assert "'movie20' (20, 128, 128) is read as a 3D volume of 20 z-slices" in (
        panel.state.data_status)
