"""Blockwise prediction with daisy workers: equal to predict(), resumable, failures
reported."""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr
from click.testing import CliRunner
from conftest import store_random_weights, tiny_config
from funlib.geometry import Coordinate, Roi

from napari_dacapo.blockwise import BlockwisePredictionError, predict_blockwise
from napari_dacapo.blockwise.locations import check_output_path, check_roi
from napari_dacapo.blockwise.prediction import BlockLayout
from napari_dacapo.blockwise.scheduler import (
    _DAISY_ADVICE,
    _worker_error_summary,
    incomplete_output,
    output_stamp,
    recorded_job,
    threads_per_worker,
)
from napari_dacapo.checkpoints import load_run
from napari_dacapo.cli import main
from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import write_zarr_array
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
    ZarrArrayConfig,
)
from napari_dacapo.experiments.run import Run
from napari_dacapo.predict import GROUP_READ_VOXELS, NonFiniteWarning, TileGeometry, predict
from napari_dacapo.store.file_store import CheckpointError, FileStore

FP32 = {"precision": "fp32", "device": "cpu"}  # exact comparisons need plain fp32


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A stored tiny 2D run with random weights, and a 2D input zarr of 4x3 prediction tiles (the
    last row and column of tiles overhang the input)."""
    folder = tmp_path_factory.mktemp("blockwise")
    store = FileStore(folder / "runs")
    config = tiny_config(2, name="blockwise")
    store_random_weights(store, config)
    raw = synthetic_blobs((50, 44), seed=3)[0]
    write_zarr_array(folder / "in.zarr", "raw", raw, voxel_size=(1, 1))
    return store, config.name, folder, raw


def blocks_of(output):
    return {p.name: p.stat().st_mtime_ns for p in (output.parent.parent / (
        output.parent.name + ".blocks") / output.name).iterdir() if p.name.isdigit()}


def test_blockwise_equals_predict_and_resumes(setup):
    store, name, folder, raw = setup
    expected = predict(name, 0, raw, voxel_size=(1, 1), store=store, **FP32)
    output = predict_blockwise(
        name, 0, f"{folder}/in.zarr/raw", folder / "out.zarr/pred", workers=2, store=store,
        **FP32,
    )
    written = zarr.open_array(output, mode="r")
    assert written.attrs["voxel_size"] == [1, 1]
    assert written.chunks[1:] != written.shape[1:]  # really more than one block
    np.testing.assert_allclose(written[:], expected, rtol=1e-6, atol=1e-6)

    # Interrupted job: two blocks lost their markers (and their data); a rerun redoes just
    # those two.
    done = blocks_of(output)
    assert len(done) > 2
    lost = sorted(done)[:2]
    marker_dir = output.parent.parent / (output.parent.name + ".blocks") / output.name
    for block in lost:
        (marker_dir / block).unlink()
    zarr.open_array(output, mode="r+")[:] = 0
    predict_blockwise(
        name, 0, f"{folder}/in.zarr/raw", folder / "out.zarr/pred", workers=2, store=store,
        **FP32,
    )
    again = blocks_of(output)
    assert again.keys() == done.keys()
    assert {b for b in again if again[b] != done[b]} == set(lost)
    redone = zarr.open_array(output, mode="r")[:]
    assert np.count_nonzero(redone) and np.count_nonzero(redone) < redone.size
    # the redone blocks hold the prediction again, the rest stayed zero
    np.testing.assert_allclose(redone[redone != 0], expected[redone != 0], rtol=1e-6)


def test_blockwise_region_worker_command_and_other_job(setup):
    """A region, with the worker started through a command template (here: the shell)."""
    store, name, folder, raw = setup
    roi = Roi((10, 4), (20, 30))
    expected = predict(name, 0, raw, voxel_size=(1, 1), store=store, **FP32)
    output = predict_blockwise(
        name, 0, f"{folder}/in.zarr/raw", f"{folder}/region.zarr/pred", workers=1, roi=roi,
        store=store, worker_command="exec {command}", **FP32,
    )
    written = zarr.open_array(output, mode="r")
    assert written.attrs["offset"] == [10, 4]
    np.testing.assert_allclose(written[:], expected[:, 10:30, 4:34], rtol=1e-6, atol=1e-6)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        predict_blockwise(name, 0, f"{folder}/in.zarr/raw", output, store=store, **FP32)


def test_failing_block_is_reported(setup):
    store, name, folder, raw = setup
    write_zarr_array(folder / "broken.zarr", "raw", raw, voxel_size=(1, 1), chunks=(16, 16))
    (folder / "broken.zarr" / "raw" / "2.2").write_bytes(b"not a chunk")
    with pytest.raises(BlockwisePredictionError, match="not predicted") as error:
        # One tile per block: blocks of several tiles would all read the broken chunk.
        predict_blockwise(
            name, 0, f"{folder}/broken.zarr/raw", f"{folder}/broken_out.zarr/pred",
            workers=2, store=store, max_retries=1, tiles_per_block=1, **FP32,
        )
    # exactly the blocks that read the broken chunk failed; all others were written
    context = TileGeometry.for_model(load_run(name, store)[0].model, Coordinate(1, 1)).context
    chunk = Roi((32, 32), (16, 16))
    failed = error.value.failed_rois
    assert failed and all(r.grow(context, context).intersects(chunk) for r in failed)
    output = folder / "broken_out.zarr" / "pred"
    assert len(blocks_of(output)) + len(failed) == 4 * 3  # 50x44 in tiles of 16x16
    # The report says what failed and where the workers' logs are, not daisy's advice for
    # its Python API.
    message = str(error.value)
    assert "Task(" not in message and "return_states" not in message
    assert "Last error: " in message and "File \"" not in message
    assert f"{folder / 'broken_out.zarr.blocks' / 'pred' / 'logs'}" in message


def test_bad_arguments(setup):
    store, name, folder, _ = setup
    with pytest.raises(ValueError, match="placeholder"):
        predict_blockwise(name, 0, f"{folder}/in.zarr/raw", f"{folder}/x.zarr/p",
                          store=store, worker_command="bsub")
    with pytest.raises(ValueError, match="names no zarr container"):
        predict_blockwise(name, 0, f"{folder}/in.zarr/raw", f"{folder}/x/p", store=store)


def test_predict_command_with_workers(setup):
    store, name, folder, raw = setup
    expected = predict(name, 0, raw, voxel_size=(1, 1), store=store, **FP32)
    args = ["predict", "--run", name, "--checkpoint", "0", f"{folder}/in.zarr/raw",
            f"{folder}/cli.zarr/pred", "--store", str(store.root), "--device", "cpu",
            "--precision", "fp32", "--workers", "2", "--roi", "16,0:32,44"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"Predicting the input {folder}/in.zarr/raw block by block with 2 worker(s)" in (
        result.output)
    np.testing.assert_allclose(zarr.open_array(f"{folder}/cli.zarr/pred", mode="r")[:],
                               expected[:, 16:48], rtol=1e-6, atol=1e-6)
    result = CliRunner().invoke(main, [*args[:-2], "--roi", "16:32"])
    assert result.exit_code == 1 and "2 spatial axes" in result.output
    result = CliRunner().invoke(main, [*args[:-2], "--roi", "a:b"])
    assert result.exit_code == 2 and "OFFSET:SHAPE" in result.output
    result = CliRunner().invoke(main, [*args, "--labels"])
    assert result.exit_code == 2 and "--labels" in result.output
    result = CliRunner().invoke(main, [*args[:-4], "--roi", "16,0:32,44"])
    assert result.exit_code == 2 and "need --workers" in result.output


@pytest.mark.filterwarnings("always::napari_dacapo.predict.VoxelSizeWarning")
def test_predict_command_with_workers_warns_of_another_voxel_size_once(setup, tmp_path):
    """Once, before the workers start; not again by every worker (into its log)."""
    store, name, _, raw = setup
    write_zarr_array(tmp_path / "coarse.zarr", "raw", raw, voxel_size=(2, 2))
    result = CliRunner().invoke(main, [
        "predict", "--run", name, "--checkpoint", "0", f"{tmp_path}/coarse.zarr/raw",
        f"{tmp_path}/out.zarr/pred", "--store", str(store.root), "--device", "cpu",
        "--workers", "2"])
    assert result.exit_code == 0, result.output
    said = ("Warning: The input's voxel size (2, 2) differs from the voxel size of the data run "
            "'blockwise' was trained on, (1, 1)")
    assert result.output.count(said) == 1, result.output
    assert result.output.index(said) < result.output.index("block/s")  # before the workers
    logs = [p for p in (tmp_path / "out.zarr.blocks").rglob("*") if p.is_file()
            and "logs" in p.parts]
    assert logs and not [p for p in logs if "voxel size" in p.read_text(errors="replace")]


def test_block_layout(setup):
    """Blocks of whole tiles: as many as one grouped read holds, yet 2 blocks per worker."""
    store, name, folder, _ = setup
    model = load_run(name, store)[0].model
    raw = ZarrArrayConfig(name="in", file_name=folder / "in.zarr", dataset="raw").array()
    out = folder / "layout.zarr/pred"  # 50x44: 4 x 3 tiles of 16x16
    layout = BlockLayout.plan(model, raw, None, out, workers=2)
    assert (layout.tiles_per_block, layout.num_blocks, layout.tile_shape) == (2, 4, (16, 16))
    assert BlockLayout.plan(model, raw, None, out, workers=1).num_blocks == 2
    assert BlockLayout.plan(model, raw, None, out, workers=8).tiles_per_block == 1

    big = BlockLayout.plan(model, raw, Roi((0, 0), (2**20, 2**20)), out, workers=2)
    k, context = big.tiles_per_block, big.geometry.context
    step = big.step()
    assert step.write_roi.shape == (16 * k, 16 * k)
    assert step.read_roi.shape == step.write_roi.shape + context * 2
    # One read per block, and the largest block that allows it.
    assert math.prod(step.read_roi.shape) <= GROUP_READ_VOXELS
    assert math.prod(step.read_roi.shape + 16) > GROUP_READ_VOXELS
    assert model.num_out_channels * math.prod(step.write_roi.shape) <= GROUP_READ_VOXELS
    with pytest.raises(ValueError, match="give at least 1"):
        BlockLayout.plan(model, raw, None, out, workers=2, tiles_per_block=0)


def test_worker_threads(setup):
    """Local workers share the cores out; a job resumed with other workers keeps its blocks
    and takes the new thread count."""
    store, name, folder, _ = setup
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert threads_per_worker(2, None) == max(1, cores // 2)
    assert threads_per_worker(2, "srun {command}") is None  # the cluster's machines decide
    assert threads_per_worker(2, "srun {command}", 3) == 3
    with pytest.raises(ValueError, match="at least 1 thread"):
        predict_blockwise(name, 0, f"{folder}/in.zarr/raw", f"{folder}/t.zarr/p", store=store,
                          threads=0)
    # The worker's limit holds for torch started after it.
    code = ("from napari_dacapo.blockwise.scheduler import _limit_threads; _limit_threads(1); "
            "import os, torch; print(torch.get_num_threads(), os.environ['RAYON_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.split() == ["1", "1"]

    output = folder / "threads.zarr" / "pred"
    predict_blockwise(name, 0, f"{folder}/in.zarr/raw", output, workers=2, store=store, **FP32)
    job_file = folder / "threads.zarr.blocks" / "pred" / "job.yaml"
    job = yaml.safe_load(job_file.read_text())
    assert (job["threads"], job["tiles_per_block"]) == (max(1, cores // 2), 2)
    done = blocks_of(output)
    # One worker would lay out 2 blocks; the job keeps its 4, all done: nothing is redone.
    args = ["predict", "--run", name, "--checkpoint", "0", f"{folder}/in.zarr/raw",
            str(output), "--store", str(store.root), "--device", "cpu", "--precision", "fp32",
            "--workers", "1", "--worker-threads", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(job_file.read_text())
    assert (job["threads"], job["tiles_per_block"]) == (3, 2) and blocks_of(output) == done
    with pytest.raises(FileExistsError, match=r"tiles_per_block \(1 here, 2 recorded\) differs"):
        predict_blockwise(name, 0, f"{folder}/in.zarr/raw", output, workers=1,
                          tiles_per_block=1, store=store, **FP32)


@pytest.mark.filterwarnings("ignore::napari_dacapo.predict.VoxelSizeWarning")
def test_blockwise_outputs_open_where_their_input_opens(setup):
    """An input saved from layers at a fractional scale records its world factor; the
    prediction and the labels made from it take it over, so napari places all three alike."""
    from napari_dacapo._reader import read_zarr
    from napari_dacapo.blockwise import segment_blockwise

    _, name, folder, raw = setup
    store = FileStore(folder / "runs_scaled")  # a run of its own, with a best recorded
    run = Run(tiny_config(2, name=name), store=store)
    store.store_run_config(run.config)
    store.store_checkpoint(name, 0, run.model, run.optimizer)
    store.store_best(name, None, "blob__dice", 0, run.task.parameters[0].id, 0.5)
    write_zarr_array(folder / "scaled.zarr", "raw", raw, voxel_size=(5, 5))
    zarr.open_array(str(folder / "scaled.zarr"), path="raw", mode="r+").attrs[
        "napari_dacapo"] = {"world_factor": 10, "units": ["um", "um"]}
    prediction = predict_blockwise(name, 0, f"{folder}/scaled.zarr/raw",
                                   folder / "scaled_out.zarr/pred", workers=1, store=store)
    labels = segment_blockwise(name, prediction, folder / "scaled_out.zarr/labels", workers=1,
                               criterion="blob__dice", store=store)
    (_, placed, _), = read_zarr(folder / "scaled.zarr", "raw")
    for output in (prediction, labels):
        (_, meta, _), = read_zarr(output.parent, output.name)
        np.testing.assert_allclose(meta["scale"][-2:], placed["scale"])  # 0.5, not 5
        np.testing.assert_allclose(meta["translate"][-2:], placed["translate"])
        assert meta["units"][-2:] == ("um", "um")


def nothing_written(*paths):
    """None of ``paths`` (container.zarr/dataset) exists, nor its job folder."""
    return not any(
        p.exists() or (p.parent.parent / f"{p.parent.name}.blocks" / p.name).exists()
        for p in paths
    )


def test_unusable_checkpoint_or_device_is_refused_before_any_output(setup, tmp_path,
                                                                      monkeypatch):
    """The workers would each fail on it, block after block, after the output was made."""
    _, name, folder, _ = setup
    shutil.copytree(setup[0].root, tmp_path / "runs")
    store = FileStore(tmp_path / "runs")
    broken = store.checkpoint_path(name, 7)
    broken.write_bytes(store.checkpoint_path(name, 0).read_bytes()[:100])
    output = tmp_path / "out.zarr" / "pred"
    raw = f"{folder}/in.zarr/raw"
    with pytest.raises(CheckpointError, match="cannot be read.*Delete that file"):
        predict_blockwise(name, 7, raw, output, store=store, **FP32)
    with pytest.raises(ValueError, match="'foo' is not a device name"):
        predict_blockwise(name, 0, raw, output, store=store, device="foo")
    with pytest.raises(ValueError, match="'foo' is not a device name"):
        predict_blockwise(name, 0, raw, output, store=store, device="foo",
                          worker_command="srun {command}")
    with pytest.raises(ValueError, match="fp16"):
        predict_blockwise(name, 0, raw, output, store=store, device="cpu", precision="fp16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available.*choose device 'cpu'"):
        predict_blockwise(name, 0, raw, output, store=store, device="cuda")
    result = CliRunner().invoke(main, [
        "predict", "--run", name, "--checkpoint", "7", raw, str(output), "--store",
        str(store.root), "--workers", "2",
    ])
    assert result.exit_code == 1 and "Error: Checkpoint" in result.output, result.output
    assert "Traceback" not in result.output
    assert nothing_written(output)


@pytest.mark.filterwarnings("ignore::napari_dacapo.predict.VoxelSizeWarning")
def test_regions_must_lie_inside_the_input(setup, tmp_path):
    store, name, folder, raw = setup
    output = tmp_path / "out.zarr" / "pred"
    source = f"{folder}/in.zarr/raw"  # 50 x 44, voxel size 1

    def refused(roi, match, input_path=source):
        with pytest.raises(ValueError, match=match):
            predict_blockwise(name, 0, input_path, output, roi=roi, store=store, **FP32)

    refused(Roi((0, 0), (0, 5)), "no positive size")
    refused(Roi((0, 0), (-5, 5)), "no positive size")
    refused(Roi((300, 300), (50, 50)), r"do not overlap \(the input covers 0,0:50,44\)")
    refused(Roi((-100, -100), (50, 50)), "do not overlap")
    refused(Roi((0, 0), (1000, 1000)), "reaches outside it. Use its part inside, 0,0:50,44")
    refused(Roi((40, -4), (20, 20)), "Use its part inside, 40,0:10,16")
    refused(Roi((0, 0, 0), (5, 5, 5)), "2 spatial axes")
    write_zarr_array(tmp_path / "coarse.zarr", "raw", raw, voxel_size=(2, 2))
    refused(Roi((1, 0), (10, 10)), r"not on the voxel grid.*multiples of \(2, 2\). Use 0,0:12,10",
            input_path=f"{tmp_path}/coarse.zarr/raw")
    # The layout itself refuses an empty region (it divided by zero).
    model = load_run(name, store)[0].model
    array = ZarrArrayConfig(name="in", file_name=folder / "in.zarr", dataset="raw").array()
    with pytest.raises(ValueError, match="no positive size"):
        BlockLayout.plan(model, array, Roi((0, 0), (0, 16)), output, workers=2)

    args = ["predict", "--run", name, "--checkpoint", "0", source, str(output), "--store",
            str(store.root), "--workers", "2", "--roi"]
    for roi, code, message in (("0,0:-5,5", 2, "Invalid value for --roi"),
                               ("0,0:5", 2, "one of each per spatial axis"),
                               ("300,300:50,50", 1, "do not overlap")):
        result = CliRunner().invoke(main, [*args, roi])
        assert result.exit_code == code and message in result.output, result.output
        assert "Traceback" not in result.output
        assert "block by block" not in result.output  # refused alone, nothing started
    assert nothing_written(output)


def test_the_input_is_never_the_output(setup, tmp_path, monkeypatch):
    """Even with overwrite: the prediction would replace the user's raw data."""
    store, name, folder, raw = setup
    write_zarr_array(tmp_path / "in.zarr", "volumes/raw", raw, voxel_size=(1, 1))
    monkeypatch.chdir(tmp_path)
    source = f"{tmp_path}/in.zarr/volumes/raw"
    for output, match in (("./in.zarr/volumes/raw/", "is the input itself"),
                          (source, "is the input itself"),
                          ("in.zarr/volumes", "one inside the other"),
                          ("in.zarr", "names no dataset")):
        with pytest.raises(ValueError, match=match):
            predict_blockwise(name, 0, source, output, store=store, overwrite=True, **FP32)

    def boom(*args, **kwargs):
        raise AssertionError("predicted before the output was checked")

    monkeypatch.setattr("napari_dacapo.predict.predict_tiles", boom)
    args = ["predict", "--run", name, "--checkpoint", "0", "in.zarr/volumes/raw", "--store",
            str(store.root), "--device", "cpu"]
    for output, message in ((source, "is the input itself"), ("out.zarr", "names no dataset")):
        result = CliRunner().invoke(main, [*args, output, "--overwrite"])
        assert result.exit_code == 1 and message in result.output, result.output
    np.testing.assert_array_equal(zarr.open_array(source, mode="r")[:], raw)
    assert not (tmp_path / "out.zarr").exists()


def test_jobs_record_the_input_absolute_so_workers_start_anywhere(setup, tmp_path,
                                                                    monkeypatch):
    store, name, folder, raw = setup
    expected = predict(name, 0, raw, voxel_size=(1, 1), store=store, **FP32)
    output = tmp_path / "anywhere.zarr" / "pred"
    monkeypatch.chdir(folder)
    predict_blockwise(name, 0, "in.zarr/raw", output, workers=1, store=store,
                      worker_command="cd / && {command}", **FP32)
    np.testing.assert_allclose(zarr.open_array(output, mode="r")[:], expected, rtol=1e-6,
                               atol=1e-6)
    job = recorded_job(output.parent, output.name)
    assert job.input["file_name"] == str((folder / "in.zarr").resolve())
    # The same job, typed from elsewhere with the absolute path: it resumes (all done).
    monkeypatch.chdir(tmp_path)
    done = blocks_of(output)
    predict_blockwise(name, 0, f"{folder}/in.zarr/raw", output, workers=1, store=store,
                      worker_command="cd / && {command}", **FP32)
    assert blocks_of(output) == done


def test_replacing_an_output_discards_its_blockwise_records(setup, tmp_path):
    """A later run of the blockwise job must not take the new contents for its own."""
    store, name, folder, _ = setup
    output = tmp_path / "out.zarr" / "pred"
    source = f"{folder}/in.zarr/raw"
    predict_blockwise(name, 0, source, output, workers=1, store=store, **FP32)
    blockwise_stamp = output_stamp(output.parent, output.name)
    assert blockwise_stamp and recorded_job(output.parent, output.name) is not None
    with pytest.raises(FileExistsError,
                       match=r"its tiles_per_block \(1 here, 3 recorded\) differs from the job "
                             r"recorded in .*To replace it, pass overwrite=True, or choose"):
        predict_blockwise(name, 0, source, output, workers=1, tiles_per_block=1, store=store,
                          **FP32)

    result = CliRunner().invoke(main, [
        "predict", "--run", name, "--checkpoint", "0", source, str(output), "--store",
        str(store.root), "--device", "cpu", "--precision", "fp32", "--overwrite",
    ])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out.zarr.blocks" / "pred").exists()
    assert output_stamp(output.parent, output.name) not in (None, blockwise_stamp)
    with pytest.raises(FileExistsError, match="no such job is recorded"):
        predict_blockwise(name, 0, source, output, workers=1, store=store, **FP32)


def test_worker_errors_are_summarised():
    daisy_error = (
        "task 'predict_p' was abandoned (worker restart cap exhausted): workers failed 12 "
        "times. Last worker error:\n    block processing failed: Traceback (most recent "
        "call last):\n      File \"x.py\", line 1, in f\n        g()\n        ^^^\n    "
        "CheckpointError: Checkpoint 1.pt cannot be read. Delete that file.\n"
        f"{_DAISY_ADVICE}max_worker_restarts=...); use run_blockwise(..., "
        "return_states=True) to inspect task states."
    )
    assert _worker_error_summary(daisy_error) == (
        "task 'predict_p' was abandoned (worker restart cap exhausted): workers failed 12 "
        "times. Last worker error: block processing failed: CheckpointError: Checkpoint "
        "1.pt cannot be read. Delete that file"
    )
    assert _worker_error_summary(None) == "none reported"


def test_predict_command_scales_an_image_by_its_own_intensities(setup, tmp_path):
    """--intensities image: a brighter image than the training data is scaled from its own
    percentiles, measured once over the whole input, alike in-process and blockwise; so is
    one for a run trained without a range on uint8 images (divided by 255, about 0-1),
    for which the uint16 image is on another scale."""
    from napari_dacapo.experiments import IntensitiesArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        intensity_range,
    )

    store, name, folder, raw = setup
    config = store.retrieve_run_config(name)
    split = config.datasplit_config
    train = split.train_configs[0]
    ranged = config.replace(name="ranged", datasplit_config=split.replace(
        train_configs=[train.replace(raw_config=IntensitiesArrayConfig(
            name="scaled", source_array_config=train.raw_config, min=0, max=200))],
        validate_configs=[]))
    # Seeded large weights: an unseeded init's output may be constant, whatever the input
    # (the test then failed at random).
    store_random_weights(store, ranged)
    bright = (raw.astype(np.float32) * 3 + 100).astype(np.uint16)
    write_zarr_array(tmp_path / "bright.zarr", "raw", bright, voxel_size=(1, 1))
    own = intensity_range(bright)
    expected = predict("ranged", 0, bright, store=store, rescale=(own.low, own.high), **FP32)
    assert not np.allclose(expected, predict("ranged", 0, bright, store=store, **FP32))

    base = ["predict", "--run", "ranged", "--checkpoint", "0", f"{tmp_path}/bright.zarr/raw",
            "--store", str(store.root), "--device", "cpu", "--precision", "fp32",
            "--intensities", "image"]
    for output, extra in (("tiles.zarr/pred", []), ("blocks.zarr/pred", ["--workers", "1"])):
        result = CliRunner().invoke(main, [*base, f"{tmp_path}/{output}", *extra])
        assert result.exit_code == 0, result.output
        assert f"Intensities {own.low:.5g}–{own.high:.5g} are scaled to 0–1" in result.output
        np.testing.assert_allclose(zarr.open_array(f"{tmp_path}/{output}", mode="r")[:],
                                   expected, rtol=1e-6, atol=1e-6)
    job = yaml.safe_load((tmp_path / "blocks.zarr.blocks" / "pred" / "job.yaml").read_text())
    assert job["rescale"] == [own.low, own.high]
    # Given as numbers, the same range gives the same prediction.
    given = [*base[:-1], f"{own.low},{own.high}", f"{tmp_path}/given.zarr/pred"]
    assert CliRunner().invoke(main, given).exit_code == 0
    np.testing.assert_allclose(zarr.open_array(f"{tmp_path}/given.zarr/pred", mode="r")[:],
                               expected, rtol=1e-6, atol=1e-6)

    unranged = [*base[:2], name, *base[3:]]
    for output, extra in (("eight.zarr/pred", []), ("eight_blocks.zarr/pred", ["--workers", "1"])):
        result = CliRunner().invoke(main, [*unranged, f"{tmp_path}/{output}", *extra])
        assert result.exit_code == 0, result.output
        assert f"Intensities {own.low:.5g}–{own.high:.5g} are scaled to 0–1" in result.output
        assert "Warning" not in result.output
    for bad in ("200,100", "-inf,5"):
        result = CliRunner().invoke(main, [*base[:-1], bad, f"{tmp_path}/bad.zarr/pred"])
        assert result.exit_code == 2 and "finite numbers, LOW below HIGH" in result.output


def test_an_interrupted_prediction_is_marked_incomplete_until_finished(setup, tmp_path,
                                                                       monkeypatch):
    """From when the output is made until its last block: a killed job leaves an output
    that says it is incomplete and how to finish it (as the CLI's refusal does)."""
    import napari_dacapo.blockwise.prediction as prediction

    store, name, folder, raw = setup
    output = tmp_path / "out.zarr" / "pred"
    source = f"{folder}/in.zarr/raw"
    real_run_step = prediction.run_step

    def killed(job, step, **options):  # as a kill after the first block
        real_run_step(job, step, **{**options, "workers": 1})
        marker = sorted(p for p in job.folder.iterdir() if p.name.isdigit())[0]
        for other in job.folder.iterdir():
            if other.name.isdigit() and other != marker:
                other.unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(prediction, "run_step", killed)
    with pytest.raises(KeyboardInterrupt):
        predict_blockwise(name, 0, source, output, workers=2, store=store, **FP32)
    unfinished = incomplete_output(output.parent, output.name)
    # With its iteration: a checkpoint named latest or best:<criterion> moves on.
    assert unfinished and ("rerun the same predict command (with --workers and --checkpoint 0)"
                           in unfinished)
    result = CliRunner().invoke(main, [
        "predict", "--run", name, "--checkpoint", "0", source, str(output), "--store",
        str(store.root), "--device", "cpu"])
    assert result.exit_code == 1 and "already exists and is incomplete: the blockwise " \
        "prediction writing it was interrupted" in result.output, result.output

    monkeypatch.setattr(prediction, "run_step", real_run_step)
    predict_blockwise(name, 0, source, output, workers=2, store=store, **FP32)
    assert incomplete_output(output.parent, output.name) is None
    np.testing.assert_allclose(
        zarr.open_array(output, mode="r")[:],
        predict(name, 0, raw, voxel_size=(1, 1), store=store, **FP32), rtol=1e-6, atol=1e-6)


def test_an_interrupted_predict_command_is_marked_incomplete(setup, tmp_path, monkeypatch):
    """In-process: the array is marked from when it is made until its last tile; a rerun
    without --overwrite says it is incomplete."""
    import napari_dacapo.predict as predict_module

    store, name, folder, _ = setup
    output = tmp_path / "out.zarr" / "pred"
    real_predict_tiles = predict_module.predict_tiles

    def interrupted(*args, **kwargs):
        events = real_predict_tiles(*args, **kwargs)
        yield next(events)  # the start
        yield next(events)  # one tile
        raise RuntimeError("killed")

    args = ["predict", "--run", name, "--checkpoint", "0", f"{folder}/in.zarr/raw",
            str(output), "--store", str(store.root), "--device", "cpu"]
    monkeypatch.setattr(predict_module, "predict_tiles", interrupted)
    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, RuntimeError), result.output
    assert incomplete_output(output.parent, output.name)
    # Opened in napari, it says so.
    from napari_dacapo._reader import array_layer

    with pytest.warns(UserWarning, match=r"out.zarr/pred is incomplete: the predict command"):
        array_layer(output.parent, output.name, "pred")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "already exists and is incomplete: the predict " \
        "command writing it was interrupted" in result.output, result.output
    assert "predict it again with --overwrite" in result.output
    monkeypatch.setattr(predict_module, "predict_tiles", real_predict_tiles)
    result = CliRunner().invoke(main, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert incomplete_output(output.parent, output.name) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        array_layer(output.parent, output.name, "pred")


@pytest.mark.filterwarnings("always::napari_dacapo.predict.NonFiniteWarning")
def test_nan_in_a_prediction_is_warned_of_on_every_path(setup, tmp_path):
    """Blockwise: the workers note it in their blocks' markers, the parent warns once."""
    _, name, _, raw = setup
    shutil.copytree(setup[0].root, tmp_path / "runs")
    store = FileStore(tmp_path / "runs")  # with a best recorded, for --labels
    parameters = load_run(name, store)[0].task.parameters[0].id
    store.store_best(name, None, "blob__dice", 0, parameters, 0.5)
    holey = raw.astype(np.float32) / 255  # 0-1, as the uint8 training data became
    holey[20:24, 20:24] = np.nan
    write_zarr_array(tmp_path / "nan.zarr", "raw", holey, voxel_size=(1, 1))
    source = f"{tmp_path}/nan.zarr/raw"
    with pytest.warns(NonFiniteWarning, match=r"NaN or infinite.*\(in \d+ of \d+ blocks"):
        output = predict_blockwise(name, 0, source, tmp_path / "api.zarr/pred", workers=2,
                                   store=store, **FP32)
    assert np.isnan(zarr.open_array(output, mode="r")[:]).any()

    base = ["predict", "--run", name, "--checkpoint", "0", source, "--store",
            str(store.root), "--device", "cpu"]
    for output, extra in (("labels.zarr/l", ["--labels", "--criterion", "blob__dice"]),
                          ("blocks.zarr/p", ["--workers", "2"]),
                          ("tiles.zarr/p", [])):
        result = CliRunner().invoke(main, [*base, f"{tmp_path}/{output}", *extra])
        assert result.exit_code == 0, result.output
        assert result.output.count("Warning: The prediction holds NaN") == 1, result.output


def test_outputs_join_an_existing_container_in_its_zarr_format(setup, tmp_path):
    """A zarr format 3 container takes format 3 arrays, with no option to give."""
    store, name, folder, raw = setup
    zarr.open_group(tmp_path / "v3.zarr", mode="w", zarr_format=3)
    source = f"{folder}/in.zarr/raw"
    predict_blockwise(name, 0, source, tmp_path / "v3.zarr/blocks", workers=1, store=store,
                      **FP32)
    result = CliRunner().invoke(main, [
        "predict", "--run", name, "--checkpoint", "0", source, f"{tmp_path}/v3.zarr/tiles",
        "--store", str(store.root), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for dataset in ("blocks", "tiles"):
        assert (tmp_path / "v3.zarr" / dataset / "zarr.json").exists()
        assert zarr.open_array(tmp_path / "v3.zarr", path=dataset, mode="r").shape[1:] == (
            raw.shape)


def test_an_output_where_no_folder_can_be_made_is_refused_before_predicting(setup, tmp_path,
                                                                             monkeypatch):
    """As root, os.access allows /proc; making the container would fail after predicting."""
    store, name, folder, _ = setup
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc")
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)  # as root sees it
    with pytest.raises(ValueError, match="/proc/x.zarr cannot be created: no folder can be "
                                         "made in /proc"):
        check_output_path("/proc/x.zarr/p")
    for extra in ([], ["--workers", "2"]):
        result = CliRunner().invoke(main, [
            "predict", "--run", name, "--checkpoint", "0", f"{folder}/in.zarr/raw",
            "/proc/x.zarr/p", "--store", str(store.root), "--device", "cpu", *extra])
        assert result.exit_code == 1 and "cannot be created" in result.output, result.output
        assert "tile/s" not in result.output and "block/s" not in result.output
    check_output_path(tmp_path / "new" / "out.zarr" / "p")  # a folder that can be made
    assert not any(tmp_path.iterdir())  # and the check leaves nothing behind


def test_a_region_outside_the_data_is_said_before_its_grid():
    """A grid region around one that reaches outside reaches outside too."""
    bounds = Roi((0, 0), (1536, 1536))
    with pytest.raises(ValueError, match="reaches outside it. Use its part inside, "
                                         "0,0:1536,1536") as error:
        check_roi(Roi((0, 0), (9999, 9999)), bounds, (8, 8), "prediction p.zarr/p", "yx")
    assert "voxel grid" not in str(error.value)
    with pytest.raises(ValueError, match="Use its part inside, 8,0:1528,1536"):
        check_roi(Roi((9, 0), (9999, 9999)), bounds, (8, 8), "prediction p.zarr/p", "yx")


def test_an_in_memory_array_is_refused_with_the_fix(setup, tmp_path):
    store, name, _, raw = setup
    with pytest.raises(TypeError, match="from a zarr array.*not a ndarray.*Write the array "
                                        r"to zarr first.*predict\(\)"):
        predict_blockwise(name, 0, raw, tmp_path / "out.zarr/pred", store=store)
    assert nothing_written(tmp_path / "out.zarr" / "pred")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_outputs_join_a_container_with_consolidated_metadata(setup, tmp_path, zarr_format):
    """Such containers (OME-Zarr, CellMap) list only the arrays made before their metadata
    was consolidated: outputs are written, read back and listed all the same."""
    from napari_dacapo._reader import get_reader

    store, name, folder, raw = setup
    container = tmp_path / "consolidated.zarr"
    group = zarr.open_group(str(container), mode="w", zarr_format=zarr_format)
    group.create_array("other", shape=(4,), dtype="f4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: not in format 3's spec
        zarr.consolidate_metadata(str(container))
    expected = predict(name, 0, raw, voxel_size=(1, 1), store=store, **FP32)
    base = ["predict", "--run", name, "--checkpoint", "0", f"{folder}/in.zarr/raw",
            "--store", str(store.root), "--device", "cpu", "--precision", "fp32"]
    for dataset, extra in (("tiles", []), ("blocks", ["--workers", "1"])):
        result = CliRunner().invoke(main, [*base, f"{container}/{dataset}", *extra])
        assert result.exit_code == 0, result.output
        np.testing.assert_allclose(zarr.open_array(str(container), path=dataset, mode="r")[:],
                                   expected, rtol=1e-6, atol=1e-6)
    # Readers that go by the consolidated metadata (zarr's default) see them too.
    assert {"other", "tiles", "blocks"} <= set(zarr.open_group(str(container), mode="r"))
    names = [layer[1]["name"] for layer in get_reader(str(container))(str(container))]
    assert {"tiles", "blocks"} <= set(names)
    # An array the metadata lists with another shape is replaced, not read as it was.
    result = CliRunner().invoke(main, [*base, f"{container}/other", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert zarr.open_array(str(container), path="other", mode="r").shape == expected.shape


def test_ctrl_c_ends_a_worker_at_once_without_a_traceback():
    """Ctrl-C reaches every process of the terminal's group: a worker ends quietly (each
    worker's traceback buried the job's own message under hundreds of lines)."""
    code = ("import os, signal, time; "
            "from napari_dacapo.blockwise.scheduler import _quiet_on_interrupt; "
            "_quiet_on_interrupt(); os.kill(os.getpid(), signal.SIGINT); time.sleep(30)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130 and done.stderr == ""


def test_ctrl_c_during_a_blockwise_command_says_how_to_finish(setup, tmp_path, monkeypatch):
    """As train: one message that says how to finish, and exit code 128 + the signal's."""
    store, name, folder, _ = setup

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("napari_dacapo.blockwise.predict_blockwise", interrupted)
    result = CliRunner().invoke(main, [
        "predict", "--run", name, "--checkpoint", "0", f"{folder}/in.zarr/raw",
        f"{tmp_path}/out.zarr/p", "--store", str(store.root), "--workers", "1"])
    assert result.exit_code == 130, result.output
    assert result.output.count("Stopped (Ctrl-C)") == 1
    assert "To finish the job, run the same command again." in result.output


STALLED_BLOCKS = """
import os
if os.environ.get("NAPARI_DACAPO_TEST_STALL"):
    import time
    from napari_dacapo.blockwise import prediction

    def stalled(self, block):
        # Says it started, then takes long: ended from outside, never finished here.
        folder = os.environ["NAPARI_DACAPO_TEST_STALL"]
        open(os.path.join(folder, f"started-{os.getpid()}"), "w").close()
        time.sleep(300)

    prediction._BlockPredictor.__call__ = stalled
"""


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (an exited process may wait, as a
    zombie, for its parent to note its end)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize(("signum", "to_group", "worker_command"), [
    (signal.SIGTERM, False, None),  # a batch system's time limit
    (signal.SIGINT, True, None),  # Ctrl-C in a terminal: the whole process group
    # Workers started by a command template (here: the shell), with the command's process.
    (signal.SIGTERM, False, "exec {command}"),
    (signal.SIGINT, True, "exec {command}"),
    (signal.SIGKILL, False, None),  # nothing runs in the parent: its workers follow it
])
def test_a_stop_signal_ends_the_workers_before_the_command_exits(
    setup, tmp_path, signum, to_group, worker_command
):
    """Every worker has ended when the command exits (a requeued job must not race with
    workers of the old one still writing blocks), without a traceback, with one message
    and exit code 128 + the signal's number."""
    store, name, folder, _ = setup
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "sitecustomize.py").write_text(STALLED_BLOCKS)
    started = tmp_path / "started"
    started.mkdir()
    env = {**os.environ, "NAPARI_DACAPO_TEST_STALL": str(started), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "hooks"),
                                          os.environ.get("PYTHONPATH", "")])}
    output = tmp_path / "out.zarr" / "pred"
    command = [sys.executable, "-m", "napari_dacapo.cli", "predict", "--run", name,
               "--checkpoint", "0", f"{folder}/in.zarr/raw", str(output), "--store",
               str(store.root), "--device", "cpu", "--workers", "2"]
    if worker_command:
        command += ["--worker-command", worker_command]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while len(list(started.iterdir())) < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "the workers did not start their blocks"
            time.sleep(0.1)
        workers = [int(p.name.split("-")[1]) for p in started.iterdir()]
        assert len(workers) == 2, process.communicate()
        if to_group:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    if signum == signal.SIGKILL:
        deadline = time.monotonic() + 60  # they notice that their parent is gone
        while [pid for pid in workers if running(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not [pid for pid in workers if running(pid)]
    job_folder = tmp_path / "out.zarr.blocks" / "pred"
    assert not [p for p in job_folder.iterdir() if p.name.isdigit()]  # no block finished
    assert incomplete_output(output.parent, output.name)
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
        return
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err and "Error" not in err, err
    assert err.count("Stopped (") == 1 and "run the same command again" in err, err


def interrupt_after_one_block(monkeypatch):
    """Make the next blockwise prediction stop as a kill after its first block would:
    one done marker, then KeyboardInterrupt."""
    import napari_dacapo.blockwise.prediction as prediction

    real_run_step = prediction.run_step

    def killed(job, step, **options):
        real_run_step(job, step, **{**options, "workers": 1})
        markers = sorted(p for p in job.folder.iterdir() if p.name.isdigit())
        for other in markers[1:]:
            other.unlink()
        monkeypatch.setattr(prediction, "run_step", real_run_step)
        raise KeyboardInterrupt

    monkeypatch.setattr(prediction, "run_step", killed)


def test_an_unfinished_job_of_another_iteration_names_the_one_that_finishes_it(
    setup, tmp_path, monkeypatch
):
    """'latest' and best:<criterion> move on while a run trains: rerunning the same
    command then names another checkpoint than the job that wrote the output; the refusal
    names the job's iteration, which finishes it, in the words of the caller."""
    _, name, folder, raw = setup
    shutil.copytree(setup[0].root, tmp_path / "runs")
    store = FileStore(tmp_path / "runs")
    source, output = f"{folder}/in.zarr/raw", tmp_path / "out.zarr" / "pred"
    interrupt_after_one_block(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        predict_blockwise(name, "latest", source, output, workers=2, store=store, **FP32)
    assert "--checkpoint 0" in incomplete_output(output.parent, output.name)
    # The run trains on: latest is iteration 5 now.
    shutil.copy(store.checkpoint_path(name, 0), store.checkpoint_path(name, 5))

    with pytest.raises(FileExistsError, match=(
            r"its iteration \(5 here, 0 recorded\) differs from the job recorded in .*job.yaml"
            r"\)\. It is incomplete: the prediction writing it was interrupted or is still "
            r"running\. To finish it, predict with checkpoint=0 \(its finished blocks are "
            r"kept\)\. To replace it, pass overwrite=True, or choose another output\.$")):
        predict_blockwise(name, "latest", source, output, workers=2, store=store, **FP32)
    args = ["predict", "--run", name, "--checkpoint", "latest", source, str(output),
            "--store", str(store.root), "--device", "cpu", "--precision", "fp32",
            "--workers", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert ("To finish it, rerun the command with --checkpoint 0 (its finished blocks are "
            "kept). To replace it, pass --overwrite, or choose another OUTPUT.") in (
        result.output), result.output
    assert "overwrite=True" not in result.output and "checkpoint=" not in result.output

    # Its checkpoint pruned since: it cannot be finished, only replaced.
    kept = shutil.move(store.checkpoint_path(name, 0), tmp_path / "0.pt")
    with pytest.raises(FileExistsError, match="It cannot be finished: the checkpoint of its "
                       "iteration 0 is no longer stored. To replace it, pass overwrite=True"):
        predict_blockwise(name, "latest", source, output, workers=2, store=store, **FP32)
    shutil.move(kept, store.checkpoint_path(name, 0))

    result = CliRunner().invoke(main, [*args[:4], "0", *args[5:]])
    assert result.exit_code == 0, result.output
    assert "1 of 4 blocks was predicted already; predicting the other 3." in result.output
    assert incomplete_output(output.parent, output.name) is None
    np.testing.assert_allclose(zarr.open_array(output, mode="r")[:],
                               predict(name, 0, raw, voxel_size=(1, 1), store=store, **FP32),
                               rtol=1e-6, atol=1e-6)


def test_a_rerun_says_how_many_blocks_were_done_already(setup, tmp_path):
    store, name, folder, _ = setup
    output = tmp_path / "out.zarr" / "pred"
    args = ["predict", "--run", name, "--checkpoint", "0", f"{folder}/in.zarr/raw",
            str(output), "--store", str(store.root), "--device", "cpu", "--workers", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "block by block with 2 worker(s)\n" in result.output  # nothing done before
    done = blocks_of(output)
    for block in sorted(done)[:3]:  # as a job stopped after one block leaves it
        (tmp_path / "out.zarr.blocks" / "pred" / block).unlink()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert ("block by block with 2 worker(s): 1 of 4 blocks was predicted already; "
            "predicting the other 3.\n") in result.output
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (f"{output} is complete: all 4 blocks were predicted already; nothing is left to "
            f"do.\n") in result.output
    assert "block by block" not in result.output


def test_a_worker_command_that_fails_is_reported_once_with_its_output(setup, tmp_path, capfd):
    """Not a traceback per failed start (daisy's scheduler writes each to standard error:
    they go to the job's log), and counts that agree: no block was ever tried."""
    store, name, folder, _ = setup
    output = tmp_path / "out.zarr" / "pred"
    result = CliRunner().invoke(main, [
        "predict", "--run", name, "--checkpoint", "0", f"{folder}/in.zarr/raw", str(output),
        "--store", str(store.root), "--workers", "1", "--worker-command",
        "no-such-launcher {command}"])
    assert result.exit_code == 1
    found = re.search(
        r"Error: 2 of 2 blocks of .*out.zarr/pred were not predicted \(write ROIs: .*\): the "
        r"worker command 'no-such-launcher \{command\}' failed \(exit status 127: [^)]*"
        r"no-such-launcher: [^)]*not found\); the workers failed (\d+) times in all \(the 1 "
        r"started first and (\d+) restarts\), and daisy gave up\. Fix the worker command",
        result.output)
    assert found and int(found[1]) == 1 + int(found[2]), result.output
    assert "Traceback" not in result.output + capfd.readouterr().err
    assert "CalledProcessError" not in result.output and "retries" not in result.output
    logs = tmp_path / "out.zarr.blocks" / "pred" / "logs"
    assert f"the scheduler's in {logs / 'daisy.log'}" in result.output
    assert "Traceback" in (logs / "daisy.log").read_text()  # kept for who needs them


@pytest.mark.filterwarnings("always::napari_dacapo.predict.VoxelSizeWarning")
def test_predict_command_with_workers_takes_the_input_voxel_size_and_records_it(
    setup, tmp_path, monkeypatch
):
    """For an input whose attributes lack the voxel size (or state it wrongly): the job
    records it, so that workers use it, and a rerun without it is told to give it."""
    store, name, _, raw = setup
    zarr.open_array(str(tmp_path / "bare.zarr"), path="raw", mode="w", shape=raw.shape,
                    dtype=raw.dtype, zarr_format=2)[:] = raw  # no geometry attributes
    output = tmp_path / "out.zarr" / "pred"
    args = ["predict", "--run", name, "--checkpoint", "0", f"{tmp_path}/bare.zarr/raw",
            str(output), "--store", str(store.root), "--device", "cpu", "--workers", "2"]
    interrupt_after_one_block(monkeypatch)
    result = CliRunner().invoke(main, [*args, "--voxel-size", "2,2", "--offset", "4,6"])
    assert result.exit_code == 130, result.output
    # The voxel size the run was trained on is (1, 1): said, with the option as its fix.
    assert "Warning: The input's voxel size (2, 2) differs" in result.output
    assert "give the right one with --voxel-size" in result.output
    assert "ZarrArrayConfig" not in result.output
    assert recorded_job(output.parent, output.name).input["voxel_size"] == [2, 2]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert ("To finish it, rerun the command with --voxel-size 2,2 and --offset 4,6 (its "
            "finished blocks are kept).") in result.output, result.output
    result = CliRunner().invoke(main, [*args, "--voxel-size", "2,2", "--offset", "4,6"])
    assert result.exit_code == 0, result.output
    written = zarr.open_array(output, mode="r")
    assert written.attrs["voxel_size"] == [2, 2] and written.attrs["offset"] == [4, 6]


def test_the_workers_link_binds_where_the_temporary_folder_is_too_long_for_a_socket(
    tmp_path, monkeypatch
):
    """A batch system's TMPDIR may be longer than a Unix socket's path allows: binding
    the workers' link there failed, and no blockwise job could start."""
    import socket
    import tempfile

    from napari_dacapo.blockwise.stopping import WorkerLink

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with WorkerLink() as link:
        assert len(link.address.encode()) <= 100
        worker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        worker.connect(link.address)  # as a local worker follows its parent
        worker.close()
    assert not any(deep.iterdir())  # nothing left behind in the long folder
