"""The CUDA path in one short run, for a machine with an NVIDIA GPU: training with the
automatic precision plan, in-process prediction, and the release of GPU memory after each,
with the figures docs/benchmarks.md records.

For the 2D and the 3D example, in a temporary store:

- training: ``--iterations`` iterations with validation at the end (snapshots off);
  iterations per second after the first 20 (cuDNN's autotuning and the first batches
  excluded), the peak of GPU memory allocated, and the memory torch still allocates
  once ``train_run`` has ended (it moves the model and optimizer back to the CPU and
  empties the cache: this must come back to what it was before);
- prediction: ``predict(run name, "latest", zarr array)`` of bench/predict_throughput.py's
  default input against the pure forward over the same tiles (its ``forward_timer``), as
  a ratio, in output voxels per second, with peak memory and the memory left allocated
  after the call.

Prints one line per figure and ``cuda_check=ok`` last, ``cuda_check=FAILED: <what>`` when
memory is not released, or ``cuda_check=skipped`` on a machine without CUDA. ``--cpu`` runs
the same steps on the CPU (no memory checks), to try the script where there is no GPU.

    python bench/cuda_check.py [--iterations 200] [--dims 2 3] [--cpu]
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from predict_throughput import DEFAULT_TILES, forward_timer, write_input

MiB = 2**20
#: Memory torch may still hold for tensors after a step ends (allocator rounding).
LEFTOVER_BYTES = MiB


def allocated(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    gc.collect()
    torch.cuda.synchronize(device)
    return torch.cuda.memory_allocated(device)


def memory_text(device: torch.device, left: int, after: str) -> str:
    if device.type != "cuda":
        return "memory not checked on the CPU"
    peak = torch.cuda.max_memory_allocated(device) / MiB
    return f"peak {peak:.0f} MiB allocated, {left / MiB:.2f} MiB left allocated after {after}"


def train(
    root: Path, dims: int, iterations: int, device: torch.device
) -> tuple[str, object, int]:
    """Train the example; print its speed and memory; return its name, its store and the
    memory left allocated after training."""
    from napari_dacapo.examples import example_run_config
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore
    from napari_dacapo.train import IterationDone, RunStarted, train_run

    config = example_run_config(
        dims, name=f"cuda_check_{dims}d", iterations=iterations,
        validation_interval=iterations, snapshot_interval=None,
    )
    store = FileStore(root / "runs")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = allocated(device)
    stamps: list[float] = []
    for event in train_run(Run(config, store=store), store=store, device=device):
        if isinstance(event, RunStarted):
            print(f"{dims}D training on {event.device}", flush=True)
        elif isinstance(event, IterationDone):
            stamps.append(time.perf_counter())
    steady = stamps[20:]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else math.nan
    left = allocated(device) - before
    print(f"{dims}D training: {rate:.1f} it/s after 20 iterations, "
          f"{memory_text(device, left, 'train_run')}", flush=True)
    return config.name, store, left


def predict_figures(
    root: Path, dims: int, name: str, store: object, device: torch.device, rounds: int
) -> int:
    """Time in-process prediction against the pure forward; return the memory left."""
    import zarr

    from napari_dacapo.predict import predict

    path, shape = write_input(root, store, name, DEFAULT_TILES[dims])
    raw = zarr.open_array(path, mode="r")
    forward, tiles, plan = forward_timer(store, name, raw, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = allocated(device)

    def in_process() -> float:
        t0 = time.perf_counter()
        predict(name, "latest", raw, store=store, device=device)
        return time.perf_counter() - t0

    forward()
    in_process()  # warm-up: kernels for these shapes
    f = statistics.median(forward() for _ in range(rounds))
    p = statistics.median(in_process() for _ in range(rounds))
    left = allocated(device) - before
    print(f"{dims}D prediction, {tiles} tiles on {'x'.join(map(str, shape))} ({plan}): forward "
          f"{f:.3f} s, predict() {p:.3f} s, ratio {f / p:.3f}, "
          f"{math.prod(shape) / p / 1e6:.1f} million output voxels/s, "
          f"{memory_text(device, left, 'predict()')}", flush=True)
    return left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu", action="store_true",
                        help="Run the steps on the CPU (no memory checks): a dry run.")
    args = parser.parse_args()
    if args.cpu:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        props = torch.cuda.get_device_properties(device)
        print(f"{props.name}, compute capability {props.major}.{props.minor}, "
              f"{props.total_memory / 2**30:.0f} GiB; torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}", flush=True)
    else:
        print("cuda_check=skipped (no CUDA device; --cpu tries the steps on the CPU)")
        return
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        for dims in args.dims:
            root = Path(folder) / f"{dims}d"
            name, store, left = train(root, dims, args.iterations, device)
            if left > LEFTOVER_BYTES:
                failures.append(f"{dims}D training left {left / MiB:.1f} MiB allocated")
            left = predict_figures(root, dims, name, store, device, args.rounds)
            if left > LEFTOVER_BYTES:
                failures.append(f"{dims}D prediction left {left / MiB:.1f} MiB allocated")
    if device.type == "cuda":
        print(f"reserved by torch's cache at the end: "
              f"{torch.cuda.memory_reserved(device) / MiB:.0f} MiB", flush=True)
    print("cuda_check=" + ("ok" if not failures else "FAILED: " + "; ".join(failures)))


if __name__ == "__main__":
    main()
