"""Training wall time of DaCapo (dacapo-ml 0.3.5) versus napari-dacapo on the same job.

Both train the same 3D UNet (``--fmaps`` feature maps, x2 per level, two 2x downsamplings,
valid convolutions, input ``--input-shape``), with the affinities task (nearest-neighbour
offsets), batch size, learning rate, mirror/transpose augmentation, sampling anywhere in
the data, and number of iterations, on the same synthetic zarr volume (blobs in noise with
instance labels) that this script writes. Validation and snapshots are off in both.

DaCapo cannot share an environment with napari-dacapo (it pins numpy<2, zarr<3 and
pydantic<2), so it runs with its own interpreter (``--dacapo-python``). Each side runs in a
fresh process from a small driver script written to a temporary folder, with
``torch.set_num_threads(--threads)``; each driver measures its wall time the same way, from
after its imports to the end of training: building the run (model, data, pipeline),
every iteration with its data loading, and saving the final weights. DaCapo fetches
samples in ``--dacapo-fetchers`` worker processes (its gunpowder PreCache; 1 turns
prefetching off); napari-dacapo makes batches where its ``prefetch_worker: auto`` says (on
a CPU whose cores all run the step, in the training thread; else in a worker process).
Precision: napari-dacapo uses ``--precision`` (``auto``: bf16 autocast + channels-last
where the hardware has fast bf16); DaCapo always trains in fp32. Rounds alternate DaCapo and ours.

Prints one line per side (with the median time per iteration each records in its training
stats: DaCapo's is the model step alone, napari-dacapo's the whole training-loop iteration,
waiting for the batch included) and ``speedup_vs_dacapo=<DaCapo wall / napari-dacapo wall>``
last (medians over rounds). Target: >= 2. Without a DaCapo interpreter it says how to make one
and prints ``speedup_vs_dacapo=skipped``.

    python bench/vs_dacapo.py [--dacapo-python .venv-dacapo/bin/python] [--iterations 100]
                              [--rounds 3] [--threads N] [--precision auto]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

INSTALL = """\
    python3 -m venv .venv-dacapo
    .venv-dacapo/bin/pip install torch==2.13.0
    .venv-dacapo/bin/pip install --no-deps -r bench/dacapo-ml-0.3.5-requirements.txt"""

# Each driver reads the job (JSON) from argv[1] and prints its result as the last line
# of its output. Imports come before the clock starts.
DACAPO_DRIVER = """
import json, pathlib, statistics, sys, time
job = json.loads(sys.argv[1])
import torch
torch.set_num_threads(job["threads"])
from funlib.geometry import Coordinate
from dacapo.experiments import Run, RunConfig
from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.datasplits import TrainValidateDataSplitConfig
from dacapo.experiments.datasplits.datasets import RawGTDatasetConfig
from dacapo.experiments.datasplits.datasets.arrays import ZarrArrayConfig
from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.experiments.trainers import GunpowderTrainerConfig
from dacapo.experiments.trainers.gp_augments import SimpleAugmentConfig
from dacapo.train import train_run

start = time.perf_counter()
data = pathlib.Path(job["data"])
config = RunConfig(
    name="vs_dacapo", repetition=0, num_iterations=job["iterations"],
    validation_interval=job["iterations"] + 1,
    task_config=AffinitiesTaskConfig(
        name="affinities", neighborhood=[Coordinate(o) for o in job["neighborhood"]]),
    architecture_config=CNNectomeUNetConfig(
        name="unet", input_shape=Coordinate(job["input_shape"]), fmaps_in=1,
        fmaps_out=job["fmaps"], num_fmaps=job["fmaps"], fmap_inc_factor=2,
        downsample_factors=[Coordinate(f) for f in job["downsample_factors"]]),
    trainer_config=GunpowderTrainerConfig(
        name="trainer", batch_size=job["batch_size"], learning_rate=job["learning_rate"],
        augments=[SimpleAugmentConfig()], num_data_fetchers=job["dacapo_fetchers"]),
    datasplit_config=TrainValidateDataSplitConfig(
        name="data", validate_configs=[], train_configs=[RawGTDatasetConfig(
            name="train", raw_config=ZarrArrayConfig(name="raw", file_name=data, dataset="raw"),
            gt_config=ZarrArrayConfig(name="gt", file_name=data, dataset="labels"))]),
)
run = Run(config)
train_run(run, do_validate=False)
wall = time.perf_counter() - start
stats = run.training_stats.iteration_stats
print(json.dumps({
    "wall": wall, "iterations": len(stats), "recorded": statistics.median(s.time for s in stats),
    "recorded_as": "model step", "precision": "fp32",
    "parameters": sum(p.numel() for p in run.model.parameters()),
}))
"""

OURS_DRIVER = """
import json, statistics, sys, time
job = json.loads(sys.argv[1])
import torch
torch.set_num_threads(job["threads"])
from napari_dacapo.experiments import (
    AffinitiesTaskConfig, CNNectomeUNetConfig, DefaultTrainerConfig, RawGTDatasetConfig,
    RunConfig, SimpleAugmentConfig, TrainValidateDataSplitConfig, ZarrArrayConfig)
from napari_dacapo.experiments.run import Run
from napari_dacapo.store.file_store import FileStore
from napari_dacapo.train import IterationDone, RunStarted, train_run

start = time.perf_counter()
data = job["data"]
config = RunConfig(
    name="vs_dacapo", num_iterations=job["iterations"], validation_interval=job["iterations"],
    task_config=AffinitiesTaskConfig(name="affinities", neighborhood=job["neighborhood"]),
    architecture_config=CNNectomeUNetConfig(
        name="unet", input_shape=job["input_shape"], fmaps_in=1, fmaps_out=job["fmaps"],
        num_fmaps=job["fmaps"], fmap_inc_factor=2,
        downsample_factors=job["downsample_factors"]),
    trainer_config=DefaultTrainerConfig(
        name="trainer", batch_size=job["batch_size"], learning_rate=job["learning_rate"],
        augments=[SimpleAugmentConfig(name="simple")], sample_from="anywhere",
        snapshot_interval=None, precision=job["precision"]),
    datasplit_config=TrainValidateDataSplitConfig(
        name="data", validate_configs=[], train_configs=[RawGTDatasetConfig(
            name="train", raw_config=ZarrArrayConfig(name="raw", file_name=data, dataset="raw"),
            gt_config=ZarrArrayConfig(name="gt", file_name=data, dataset="labels"))]),
)
store = FileStore(job["store"])
run = Run(config, store=store)
steps, device = [], ""
for event in train_run(run, store=store, validate=False):
    if isinstance(event, IterationDone):
        steps.append(event.time)
    elif isinstance(event, RunStarted):
        device = event.device
wall = time.perf_counter() - start
print(json.dumps({
    "wall": wall, "iterations": len(steps), "recorded": statistics.median(steps),
    "recorded_as": "loop iteration", "precision": device,
    "parameters": sum(p.numel() for p in run.model.parameters()),
}))
"""


def dacapo_version(python: str) -> str | None:
    """The dacapo-ml version importable by ``python``, or None."""
    if not Path(python).exists():
        return None
    probe = subprocess.run(
        [python, "-c", "import dacapo, importlib.metadata as m; print(m.version('dacapo-ml'))"],
        capture_output=True, text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def train(python: str, driver: Path, job: dict, env: dict | None = None) -> dict:
    """Run one training driver; its result."""
    done = subprocess.run([python, str(driver), json.dumps(job)], capture_output=True,
                          text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{driver.name} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dacapo-python", default=".venv-dacapo/bin/python",
                        help="An interpreter with dacapo-ml installed.")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads of both (default: torch's default here).")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="napari-dacapo's precision (DaCapo trains in fp32).")
    parser.add_argument("--dacapo-fetchers", type=int, default=2,
                        help="DaCapo's num_data_fetchers (1: no prefetching).")
    parser.add_argument("--input-shape", type=int, default=60)
    parser.add_argument("--fmaps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--data-shape", type=int, default=128,
                        help="Edge of the synthetic training volume (voxels).")
    args = parser.parse_args()

    version = dacapo_version(args.dacapo_python)
    if version is None:
        print(f"Skipped: no interpreter with dacapo-ml at '{args.dacapo_python}'. DaCapo "
              f"0.3.5 cannot share napari-dacapo's environment; make a separate one from "
              f"the repository root with\n{INSTALL}\nor pass --dacapo-python.")
        print("speedup_vs_dacapo=skipped")
        return

    from napari_dacapo.examples import synthetic_blobs
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data = root / "data.zarr"
        raw, labels = synthetic_blobs((args.data_shape,) * 3, seed=0)
        for name, array in (("raw", raw), ("labels", labels)):
            write_zarr_array(data, name, array, voxel_size=(1, 1, 1))
        job = {
            "data": str(data), "iterations": args.iterations, "threads": args.threads,
            "input_shape": [args.input_shape] * 3, "fmaps": args.fmaps,
            "downsample_factors": [[2, 2, 2]] * 2, "batch_size": args.batch_size,
            "learning_rate": 1e-4, "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
            "dacapo_fetchers": args.dacapo_fetchers, "precision": args.precision,
        }
        drivers = {"DaCapo": root / "dacapo_driver.py", "napari-dacapo": root / "ours_driver.py"}
        drivers["DaCapo"].write_text(DACAPO_DRIVER)
        drivers["napari-dacapo"].write_text(OURS_DRIVER)
        results: dict[str, list[dict]] = {side: [] for side in drivers}
        for round_ in range(args.rounds):
            # A fresh store per run: DaCapo would resume a stored run of the same name.
            options = root / f"dacapo_{round_}.yaml"
            options.write_text(json.dumps({"type": "files",
                                           "runs_base_dir": str(root / f"dacapo_{round_}")}))
            env = {**os.environ, "DACAPO_OPTIONS_FILE": str(options)}
            results["DaCapo"].append(train(args.dacapo_python, drivers["DaCapo"], job, env))
            results["napari-dacapo"].append(train(
                sys.executable, drivers["napari-dacapo"],
                {**job, "store": str(root / f"ours_{round_}")},
            ))

    walls = {}
    for side, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        recorded = statistics.median(r["recorded"] for r in runs)
        walls[side] = wall
        first = runs[0]
        per_iteration = wall / first["iterations"]
        spread = ", ".join(f"{r['wall']:.1f}" for r in runs)
        print(
            f"{side}{f' {version}' if side == 'DaCapo' else ''} ({first['precision']}): "
            f"{first['iterations']} iterations in {wall:.1f} s (rounds: {spread} s; "
            f"{per_iteration * 1000:.0f} ms/iteration; its stats: {first['recorded_as']} "
            f"{recorded * 1000:.0f} ms), "
            f"{first['parameters']} parameters",
            flush=True,
        )
    if len({runs[0]["parameters"] for runs in results.values()}) != 1:
        print("Warning: the two networks have different parameter counts.")
    print(f"speedup_vs_dacapo={walls['DaCapo'] / walls['napari-dacapo']:.2f}")


if __name__ == "__main__":
    main()
