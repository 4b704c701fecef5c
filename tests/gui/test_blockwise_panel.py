"""The predict panel's "blockwise to zarr" mode: a zarr-backed layer is predicted by daisy
worker processes into a zarr array, shown lazily while it fills; cancel keeps the blocks
done, and predicting again resumes with the others."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from napari.layers import Image

from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import write_zarr_array
from napari_dacapo.gui.background_reads import BackgroundReadArray
from napari_dacapo.gui.blockwise_job import BlockwiseJob, BlockwiseJobError
from napari_dacapo.gui.layer_storage import zarr_location
from napari_dacapo.gui.layers import layer_name
from napari_dacapo.gui.predict_widget import BLOCKWISE, TILES
from napari_dacapo.predict import predict

pytestmark = pytest.mark.gui

CHECKPOINT = "best:blob__dice"


def done_markers(job: BlockwiseJob) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in job.marker_dir.iterdir() if p.name.isdigit()}


def test_blockwise_fills_a_lazy_layer_cancels_and_resumes(predict_panel, qtbot, trained_store,
                                                          tmp_path):
    viewer, widget = predict_panel
    raw = synthetic_blobs((160, 176), seed=5)[0]  # 10 x 11 tiles of 16 x 16: 2 x 2 blocks
    write_zarr_array(tmp_path / "in.zarr", "raw", raw, voxel_size=(1, 1))
    image = viewer.open(str(tmp_path / "in.zarr"), plugin="napari-dacapo")[0]
    # A layer read from zarr is predicted blockwise, next to its container by default.
    assert widget.mode_choice.value == BLOCKWISE and not widget.blockwise.native.isHidden()
    assert not widget.labels_check.enabled
    widget.checkpoint_choice.value = CHECKPOINT
    output = tmp_path / "in_predictions.zarr" / "tiny_2d" / "best_blob__dice"
    assert widget.blockwise.output_edit.value == output
    widget.blockwise.workers_spin.value = 2

    widget.predict_button.native.click()
    job = widget.blockwise.job
    assert (job.input, job.output, job.workers) == (f"{tmp_path}/in.zarr/raw", str(output), 2)
    assert widget.cancel_button.enabled and not widget.predict_button.enabled
    name = layer_name("tiny_2d", f"prediction {image.name}")
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=120_000)
    layer = viewer.layers[name]
    assert isinstance(layer.data, BackgroundReadArray) and layer.data.shape == raw.shape
    qtbot.waitUntil(lambda: widget.blockwise.worker is None, timeout=180_000)
    assert widget.status.value == f"Predicted 4 blocks into {output}.", widget.status.value
    assert widget.progress.value == widget.progress.max == 4
    finished = done_markers(job)
    assert len(finished) == 4

    # Two blocks lost (as by an interrupted job). Predicting again starts from the other
    # two; cancelled (long before its workers have started), it leaves them as they were.
    lost = sorted(finished)[:2]
    for block in lost:
        (job.marker_dir / block).unlink()
    widget.predict_button.native.click()
    qtbot.waitUntil(lambda: widget.progress.value == 2, timeout=30_000)
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.blockwise.worker is None, timeout=30_000)
    assert widget.status.value.startswith("Cancelled after 2 of 4 blocks")
    assert widget.predict_button.enabled
    kept = done_markers(job)
    assert kept == {b: t for b, t in finished.items() if b not in lost}

    # The same prediction again: only the missing blocks are predicted.
    widget.predict_button.native.click()
    qtbot.waitUntil(lambda: widget.blockwise.worker is None, timeout=180_000)
    assert widget.status.value == f"Predicted 4 blocks into {output}.", widget.status.value
    assert widget.progress.value == widget.progress.max == 4
    again = done_markers(job)
    assert again.keys() == finished.keys() and all(again[b] == kept[b] for b in kept)
    expected = predict("tiny_2d", CHECKPOINT, raw, store=trained_store)[0]
    np.testing.assert_allclose(zarr.open_array(output, mode="r")[0], expected, atol=1e-5)
    layer = viewer.layers[name]  # the layer shows the filled array, read lazily
    assert isinstance(layer.data, BackgroundReadArray)
    np.testing.assert_allclose(np.asarray(layer.data), expected, atol=1e-5)
    # What napari shows, read in a worker once the prediction ended.
    qtbot.waitUntil(lambda: not layer.data.reading, timeout=10_000)
    np.testing.assert_allclose(layer._slice.image.raw, expected, atol=1e-5)


def test_blockwise_needs_a_zarr_image_and_an_output(predict_panel, tmp_path):
    viewer, widget = predict_panel
    viewer.add_image(np.zeros((40, 40), np.float32), name="in memory")
    assert widget.mode_choice.value == TILES and widget.blockwise.native.isHidden()
    widget.mode_choice.value = BLOCKWISE
    assert widget.reason_disabled().startswith(
        "Blockwise prediction reads the image from a zarr array on disk, and 'in memory' "
        "is not one.")
    assert not widget.predict_button.enabled

    array = zarr.open_array(tmp_path / "big.zarr" / "raw", mode="w", shape=(40, 40),
                            chunks=(20, 20), dtype="f4")
    # As napari's own zarr reader opens it.
    widget.image_choice.value = viewer.add_image(da.from_zarr(array), name="big")
    assert widget.mode_choice.value == BLOCKWISE
    assert widget.blockwise.output_edit.value == (
        tmp_path / "big_predictions.zarr" / "tiny_2d" / "latest")
    assert widget.reason_disabled() == ""
    widget.blockwise.output_edit.value = tmp_path / "out"
    assert widget.reason_disabled().startswith("Output: ")
    widget.blockwise.output_edit.value = tmp_path / "big.zarr" / "raw"
    reason = widget.reason_disabled()
    assert "is the image itself" in reason and "Choose another output" in reason
    # Checked as the job checks them: inside the image, under a file.
    widget.blockwise.output_edit.value = tmp_path / "big.zarr" / "raw" / "sub"
    assert "lie one inside the other" in widget.reason_disabled()
    (tmp_path / "notes.txt").write_text("")
    widget.blockwise.output_edit.value = tmp_path / "notes.txt" / "out.zarr" / "pred"
    assert "which is a file, not a folder" in widget.reason_disabled()


def test_zarr_location_of_layers(tmp_path):
    array = zarr.open_array(tmp_path / "c.zarr" / "g" / "raw", mode="w", shape=(1, 8, 8),
                            chunks=(1, 4, 4), dtype="u1")
    where = (tmp_path / "c.zarr", "g/raw")
    lazy = da.from_zarr(array)
    assert zarr_location(Image(array)) == where
    assert zarr_location(Image(lazy)) == where
    assert zarr_location(Image(lazy[0])) == where  # the lone channel dropped
    assert zarr_location(Image(lazy[0, 2:])) is None  # a part: not what would be predicted
    assert zarr_location(Image(np.zeros((8, 8)))) is None
    assert zarr_location(Image(lazy + 1)) is None  # computed from the array
    opened = Image(np.zeros((8, 8)), metadata={"source": str(tmp_path / "x.zarr"),
                                               "dataset": "raw"})
    assert zarr_location(opened) == (tmp_path / "x.zarr", "raw")  # napari-dacapo's reader


def test_a_failed_blockwise_prediction_is_notified_with_its_fix(predict_panel, qtbot, tmp_path,
                                                                monkeypatch, capfd):
    from napari.utils.notifications import notification_manager

    viewer, widget = predict_panel
    write_zarr_array(tmp_path / "in.zarr", "raw", np.zeros((40, 40), np.uint8),
                     voxel_size=(1, 1))
    viewer.open(str(tmp_path / "in.zarr"), plugin="napari-dacapo")
    output = tmp_path / "other.zarr" / "pred"  # written by something else
    zarr.open_array(output, mode="w", shape=(2,), dtype="u1")[:] = 7
    widget.blockwise.output_edit.value = output
    errors = []
    on_errored = type(widget.blockwise)._on_worker_errored
    monkeypatch.setattr(type(widget.blockwise), "_on_worker_errored",
                        lambda panel, error: (errors.append(error), on_errored(panel, error)))
    shown = len(notification_manager.records)
    with qtbot.capture_exceptions() as raised:
        widget.predict_button.native.click()
        qtbot.waitUntil(lambda: widget.blockwise.worker is None, timeout=60_000)

    assert not raised  # shown, not re-raised (a traceback on stderr)
    assert "Traceback" not in capfd.readouterr().err
    fix = "In the predict panel: tick 'overwrite another prediction', or choose another output."
    error, = errors
    assert isinstance(error, BlockwiseJobError) and error.kind == "FileExistsError"
    assert "already exists" in str(error) and str(error).endswith(fix)
    assert widget.status.value == f"Blockwise prediction failed: {error}"
    assert [str(n.message) for n in notification_manager.records[shown:]] == [
        widget.status.value]
    assert list(zarr.open_array(output, mode="r")[:]) == [7, 7]  # left alone
    assert widget.predict_button.enabled


def test_an_unexpected_blockwise_failure_is_logged_with_its_traceback(
        predict_panel, qtbot, tmp_path, monkeypatch, caplog):
    from napari_dacapo.gui import blockwise_panel

    def broken(job, cancel):
        raise ZeroDivisionError("a bug")
        yield

    monkeypatch.setattr(blockwise_panel, "blockwise_events", broken)
    viewer, widget = predict_panel
    write_zarr_array(tmp_path / "in.zarr", "raw", np.zeros((40, 40), np.uint8),
                     voxel_size=(1, 1))
    viewer.open(str(tmp_path / "in.zarr"), plugin="napari-dacapo")
    widget.blockwise.output_edit.value = tmp_path / "out.zarr" / "pred"
    with qtbot.capture_exceptions() as raised:
        widget.predict_button.native.click()
        qtbot.waitUntil(lambda: widget.blockwise.worker is None, timeout=10_000)

    assert not raised
    assert widget.status.value == "Blockwise prediction failed: a bug"
    record, = [r for r in caplog.records if r.name == blockwise_panel.__name__]
    assert isinstance(record.exc_info[1], ZeroDivisionError)


def test_cancel_once_every_block_is_done_says_the_prediction_finished(
        predict_panel, qtbot, tmp_path, monkeypatch):
    """Cancel pressed after the last block, while the prediction's processes still end:
    nothing is missing, so the panel says (and shows) what a finished prediction does."""
    import threading

    from napari_dacapo.gui import blockwise_panel
    from napari_dacapo.gui.blockwise_job import BlocksDone, BlockwiseStarted, OutputReady

    viewer, widget = predict_panel
    write_zarr_array(tmp_path / "in.zarr", "raw", np.zeros((40, 40), np.uint8),
                     voxel_size=(1, 1))
    image = viewer.open(str(tmp_path / "in.zarr"), plugin="napari-dacapo")[0]
    output = tmp_path / "out.zarr" / "pred"
    written = zarr.open_array(output, mode="w", shape=(1, 40, 40), dtype="f4")
    ending = threading.Event()

    def every_block_done(job, cancel):  # as blockwise_events, while daisy shuts down
        yield BlockwiseStarted(4, 0)
        yield OutputReady(written, (1, 1), (0, 0))
        yield BlocksDone(4, 4)
        ending.set()
        cancel.wait(30)

    monkeypatch.setattr(blockwise_panel, "blockwise_events", every_block_done)
    widget.blockwise.output_edit.value = output
    widget.predict_button.native.click()
    qtbot.waitUntil(lambda: ending.is_set() and widget.progress.value == 4, timeout=10_000)
    assert widget.cancel_button.enabled
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.blockwise.worker is None, timeout=10_000)
    assert widget.status.value == f"Predicted 4 blocks into {output}.", widget.status.value
    assert layer_name("tiny_2d", f"prediction {image.name}") in viewer.layers


def test_blocks_done_while_cancelling_are_counted(tmp_path, monkeypatch):
    """Blocks finished between the last count and Cancel (here the last one) are
    reported, so that the panel does not take a finished prediction for a cut one."""
    import subprocess
    import sys
    import threading

    from napari_dacapo.gui import blockwise_job
    from napari_dacapo.gui.blockwise_job import BlocksDone, BlockwiseStarted, blockwise_events

    job = BlockwiseJob(store_root=str(tmp_path), run="r", checkpoint="latest",
                       input=f"{tmp_path}/in.zarr/raw", output=f"{tmp_path}/out.zarr/pred")
    monkeypatch.setattr(blockwise_job, "_block_count", lambda job: 2)
    monkeypatch.setattr(blockwise_job, "_output_ready", lambda job: "output ready")
    popen = subprocess.Popen
    monkeypatch.setattr(blockwise_job.subprocess, "Popen", lambda args, **kwargs: popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], **kwargs))  # a child at work
    cancel = threading.Event()
    events = blockwise_events(job, cancel)
    assert next(events) == BlockwiseStarted(2, 0)
    job.marker_dir.mkdir(parents=True)
    (job.marker_dir / "job.yaml").write_text("")
    (job.marker_dir / "0").touch()
    assert next(events) == "output ready"
    assert next(events) == BlocksDone(1, 2)
    (job.marker_dir / "1").touch()  # the last block, done just before Cancel
    cancel.set()
    assert list(events) == [BlocksDone(2, 2)]
