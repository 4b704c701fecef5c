"""Blockwise prediction with daisy workers: equal to predict(), resumable, failures
reported."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
import zarr
from click.testing import CliRunner
from conftest import tiny_config
from funlib.geometry import Coordinate, Roi

from napari_dacapo.blockwise import BlockwisePredictionError, predict_blockwise
from napari_dacapo.blockwise.prediction import BlockLayout
from napari_dacapo.blockwise.scheduler import threads_per_worker
from napari_dacapo.checkpoints import load_run
from napari_dacapo.cli import main
from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import write_zarr_array
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
    ZarrArrayConfig,
)
from napari_dacapo.experiments.run import Run
from napari_dacapo.predict import GROUP_READ_VOXELS, TileGeometry, predict
from napari_dacapo.store.file_store import FileStore

FP32 = {"precision": "fp32", "device": "cpu"}  # exact comparisons need plain fp32


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A stored tiny 2D run with random weights, and a 2D input zarr of 4x3 prediction tiles (the
    last row and column of tiles overhang the input)."""
    folder = tmp_path_factory.mktemp("blockwise")
    store = FileStore(folder / "runs")
    config = tiny_config(2, name="blockwise")
    run = Run(config, store=store)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in run.model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    store.store_run_config(config)
    store.store_checkpoint(config.name, 0, run.model, run.optimizer)
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
    with pytest.raises(FileExistsError, match="tiles_per_block differ"):
        predict_blockwise(name, 0, f"{folder}/in.zarr/raw", output, workers=1,
                          tiles_per_block=1, store=store, **FP32)


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
