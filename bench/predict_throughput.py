"""Prediction throughput: in-process tiled ``predict()`` and blockwise ``predict_blockwise()``
(daisy worker processes) versus the pure model forward on the same tiles.

The bundled example is trained for a few iterations in a temporary store, and an input zarr
of ``--tiles`` prediction tiles per axis is written. Three things are timed in one process,
alternating in rounds so that the noise of a shared machine hits all alike:

- forward: the stored model on the device, in the precision and memory format prediction
  uses (``prediction_device_plan``), run over the same tiles in the same batches
  (``batch_size``), already read, scaled, stacked and moved to the device: the limit;
- in-process: ``predict(run name, "latest", zarr array)`` as a user calls it: loading the
  run and checkpoint, reading and padding the tiles, assembling the result;
- blockwise: ``predict_blockwise(..., workers=N)`` of the same zarr input into a zarr
  output: starting daisy's workers (each imports torch and loads the checkpoint), then
  reading, predicting and writing its blocks (groups of tiles; ``BlockLayout``).

A ratio is forward seconds / seconds of the path (1.0: no overhead at all). Prints one line
per example, ``blockwise_ratio=<min over examples>`` and ``predict_ratio=<min in-process
ratio over examples>`` last. Target: predict_ratio >= 0.9.

``--worker-threads N`` gives each blockwise worker N compute threads (``threads=N``; by
default local workers share the cores out, ``cores // workers`` each), e.g. to see what
oversubscribed cores cost.

    python bench/predict_throughput.py [--dims 3 2] [--tiles N] [--rounds 3] [--workers 2]
                                       [--worker-threads N]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

#: Tiles per axis of the default inputs: 27 tiles (156³ voxels of output) in 3D, 196
#: (1624²) in 2D, so that the forward passes take about half a second in both.
DEFAULT_TILES = {2: 14, 3: 3}


def trained_run(root: Path, dims: int, iterations: int = 3, **example):
    """The store (under ``root``) and name of the bundled ``dims``-D example trained for
    ``iterations`` iterations (validation off; the checkpoint is saved at the end);
    ``example`` goes to ``example_run_config``."""
    from napari_dacapo.examples import example_run_config
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore
    from napari_dacapo.train import train_run

    config = example_run_config(
        dims, name=f"bench_predict_{dims}d", iterations=iterations,
        validation_interval=10**6, snapshot_interval=None, **example,
    )
    store = FileStore(root / "runs")
    list(train_run(Run(config, store=store), store=store, validate=False))
    return store, config.name


def write_input(root: Path, store, name: str, tiles: int) -> tuple[str, tuple[int, ...]]:
    """Write ``root/in_<tiles>.zarr/raw``: synthetic blobs of ``tiles`` prediction output
    tiles per axis (voxel size 1, default chunks). Returns ``container/dataset`` and shape."""
    from funlib.geometry import Coordinate

    from napari_dacapo.checkpoints import load_run
    from napari_dacapo.examples import synthetic_blobs
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )
    from napari_dacapo.predict import TileGeometry

    model = load_run(name, store)[0].model
    dims = model.architecture.dims
    geometry = TileGeometry.for_model(model, Coordinate((1,) * dims))
    shape = tuple(int(s) * tiles for s in geometry.output_size)
    container = root / f"in_{tiles}.zarr"
    write_zarr_array(container, "raw", synthetic_blobs(shape, seed=7)[0], voxel_size=(1,) * dims)
    return f"{container}/raw", shape


def forward_timer(store, name: str, raw, device=None):
    """``(seconds(), tiles, plan description)``: ``seconds()`` times the pure forward of the
    stored model over the tiles of ``raw``, prepared beforehand as ``predict()`` prepares
    them, on ``device`` (default: the run's choice, as ``predict()`` makes it)."""
    from napari_dacapo.checkpoints import load_model, load_run, resolve_checkpoint
    from napari_dacapo.predict import (
        TileGeometry,
        batch_size,
        inference_context,
        model_input,
        prediction_device_plan,
        prediction_input,
        read_input,
        tile_dtype,
    )

    run = load_run(name, store)[0]
    iteration, _ = resolve_checkpoint(run, "latest", store)
    array = prediction_input(run, raw)
    device, plan = prediction_device_plan(run, device, None)
    memory_format = plan.memory_format(array.dims)
    model = load_model(run, iteration, store).to(device).to(memory_format=memory_format).eval()
    geometry = TileGeometry.for_model(model, array.voxel_size)
    dtype = tile_dtype(device, plan.autocast_dtype)
    tiles = [read_input(array, in_roi, dtype) for in_roi, _ in geometry.tiles(array.roi)]
    batch = batch_size(tiles[0].numel())  # as predict() batches them
    inputs = [
        model_input(tiles[i : i + batch], device, memory_format)
        for i in range(0, len(tiles), batch)
    ]

    def seconds() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode(), inference_context(device, plan.autocast_dtype):
            for x in inputs:
                model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    return seconds, len(tiles), f"{plan.description}, batches of {batch}"


def measure(
    dims: int, tiles: int, rounds: int, workers: int, worker_threads: int | None = None
) -> tuple[float, float]:
    """In-process and blockwise ratios for the ``dims``-D example."""
    import zarr

    from napari_dacapo.blockwise import predict_blockwise
    from napari_dacapo.predict import predict

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store, name = trained_run(root, dims)
        path, shape = write_input(root, store, name, tiles)
        raw = zarr.open_array(path, mode="r")
        forward, num_tiles, plan = forward_timer(store, name, raw)

        def in_process() -> float:
            t0 = time.perf_counter()
            predict(name, "latest", raw, store=store)
            return time.perf_counter() - t0

        def blockwise() -> float:
            t0 = time.perf_counter()
            predict_blockwise(
                name, "latest", path, root / "out.zarr/pred", workers=workers,
                threads=worker_threads, store=store, overwrite=True,
            )
            return time.perf_counter() - t0

        timers = {"forward": forward, "predict": in_process, "blockwise": blockwise}
        # Warm-up in this process (kernels for these shapes, the page cache); every blockwise
        # job starts workers of its own.
        forward()
        in_process()
        times: dict[str, list[float]] = {key: [] for key in timers}
        for _ in range(rounds):
            for key, timer in timers.items():
                times[key].append(timer())
        job = yaml.safe_load((root / "out.zarr.blocks" / "pred" / "job.yaml").read_text())
    f, p, b = (statistics.median(times[key]) for key in timers)
    print(
        f"{dims}D, {num_tiles} tiles on a {'x'.join(map(str, shape))} zarr, {plan}: "
        f"forward {f:.3f} s, predict() {p:.3f} s (ratio {f / p:.3f}; "
        f"{math.prod(shape) / p / 1e6:.2f} million output voxels/s), blockwise with "
        f"{workers} workers of {job['threads']} thread(s), blocks of "
        f"{job['tiles_per_block']}^{dims} tiles, {b:.3f} s (ratio {f / b:.3f})",
        flush=True,
    )
    return f / p, f / b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 2])
    parser.add_argument(
        "--tiles", type=int, default=None,
        help=f"Output tiles per axis of the input (default: {DEFAULT_TILES}).",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=None,
                        help="Compute threads of each blockwise worker (default: "
                        "cores // workers).")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    ratios = [
        measure(d, args.tiles or DEFAULT_TILES[d], args.rounds, args.workers, args.worker_threads)
        for d in args.dims
    ]
    print(f"blockwise_ratio={min(b for _, b in ratios):.3f}")
    print(f"predict_ratio={min(p for p, _ in ratios):.3f}")


if __name__ == "__main__":
    main()
