"""Peak memory of blockwise prediction on a volume and on one 8x larger (2x per axis in 3D).

The bundled 3D example is trained for a few iterations in a temporary store; two input zarrs
are written, of ``--tiles`` and ``2 * --tiles`` prediction tiles per axis. Each
``predict_blockwise(..., workers=2)`` job runs in a fresh Python process, and the resident
memory (RSS) of its whole process tree (the job's process and daisy's worker processes) is
sampled with psutil every ``--interval`` seconds; a job's figure is the peak of the tree's
summed RSS (shared library pages count once per process). The peaks of the job's process
and of its largest worker are shown too. (The kernel's ``ru_maxrss`` would not do: a
process started by fork and exec keeps the high-water mark of the forked image, here this
script's.) Jobs alternate small, large over ``--rounds`` rounds; figures are medians.

Prints one line per volume and ``rss_growth=<large peak / small peak>`` last.
Target: < 1.10 (memory bounded by the block size, not the volume).

    python bench/memory_scaling.py [--tiles 5] [--rounds 1] [--workers 2] [--interval 0.02]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from predict_throughput import trained_run, write_input

MIB = 2**20

#: Run in the job's process.
JOB = """
import json, sys
from napari_dacapo.blockwise import predict_blockwise
from napari_dacapo.store.file_store import FileStore

job = json.loads(sys.argv[1])
predict_blockwise(job["run"], "latest", job["input"], job["output"], workers=job["workers"],
                  store=FileStore(job["store"]), overwrite=True)
"""


def tree_peaks(command: list[str], interval: float) -> tuple[int, int, int]:
    """Run ``command``; the peak RSS (bytes) of it and all its descendants together, of it
    alone, and of its largest descendant, sampled every ``interval`` seconds."""
    import psutil

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    parent = psutil.Process(process.pid)
    tree_peak, peaks = 0, {}
    while process.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        total = 0
        for member in tree:
            try:
                rss = member.memory_info().rss
            except psutil.NoSuchProcess:  # a worker that ended between listing and reading
                continue
            total += rss
            peaks[member.pid] = max(peaks.get(member.pid, 0), rss)
        tree_peak = max(tree_peak, total)
        time.sleep(interval)
    _, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"The blockwise job failed:\n{err[-3000:]}")
    own = peaks.pop(process.pid, 0)
    return tree_peak, own, max(peaks.values(), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=5,
                        help="Prediction tiles per axis of the small volume.")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.02,
                        help="Seconds between RSS samples.")
    args = parser.parse_args()
    try:
        import psutil  # noqa: F401  (napari depends on it)
    except ImportError:
        sys.exit("memory_scaling needs psutil: pip install psutil")

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        # Prediction tiles of the training input's size (60³ -> 20³), so that 8x the
        # volume stays small enough to write here (100³ and 200³ with the defaults).
        store, name = trained_run(root, 3, eval_shape_increase=(0, 0, 0))
        volumes = {
            label: write_input(root, store, name, tiles)
            for label, tiles in (("small", args.tiles), ("large", 2 * args.tiles))
        }
        peaks: dict[str, list[tuple[int, int, int]]] = {label: [] for label in volumes}
        seconds: dict[str, list[float]] = {label: [] for label in volumes}
        for _ in range(args.rounds):
            for label, (path, _) in volumes.items():
                job = {"run": name, "store": str(store.root), "input": path,
                       "output": str(root / f"out_{label}.zarr/pred"), "workers": args.workers}
                t0 = time.perf_counter()
                peaks[label].append(
                    tree_peaks([sys.executable, "-c", JOB, json.dumps(job)], args.interval)
                )
                seconds[label].append(time.perf_counter() - t0)

    result = {}
    for label, (_, shape) in volumes.items():
        tree, own, worker = (statistics.median(p[i] for p in peaks[label]) for i in range(3))
        result[label] = tree
        print(
            f"{label}: {'x'.join(map(str, shape))} voxels, {args.workers} workers, "
            f"{statistics.median(seconds[label]):.1f} s: process tree peak {tree / MIB:.0f} "
            f"MiB (job process {own / MIB:.0f} MiB, largest worker {worker / MIB:.0f} MiB)",
            flush=True,
        )
    print(f"rss_growth={result['large'] / result['small']:.3f}")


if __name__ == "__main__":
    main()
