"""The default trainer: batches from annotated samples, prepared ahead in a worker process
(or a thread), and a model step with mixed precision and channels-last where the hardware
gains from it."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..datasplits.datasets.arrays.array import reads_in_process
from ..datasplits.datasets.checks import DataWarning
from ..device import (
    PrecisionPlan,
    choose_device,
    choose_precision,
    describe_device,
    has_spare_core,
)
from ..training_iteration_stats import TrainingIterationStats

from .augments.augment import undo_grid_steps
from .batch_provider import Batch, BatchProvider
from .prefetch import Interrupted, Prefetcher, burst_size
from .process_prefetch import ProcessPrefetcher, can_fork, pickle_refusal
from .snapshot import Snapshot, SnapshotArray, snapshot_writer, write_snapshot
from .trainer import Trainer, TrainingDiverged

if TYPE_CHECKING:
    from ..datasplits.datasets.dataset import Dataset
    from ..model import Model
    from ..tasks.task import Task
    from ...store.array_store import LocalContainerIdentifier

    from .default_trainer_config import DefaultTrainerConfig

__all__ = ["DefaultTrainer"]

_Tensors = dict[str, torch.Tensor]

#: Seconds :meth:`DefaultTrainer.stop` waits for the batch source to stop; a batch thread
#: still reading then (a stalled network disk) is left to end by itself (a daemon).
STOP_SECONDS = 1.0


class _LinearWarmup:
    """Learning-rate factor rising linearly to 1 over ``iterations`` scheduler steps (a
    class, not a lambda, so the scheduler's state dict can hold it)."""

    def __init__(self, iterations: int) -> None:
        self.iterations = iterations

    def __call__(self, step: int) -> float:
        return min(1.0, (step + 1) / self.iterations)


class DefaultTrainer(Trainer):
    """Trains a model on samples centred on annotated voxels (DaCapo's ``GunpowderTrainer``).

    Use as a context manager around :meth:`iterate` so that batch preparation runs ahead
    (in a worker process or a thread, see ``prefetch_worker``) and stops cleanly::

        trainer.build_batch_provider(datasets, model, task)
        with trainer:
            for stats in trainer.iterate(100, model, optimizer, device):
                ...

    Invariant: :attr:`iteration` is the number of iterations the model has completed (the
    index of the next one). On GPUs the loss is read back only every
    ``loss_sync_interval`` iterations, so stats are yielded in groups after the steps were
    taken. When a stats object for iteration ``i`` is yielded and
    ``trainer.iteration == i + 1``, the model and optimizer state are exactly those at the
    end of iteration ``i``: the moment to checkpoint or validate. Groups end at multiples of
    ``loss_sync_interval``, at snapshots and at the end of each :meth:`iterate` call.

    Parameters
    ----------
    config
        The trainer's config.

    Attributes
    ----------
    latest_snapshot
        The most recent :class:`Snapshot` (every ``snapshot_interval`` iterations).
    device_description
        E.g. ``"cpu (bf16 autocast, channels-last)"``, set by :meth:`iterate`.
    """

    def __init__(self, config: DefaultTrainerConfig) -> None:
        self.config = config
        self.iteration = 0
        self.batch_size = config.batch_size
        self.learning_rate = config.learning_rate
        self.augments = [augment.augment() for augment in config.augments]
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.latest_snapshot: Snapshot | None = None
        self.device_description: str | None = None
        self.provider: BatchProvider | None = None
        self._task: Task | None = None
        self._snapshot_container: LocalContainerIdentifier | None = None
        self._prefetcher: Prefetcher[tuple[Batch, _Tensors]] | None = None
        self._pin_memory = False
        self._scaler: torch.amp.GradScaler | None = None
        self._rng = np.random.default_rng(config.seed)

    # -- optimizer -------------------------------------------------------------------------

    def create_optimizer(self, model: Model) -> torch.optim.Optimizer:
        optimizers = {"radam": torch.optim.RAdam, "adamw": torch.optim.AdamW}
        # foreach (one call per step for all parameters) is torch's default on GPUs only;
        # on a CPU it saves ~0.4 ms of Python per step of the 2D example (7 %).
        return optimizers[self.config.optimizer](
            model.parameters(), lr=self.learning_rate, weight_decay=self.config.weight_decay,
            foreach=True,
        )

    def create_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """Linear warm-up over ``warmup_iterations`` (``None`` without warm-up). The
        trainer steps it once per iteration; store its state with the optimizer's."""
        if self.config.warmup_iterations == 0:
            self.scheduler = None
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, _LinearWarmup(self.config.warmup_iterations)
            )
        return self.scheduler

    # -- data ------------------------------------------------------------------------------

    def can_train(self, datasets: list[Dataset]) -> bool:
        """Whether every dataset has ground truth (and there is at least one)."""
        return bool(datasets) and all(dataset.gt is not None for dataset in datasets)

    def build_batch_provider(
        self,
        datasets: list[Dataset],
        model: Model,
        task: Task,
        snapshot_container: LocalContainerIdentifier | None = None,
        device: torch.device | None = None,
    ) -> None:
        """Prepare sampling from ``datasets`` for ``model`` and ``task``; ``device`` is
        the one training will run on (default: the config's choice).

        Raises ``ValueError`` (naming dataset, sizes and fix) when the data cannot give
        samples of the model's shape, and ``ImportError`` when snapshots should be stored
        but the zarr writer is missing.
        """
        self.stop()
        cfg = self.config
        self.provider = BatchProvider(
            datasets, model, task.predictor, cfg.batch_size, self.augments,
            min_masked=cfg.min_masked, clip_raw=cfg.clip_raw, sample_from=cfg.sample_from,
            rng=self._rng,
        )
        # One batch now: targets and weights that cannot be made from these labels (e.g. more
        # task channels than the labels have) fail before anything is stored.
        trial = self.provider.batch()
        self._task = task
        self._snapshot_container = snapshot_container
        if snapshot_container is not None and cfg.snapshot_interval:
            # Fail now rather than at the first snapshot, after minutes of training.
            snapshot_writer()
        forkable = can_fork() and all(
            reads_in_process(array)
            for dataset in datasets
            for array in (dataset.raw, dataset.gt, dataset.mask)
            if array is not None
        )
        self._prefetcher = self._make_prefetcher(
            trial, device or choose_device(cfg.device), forkable
        )

    def _make_prefetcher(
        self, example: Batch, device: torch.device, forkable: bool
    ) -> Prefetcher[tuple[Batch, _Tensors]]:
        """Where batches are made: see ``prefetch_worker`` in the config. ``auto`` makes
        them in the training thread when no CPU core is free for a worker: on 2 cores the
        2D example's iterations took 1.12-1.14 times its model step with a worker process
        and 1.05-1.07 times with batches made in the training thread, 8 in a row
        (bench/train_overhead.py), as a worker's time is taken from the step's threads,
        which then wait for the one it displaced.

        The worker is forked, except for lazily read data (see ``reads_in_process``): it is
        then spawned and opens the data again (about 2 s more to start, once per training),
        which pays where a worker is chosen: a thread's batch making holds the GIL that the
        training loop needs. Zarr-backed 3D example, one torch thread on 2 cores, medians of
        7 alternating runs: 32.9 iterations/s with a spawned worker, 25.5 with a thread
        (input 44^3, step about 40 ms); 150.6 and 87.1 (input 24^3, step about 6 ms). On par
        (23.5 and 23.5) when other work took the second core."""
        cfg, name = self.config, "napari-dacapo batches"
        assert self.provider is not None
        worker = cfg.prefetch_worker
        if worker == "auto" and not has_spare_core(device):
            return Prefetcher(self.provider.batch, 0, name, finish=self._tensors,
                              burst=burst_size(example.nbytes))
        if worker == "process" and not can_fork():
            raise ValueError(
                "prefetch_worker='process' needs worker processes forked from this one, "
                "which only Linux offers. Set prefetch_worker to 'auto' or 'thread'."
            )
        thread = Prefetcher(self.provider.batch, cfg.prefetch, name, finish=self._tensors)
        if cfg.prefetch == 0 or worker == "thread" or not can_fork():
            return thread
        # Lazily read data (zarr, dask) cannot be read in a forked worker: see
        # reads_in_process. A spawned one receives the provider pickled, arrays as configs.
        refusal = None if forkable else pickle_refusal(self.provider)
        if refusal is not None and worker == "process":
            raise ValueError(
                f"prefetch_worker='process' cannot send this training data to a worker "
                f"process: it is read lazily (zarr or dask), so the worker would open it "
                f"again, but it cannot be sent there ({refusal}). Set prefetch_worker to "
                f"'auto' or 'thread'."
            )
        if refusal is not None:
            return thread
        return ProcessPrefetcher(
            self.provider.batch, cfg.prefetch, name, finish=self._tensors, example=example,
            prepare_worker=self._worker_seed, start_method="fork" if forkable else "spawn",
        )

    @property
    def batches_made(self) -> str:
        """Where batches are made, e.g. ``"in a worker process"`` (after
        :meth:`build_batch_provider`)."""
        prefetcher = self._prefetcher
        if prefetcher is None:
            return "not yet (no batch provider)"
        if isinstance(prefetcher, ProcessPrefetcher):
            return "in a worker process"
        return "in a thread" if prefetcher.size else "in the training thread"

    def _worker_seed(self) -> functools.partial[None]:
        """Seeds a new worker process's sampling from this trainer's generator, so that
        batches stay reproducible and a restarted worker does not repeat the last one's."""
        assert self.provider is not None
        return functools.partial(_reseed, self.provider, int(self._rng.integers(2**63)))

    def _tensors(self, batch: Batch) -> tuple[Batch, _Tensors]:
        tensors = {
            key: torch.from_numpy(getattr(batch, key)) for key in ("raw", "target", "weight")
        }
        if self._pin_memory:
            # Page-locked memory makes the host-to-GPU copy asynchronous.
            tensors = {key: tensor.pin_memory() for key, tensor in tensors.items()}
        return batch, tensors

    def __enter__(self) -> DefaultTrainer:
        if self._prefetcher is not None:
            self._prefetcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop background batch preparation (also done on leaving ``with``), within
        :data:`STOP_SECONDS`."""
        if self._prefetcher is not None:
            self._prefetcher.stop(timeout=STOP_SECONDS)

    # -- training --------------------------------------------------------------------------

    def iterate(
        self,
        num_iterations: int,
        model: Model,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        stop: threading.Event | None = None,
    ) -> Iterator[TrainingIterationStats]:
        """Train ``num_iterations`` iterations, yielding their stats (see the class
        docstring for when the model state matches the yielded iteration). When ``stop``
        is set, the pending stats are reported after the current step, so the caller can
        stop within one iteration even where losses are read in windows (CUDA); set while
        no batch comes (a stalled disk, a hung worker), it ends without another step."""
        if self.provider is None or self._prefetcher is None or self._task is None:
            raise RuntimeError(
                "Call build_batch_provider(datasets, model, task) before iterate()."
            )
        cfg = self.config
        plan = choose_precision(device, cfg.precision, cfg.channels_last)
        self.device_description = describe_device(device, plan)
        memory_format = plan.memory_format(self.provider.dims)
        model.to(device)
        if memory_format is not torch.contiguous_format:
            model.to(memory_format=memory_format)
        model.train()
        self._pin_memory = device.type == "cuda"
        if plan.needs_grad_scaler and self._scaler is None:
            self._scaler = torch.amp.GradScaler(device.type)
        sync_every = _sync_interval(device, cfg.loss_sync_interval)
        started_here = not self._prefetcher.running
        if started_here:
            self._prefetcher.start()
        # (iteration, loss, batch): the batch, to find the cause of a NaN loss, is kept
        # where the loss is read every iteration (CPUs); a window of them would hold memory.
        pending: list[tuple[int, torch.Tensor, Batch | None]] = []
        window_start = time.perf_counter()
        warned = False  # a batch's warning is said once per training (see Batch.warning)

        def reported() -> Iterator[TrainingIterationStats]:
            nonlocal pending, window_start
            losses = torch.stack([value for _, value, _ in pending]).tolist()  # one sync
            seconds = (time.perf_counter() - window_start) / len(pending)
            for (i, _, batch), value in zip(pending, losses):
                # Stop before the caller stores (checkpoints) a model this step spoiled.
                if not math.isfinite(value):
                    raise self._diverged(i, value, batch, plan)
                yield TrainingIterationStats(i, float(value), seconds)
            pending = []
            window_start = time.perf_counter()

        try:
            for step in range(num_iterations):
                try:
                    batch, tensors = self._prefetcher.get(until=stop)
                except Interrupted:  # stopped while no batch came (a stalled disk or worker)
                    if pending:
                        yield from reported()
                    return
                if batch.warning and not warned:
                    # Here, in the thread that trains (the GUI shows its warnings, the CLI
                    # prints them), not where the batch was made: a thread or process.
                    warned = True
                    warnings.warn(batch.warning, DataWarning, stacklevel=2)
                loss, prediction = self._step(
                    model, optimizer, tensors, device, plan, memory_format
                )
                index = self.iteration
                self.iteration += 1
                pending.append((index, loss, batch if sync_every == 1 else None))
                snapshot = cfg.snapshot_interval is not None and index % cfg.snapshot_interval == 0
                if snapshot:
                    self._take_snapshot(index, batch, prediction, model)
                flush = stop is not None and stop.is_set()
                if (snapshot or flush or self.iteration % sync_every == 0
                        or step == num_iterations - 1):
                    yield from reported()
        finally:
            if started_here:
                self.stop()

    def _step(
        self,
        model: Model,
        optimizer: torch.optim.Optimizer,
        tensors: _Tensors,
        device: torch.device,
        plan: PrecisionPlan,
        memory_format: torch.memory_format,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the loss and the prediction (both detached)."""
        assert self._task is not None
        raw = tensors["raw"].to(device, non_blocking=True).contiguous(memory_format=memory_format)
        target = tensors["target"].to(device, non_blocking=True)
        weight = tensors["weight"].to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        autocast = (
            torch.autocast(device.type, dtype=plan.autocast_dtype)
            if plan.autocast_dtype is not None else contextlib.nullcontext()
        )
        with autocast:
            prediction = model(raw)
        # The loss is computed in float32: low-precision reductions lose small losses.
        loss = self._task.loss.compute(prediction.float(), target, weight)
        if self._scaler is not None and plan.needs_grad_scaler:
            self._scaler.scale(loss).backward()
            self._scaler.step(optimizer)
            self._scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if self.scheduler is not None and self.scheduler.optimizer is optimizer:
            self.scheduler.step()
        return loss.detach(), prediction.detach()

    def _diverged(
        self, iteration: int, loss: float, batch: Batch | None, plan: PrecisionPlan
    ) -> TrainingDiverged:
        """The error for the NaN or infinite ``loss`` of ``iteration``, with the likely
        cause, found in its ``batch`` (scanned only now: every iteration would cost), or
        both likely causes without it."""
        lower = "train a new run with a lower learning_rate (e.g. a tenth)" + (
            ", warmup_iterations or fp32 precision" if plan.autocast_dtype == torch.float16
            else " or warmup_iterations"
        )
        if batch is None:
            return TrainingDiverged(
                f"Training stopped at iteration {iteration}: its loss is {loss}. Likely "
                f"causes: NaN or infinity in the raw data where the checks before training "
                f"did not read (they read a sample of large, lazily read data), or a "
                f"learning rate ({self.learning_rate}) too high. Fix: replace such values "
                f"(e.g. with numpy.nan_to_num) or crop the raw to valid data; else {lower}. "
                f"Nothing of this iteration was stored: the run's latest checkpoint, if any, "
                f"is from before it."
            )
        bad = {key: int(np.count_nonzero(~np.isfinite(getattr(batch, key))))
               for key in ("raw", "target", "weight")}
        if bad["raw"]:
            cause = (
                f"The raw input of that batch holds {bad['raw']} NaN or infinite values: the "
                f"raw data holds them where the checks before training did not read (they "
                f"read a sample of large, lazily read data), or an augment made them (e.g. "
                f"gamma of negative intensities). Fix: replace such values (e.g. with "
                f"numpy.nan_to_num) or crop the raw to valid data, then train again."
            )
        elif bad["target"] or bad["weight"]:
            cause = (
                f"The targets or weights the task made from the labels of that batch hold "
                f"{bad['target'] + bad['weight']} NaN or infinite values. Fix: check the "
                f"labels and the task's parameters."
            )
        else:
            cause = (
                f"Its input, targets and weights are finite, so the model diverged: the "
                f"learning rate ({self.learning_rate}) is likely too high. Fix: {lower}."
            )
        return TrainingDiverged(
            f"Training stopped at iteration {iteration}: its loss is {loss}. {cause} "
            f"Nothing of this iteration was stored: the run's latest checkpoint, if any, is "
            f"from before it."
        )

    # -- snapshots -------------------------------------------------------------------------

    def _take_snapshot(
        self, iteration: int, batch: Batch, prediction: torch.Tensor, model: Model
    ) -> None:
        """Keep (and store, with a snapshot container) the first sample of ``batch``,
        mirrored and transposed back, so that it lines up with its source (a warped sample
        stays as the network saw it)."""
        assert self.provider is not None
        with torch.no_grad():
            first = prediction[:1].float()
            activation = getattr(model, "eval_activation", None)
            if activation is not None:
                first = activation(first)
            predicted = np.ascontiguousarray(first[0].cpu().numpy())
        raw_voxel_size = self.provider.raw_voxel_size
        out_voxel_size = self.provider.output_voxel_size
        input_begin = batch.input_rois[0].begin
        output_begin = batch.output_rois[0].begin
        steps = batch.grid_steps[0] if batch.grid_steps else None
        dims = self.provider.dims

        def aligned(data: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(undo_grid_steps(data, steps, dims)) if steps else data

        arrays = {"raw": SnapshotArray(aligned(batch.raw[0]), input_begin, raw_voxel_size)}
        for name, data in (("gt", batch.gt[0]), ("mask", batch.mask[0]),
                           ("target", batch.target[0]), ("weight", batch.weight[0]),
                           ("prediction", predicted)):
            arrays[name] = SnapshotArray(aligned(data), output_begin, out_voxel_size)
        self.latest_snapshot = Snapshot(iteration, arrays)
        if self._snapshot_container is not None:
            raw = self.provider.datasets[0].raw
            spatial_axes = raw.axis_names[raw.channel_dims :]
            write_snapshot(
                self.latest_snapshot, self._snapshot_container.container, spatial_axes, raw.units
            )


def _reseed(provider: BatchProvider, seed: int) -> None:
    provider.rng = np.random.default_rng(seed)


def _sync_interval(device: torch.device, every: int) -> int:
    """Iterations between loss reads: reading waits for an accelerator to finish its queued
    work, so it is done every ``every`` iterations; on the CPU there is nothing to wait for."""
    return 1 if device.type == "cpu" else every
