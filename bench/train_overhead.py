"""Pipeline overhead of training: full ``train_run`` iterations versus pure model steps.

Both are timed in one process, on the same network, shapes, batch size, precision and
memory format, alternating in rounds so that the noise of a shared machine hits both alike.
The pure step is the trainer's own step (the same memory format of model and input, the same
precision plan, loss and scheduler step) on pre-made tensors: forward, loss, backward,
optimizer step, reading the loss. The full iteration adds sampling, augmentation, targets and
weights (made where ``prefetch_worker`` says: with ``auto`` on a CPU whose cores all run the
step, in the training thread; else in a worker process), the stats bookkeeping and the
events. Both are means over the iterations (after the first ``STEADY_AFTER`` of each
``train_run``), so that batches made in bursts count in full.

Prints one line per example and ``overhead_ratio=<max over examples>`` last.
Target: <= 1.10 on 2 CPU cores.

    python bench/train_overhead.py [--dims 2 3] [--iterations 30] [--rounds 3]
                                   [--prefetch-worker auto|process|thread]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import threading
import time

import torch


def pure_steps(run, plan, device, iterations: int) -> float:
    """Seconds per pure model step on pre-made tensors (the trainer's own step, with the
    model in the memory format training puts it in): the mean over ``iterations``."""
    trainer, model = run.trainer, run.model
    batch = trainer.batch_size
    memory_format = plan.memory_format(len(model.input_shape))
    model.to(device)
    model.to(memory_format=memory_format)
    model.train()
    out_shape = (batch, model.num_out_channels, *model.output_shape)
    tensors = {
        "raw": torch.rand(batch, model.num_in_channels, *model.input_shape),
        "target": torch.rand(out_shape) * 2 - 1,
        "weight": torch.ones(out_shape),
    }
    t0 = time.perf_counter()
    for _ in range(iterations):
        loss, _ = trainer._step(model, run.optimizer, tensors, device, plan, memory_format)
        loss.item()
    return (time.perf_counter() - t0) / iterations


#: Iterations left out at the start of each train_run: the worker's start (fork, first
#: fill of its slots) is paid once per training, not per iteration.
STEADY_AFTER = 10


def train_run_steps(run, store, iterations: int) -> float:
    """Seconds per iteration of the real training operation: the mean gap between the
    :data:`STEADY_AFTER`-th and the last iteration's event (a mean, not a median: batches
    are made in bursts, and the iterations a burst slows down must count)."""
    from napari_dacapo.train import IterationDone, train_run

    run.train_until = run.trainer.iteration + iterations + STEADY_AFTER
    stamps = []
    for event in train_run(run, store=store, stop=threading.Event(), validate=False):
        if isinstance(event, IterationDone):
            stamps.append(time.perf_counter())
    steady = stamps[STEADY_AFTER:]
    return (steady[-1] - steady[0]) / (len(steady) - 1)


def measure(dims: int, iterations: int, rounds: int, prefetch_worker: str = "auto") -> float:
    from napari_dacapo.examples import example_run_config
    from napari_dacapo.experiments.device import describe_device, device_plan_for
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore

    config = example_run_config(
        dims, name=f"bench_overhead_{dims}d", iterations=10**6, validation_interval=10**6,
        snapshot_interval=None,
    )
    config = dataclasses.replace(
        config,
        trainer_config=dataclasses.replace(config.trainer_config, prefetch_worker=prefetch_worker),
    )
    with tempfile.TemporaryDirectory() as root:
        store = FileStore(root)
        run = Run(config, store=store)
        device, plan = device_plan_for(config.trainer_config)
        run.model.to(device)
        pure, full = [], []
        train_run_steps(run, store, 5)  # warm-up: threads, allocator, first batches
        pure_steps(run, plan, device, 3)
        for _ in range(rounds):
            pure.append(pure_steps(run, plan, device, iterations))
            full.append(train_run_steps(run, store, iterations))
    p, f = statistics.median(pure), statistics.median(full)
    ratio = f / p
    print(
        f"{dims}D input {tuple(config.architecture_config.input_shape)} batch "
        f"{config.trainer_config.batch_size} (prefetch_worker={prefetch_worker}: batches "
        f"made {run.trainer.batches_made}) on "
        f"{describe_device(device, plan)}: "
        f"pure step {p * 1000:.1f} ms, train_run iteration {f * 1000:.1f} ms, "
        f"ratio {ratio:.3f}",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--iterations", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefetch-worker", default="auto", choices=("auto", "process", "thread"))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    ratios = [measure(d, args.iterations, args.rounds, args.prefetch_worker) for d in args.dims]
    print(f"overhead_ratio={max(ratios):.3f}")


if __name__ == "__main__":
    main()
