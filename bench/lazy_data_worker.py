"""Training on lazily read data (zarr on disk): batches made in a thread versus in a spawned
worker process that opens the zarr arrays again (``prefetch_worker='thread'`` versus
``'process'``; a forked worker cannot read zarr, see ``DefaultTrainer._make_prefetcher``).

The bundled example's datasets are written to zarr; two runs of it, one per worker kind,
are trained alternately in rounds in one process (the noise of a shared machine hits both
alike), each ``train_run`` timed as in ``train_overhead.py`` (mean gap between iterations
after the first ``STEADY_AFTER``: the worker's start is paid once per training). torch
gets ``--threads`` compute threads (default: all cores but one, as the training panel
leaves one to the rest of napari, which the worker then has to itself).

Prints one line per kind and ``spawn_speedup=<thread seconds per iteration / worker
seconds per iteration>`` last (> 1: the spawned worker trains faster).

    python bench/lazy_data_worker.py [--dims 3] [--iterations 40] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
from pathlib import Path

import torch
from train_overhead import train_run_steps


def zarr_config(root: Path, dims: int, worker: str):
    """The ``dims``-D example with its datasets in zarr containers under ``root``, batches
    prepared by ``worker`` (validation and snapshots off)."""
    from napari_dacapo.examples import example_run_config
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    config = example_run_config(
        dims, name=f"lazy_{worker}_{dims}d", iterations=10**6, validation_interval=10**6,
        snapshot_interval=None,
    )
    split = config.datasplit_config

    def on_disk(dataset, tag: str):
        container = root / f"{tag}.zarr"
        if not container.exists():
            write_zarr_array(container, "raw", dataset.raw_config.data)
            write_zarr_array(container, "gt", dataset.gt_config.data)
        from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
            ZarrArrayConfig,
        )

        return dataclasses.replace(
            dataset,
            raw_config=ZarrArrayConfig(name=f"{tag}_raw", file_name=container, dataset="raw"),
            gt_config=ZarrArrayConfig(name=f"{tag}_gt", file_name=container, dataset="gt"),
        )

    split = dataclasses.replace(
        split,
        train_configs=[on_disk(d, f"train{i}") for i, d in enumerate(split.train_configs)],
        validate_configs=[],
    )
    trainer = dataclasses.replace(config.trainer_config, prefetch_worker=worker)
    return dataclasses.replace(config, datasplit_config=split, trainer_config=trainer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads on "
          f"{os.cpu_count()} cores", flush=True)

    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore

    kinds = ("thread", "process")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = FileStore(root / "runs")
        runs = {kind: Run(zarr_config(root, args.dims, kind), store=store) for kind in kinds}
        for kind in kinds:  # warm-up: first batches, kernels, the page cache
            train_run_steps(runs[kind], store, 3)
        seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind in kinds:
                seconds[kind].append(train_run_steps(runs[kind], store, args.iterations))
        made = {kind: runs[kind].trainer.batches_made for kind in kinds}
    median = {kind: statistics.median(seconds[kind]) for kind in kinds}
    for kind in kinds:
        print(f"{args.dims}D example from zarr, prefetch_worker={kind} (batches made "
              f"{made[kind]}): {median[kind] * 1000:.1f} ms per iteration, "
              f"{1 / median[kind]:.1f} iterations/s", flush=True)
    print(f"spawn_speedup={median['thread'] / median['process']:.3f}")


if __name__ == "__main__":
    main()
