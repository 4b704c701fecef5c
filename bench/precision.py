"""Model step time in fp32 versus bf16 autocast + channels-last, for the default 2D and 3D
examples, measured alternately in one process; and which plan ``precision="auto"`` picks.

Prints one line per example and ``auto_picks_faster=<True|False>`` last.

    python bench/precision.py [--dims 2 3] [--iterations 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from train_overhead import pure_steps


def measure(dims: int, iterations: int, rounds: int) -> bool:
    from napari_dacapo.examples import example_run_config
    from napari_dacapo.experiments.device import choose_device, choose_precision
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore

    config = example_run_config(dims, iterations=10**6, snapshot_interval=None)
    device = choose_device(None)
    plans = {name: choose_precision(device, name) for name in ("fp32", "bf16")}
    auto = choose_precision(device, "auto")
    times: dict[str, list[float]] = {name: [] for name in plans}
    with tempfile.TemporaryDirectory() as root:
        run = Run(config, store=FileStore(root))
        run.trainer.build_batch_provider(run.datasplit.train, run.model, run.task)
        for name, plan in plans.items():  # warm-up
            pure_steps(run, plan, device, 2)
        for _ in range(rounds):
            for name, plan in plans.items():
                times[name].append(pure_steps(run, plan, device, iterations))
    fp32, bf16 = (statistics.median(times[n]) for n in ("fp32", "bf16"))
    faster = "bf16" if bf16 < fp32 else "fp32"
    picked = "bf16" if auto.autocast_dtype is not None else "fp32"
    print(f"{dims}D: fp32 {fp32 * 1000:.1f} ms, bf16+channels-last {bf16 * 1000:.1f} ms, "
          f"speedup {fp32 / bf16:.2f}x; auto picks {picked} ({auto.description})", flush=True)
    return picked == faster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = [measure(d, args.iterations, args.rounds) for d in args.dims]
    print(f"auto_picks_faster={all(results)}")


if __name__ == "__main__":
    main()
