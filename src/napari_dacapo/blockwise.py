"""Blockwise prediction of zarr volumes bigger than memory, with daisy workers.

:func:`predict_blockwise` cuts the requested region into blocks of one prediction tile
each (the model's eval output, read from the input grown by the network's context, exactly
as :func:`napari_dacapo.predict.predict` tiles it) and lets daisy hand the blocks to worker
processes. Each worker loads the checkpoint once, predicts its blocks and writes them into
a zarr array that the parent prepared, so nothing ever holds the whole volume.

Restarting. After writing a block a worker leaves an empty *done marker* file,
``<container>.blocks/<dataset>/<block id>``, beside the output container; a rerun of the
same job skips every block that has one (daisy's ``check_function``) and predicts only the
missing ones. The job itself (run, checkpoint iteration, input, region, precision) is
recorded in ``job.yaml`` there: a different job over the same output is an error unless
``overwrite=True``, so stale blocks of an earlier job are never mixed in.

Workers. By default daisy starts ``workers`` local processes. With ``worker_command``, a
shell command template such as ``"bsub -K -n 1 {command}"`` or ``"srun -n 1 {command}"``,
each of daisy's worker slots instead runs that command, with ``{command}`` replaced by the
worker's command line (``python -m napari_dacapo.blockwise JOB --context CONTEXT``), so
workers can run on other machines that see the same files. daisy 2 spawns a worker by
calling a function in a worker process of its own; here that function runs the command and
waits for it, so the command must block until its worker ends (``bsub -K``, ``srun``).

Failures. A block whose prediction raises is reported to daisy with its traceback and
retried up to ``max_retries`` times (by any worker; the worker itself keeps going). Blocks
still missing afterwards raise :class:`BlockwisePredictionError`, naming them; nothing is
silently left empty. Worker logs go to ``<container>.blocks/<dataset>/logs``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from funlib.geometry import Roi

if TYPE_CHECKING:
    import torch

    from napari_dacapo.checkpoints import Checkpoint
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore

__all__ = ["BlockwisePredictionError", "predict_blockwise", "split_zarr_path", "worker_main"]

JOB_FILE = "job.yaml"
LOG_FOLDER = "logs"


class BlockwisePredictionError(RuntimeError):
    """Blocks of a blockwise prediction were still not written after all retries.

    Attributes
    ----------
    failed_rois
        World write ROIs of the missing blocks.
    """

    def __init__(self, message: str, failed_rois: list[Roi]) -> None:
        super().__init__(message)
        self.failed_rois = failed_rois


def split_zarr_path(value: str | Path) -> tuple[Path, str]:
    """Split ``container.zarr/path/in/it`` at its last ``.zarr`` component.

    Raises
    ------
    ValueError
        If no component ends in ``.zarr``.
    """
    parts = Path(value).parts
    ends = [i for i, part in enumerate(parts) if part.endswith(".zarr")]
    if not ends:
        raise ValueError(
            f"'{value}' names no zarr container; give container.zarr/dataset, e.g. "
            f"data.zarr/raw."
        )
    return Path(*parts[: ends[-1] + 1]), "/".join(parts[ends[-1] + 1 :])


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs, as plain data (written to ``job.yaml``)."""

    run: str
    store_root: str
    iteration: int
    input: dict[str, Any]  # the input ArrayConfig, as configs.to_dict writes it
    rescale: bool | list[float]
    output_file: str
    output_dataset: str
    roi: list[list[int]]  # [offset, shape] of the output region, world units
    device: str | None
    precision: str | None

    @property
    def marker_dir(self) -> Path:
        return Path(f"{self.output_file}.blocks") / self.output_dataset

    @classmethod
    def load(cls, path: str | Path) -> _Job:
        return cls(**yaml.safe_load(Path(path).read_text()))


class _BlockPredictor:
    """The worker side: the model, input and output of one job, opened once."""

    def __init__(self, job: _Job) -> None:
        from napari_dacapo.checkpoints import load_model, load_run
        from napari_dacapo.experiments.configs import from_dict
        from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
            ZarrArrayConfig,
        )
        from napari_dacapo.predict import prediction_device_plan, prediction_input
        from napari_dacapo.store.file_store import FileStore

        run, store = load_run(job.run, FileStore(job.store_root))
        rescale = tuple(job.rescale) if isinstance(job.rescale, list) else job.rescale
        self.raw = prediction_input(run, from_dict(job.input), rescale=rescale)
        self.device, self.plan = prediction_device_plan(run, job.device, job.precision)
        self.model = load_model(run, job.iteration, store).to(self.device)
        if self.plan.channels_last:
            self.model = self.model.to(memory_format=self.plan.memory_format(self.raw.dims))
        output = ZarrArrayConfig(
            name="prediction", file_name=Path(job.output_file), dataset=job.output_dataset,
            mode="r+",
        )
        self.output = output.array()
        self.marker_dir = job.marker_dir

    def __call__(self, block: Any) -> None:
        from napari_dacapo.predict import predict_array

        # Overhanging blocks at the far end are cut to the output array.
        write_roi = block.write_roi.intersect(self.output.roi)
        data, roi, _ = predict_array(
            self.model, self.raw, write_roi, self.device, self.plan.autocast_dtype,
            self.plan.channels_last,
        )
        self.output[roi] = data
        # The marker comes last: a worker killed mid-write leaves the block to redo.
        (self.marker_dir / str(block.block_id[1])).touch()


def _work(job_path: str | Path, context: Any = None) -> None:
    """Predict blocks handed out by the daisy server until there are none left."""
    import daisy

    predictor = _BlockPredictor(_Job.load(job_path))
    client = daisy.Client(context)
    while True:
        acquired = False
        try:
            with client.acquire_block() as block:
                if block is None:
                    return
                acquired = True
                predictor(block)
        except Exception:
            if not acquired:  # the connection to the server failed: nothing to retry
                raise
            # The client has reported the failure (with its traceback) and daisy retries
            # the block; this worker keeps its loaded model for the next one.


@dataclass(frozen=True)
class _Worker:
    """daisy's worker function: run :func:`_work` here, or start it with the user's
    command template and wait for it (daisy calls this in a worker process of its own)."""

    job_path: str
    worker_command: str | None = None

    def __call__(self, *, context: Any = None) -> None:
        if self.worker_command is None:
            _work(self.job_path, context)
            return
        command = shlex.join([
            sys.executable, "-m", "napari_dacapo.blockwise", self.job_path,
            "--context", context.to_env(),
        ])
        subprocess.run(self.worker_command.format(command=command), shell=True, check=True)


def worker_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of a worker started by a ``worker_command``:
    ``python -m napari_dacapo.blockwise JOB --context CONTEXT``."""
    import daisy

    parser = argparse.ArgumentParser(
        prog="python -m napari_dacapo.blockwise",
        description="A worker of napari_dacapo.blockwise.predict_blockwise.",
    )
    parser.add_argument("job", help="The job.yaml of the prediction.")
    parser.add_argument("--context", required=True, help="The daisy worker context.")
    args = parser.parse_args(argv)
    # The context travels on the command line, not in the environment, because cluster
    # launchers do not all pass the environment on; daisy parses it from there.
    os.environ[daisy.Context.ENV_VARIABLE] = args.context
    _work(args.job, daisy.Context.from_env())


def _prepare_output(job: _Job, shape, voxel_size, axis_names, units, chunks,
                    overwrite: bool) -> None:
    """Create the output array and the marker folder, or check that both belong to
    ``job`` when resuming."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        prepare_zarr_array,
    )
    from napari_dacapo.store.atomic import atomic_write_text

    job_file = job.marker_dir / JOB_FILE
    exists = (Path(job.output_file) / job.output_dataset).exists()
    if exists and not overwrite:
        if job_file.exists() and _Job.load(job_file) == job:
            return  # resume: the done markers belong to this very job
        raise FileExistsError(
            f"{job.output_file}/{job.output_dataset} already exists and was not written by "
            f"this prediction (other run, checkpoint, input, region or precision). Pass "
            f"overwrite=True (--overwrite) to replace it, or choose another output."
        )
    shutil.rmtree(job.marker_dir, ignore_errors=True)
    job.marker_dir.mkdir(parents=True)
    prepare_zarr_array(
        job.output_file, job.output_dataset, shape, "float32", voxel_size=voxel_size,
        offset=Roi(*job.roi).offset, axis_names=axis_names, units=units, chunks=chunks,
        overwrite=True,
    )
    # Written last: an interrupted preparation is not mistaken for a resumable job.
    atomic_write_text(job_file, yaml.safe_dump(dataclasses.asdict(job), sort_keys=False))


def predict_blockwise(
    run: Run | str,
    checkpoint: Checkpoint,
    input_config: ZarrArrayConfig | str | Path,
    output: str | Path,
    *,
    workers: int = 2,
    roi: Roi | None = None,
    store: FileStore | None = None,
    device: torch.device | str | None = None,
    precision: str | None = None,
    rescale: bool | tuple[float, float] = True,
    worker_command: str | None = None,
    max_retries: int = 2,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Predict a zarr array block by block with ``workers`` daisy worker processes.

    The result equals :func:`napari_dacapo.predict.predict` of the same input: blocks are
    its tiles, read with zero padding outside the input. Rerunning an interrupted job
    predicts only the blocks not yet written (see the module docstring).

    Parameters
    ----------
    run, checkpoint, store, device, precision, rescale
        As for :func:`napari_dacapo.predict.predict_tiles`; the run must be stored.
    input_config
        The input: a ZarrArrayConfig (or any ArrayConfig) or ``"container.zarr/dataset"``.
    output
        ``"container.zarr/dataset"`` for the float32 prediction ``(channels, *spatial)``.
    workers
        How many worker processes daisy runs at once.
    roi
        World region to predict (default: the whole input), grown to the output voxel
        grid.
    worker_command
        A shell command template with ``{command}``, e.g. ``"bsub -K -n 1 {command}"``,
        that starts a worker elsewhere and waits for it (default: local processes).
    max_retries
        How often a failed block is retried before it is reported.
    overwrite
        Replace an existing output that another job wrote (the same job resumes).
    progress
        Show daisy's progress bar.

    Returns
    -------
    Path
        ``container.zarr/dataset`` of the prediction.

    Raises
    ------
    BlockwisePredictionError
        If blocks failed on every try; rerunning predicts just those.
    """
    import daisy

    from napari_dacapo.checkpoints import load_run, resolve_checkpoint
    from napari_dacapo.experiments.configs import to_dict
    from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import ArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )
    from napari_dacapo.predict import TileGeometry, prediction_input

    if workers < 1:
        raise ValueError(f"workers is {workers}; give at least 1 worker.")
    if worker_command is not None and "{command}" not in worker_command:
        raise ValueError(
            f"worker_command '{worker_command}' has no '{{command}}' placeholder; write "
            f"where the worker's command line goes, e.g. 'bsub -K -n 1 {{command}}'."
        )
    if not isinstance(input_config, ArrayConfig):
        in_file, in_dataset = split_zarr_path(input_config)
        input_config = ZarrArrayConfig(name="input", file_name=in_file, dataset=in_dataset)
    out_file, out_dataset = split_zarr_path(output)
    if not out_dataset:
        raise ValueError(f"output '{output}' names no dataset; give container.zarr/dataset.")

    run, store = load_run(run, store)
    iteration, _ = resolve_checkpoint(run, checkpoint, store)
    raw = prediction_input(run, input_config, rescale=rescale)
    geometry = TileGeometry.for_model(run.model, raw.voxel_size)
    out_voxel_size = geometry.output_voxel_size
    if roi is not None and roi.dims != raw.dims:
        raise ValueError(
            f"roi {roi} has {roi.dims} axes, but the input has {raw.dims} spatial axes "
            f"({', '.join(raw.axis_names[raw.channel_dims:])}); give one per axis."
        )
    out_roi = (roi or raw.roi).snap_to_grid(out_voxel_size, mode="grow")
    job = _Job(
        run=run.name, store_root=str(store.root), iteration=int(iteration),
        input=to_dict(input_config),
        rescale=list(rescale) if isinstance(rescale, tuple) else bool(rescale),
        output_file=str(Path(out_file).absolute()), output_dataset=out_dataset,
        roi=[list(map(int, out_roi.offset)), list(map(int, out_roi.shape))],
        device=None if device is None else str(device), precision=precision,
    )
    channels = run.model.num_out_channels
    tile_shape = tuple(int(s) for s in geometry.output_size / out_voxel_size)
    _prepare_output(
        job, (channels, *(int(s) for s in out_roi.shape / out_voxel_size)), out_voxel_size,
        ["c^", *raw.axis_names[raw.channel_dims:]], raw.units, (channels, *tile_shape),
        overwrite,
    )

    marker_dir = job.marker_dir
    # One block is one tile: daisy's read ROI is the tile's input, its write ROI the tile's
    # output, both relative to the total ROI = requested output region grown by the context.
    # "overhang" keeps the last blocks that stick out; workers cut them to the output.
    total_roi = out_roi.grow(geometry.context, geometry.context)
    read_roi = Roi((0,) * raw.dims, geometry.input_size)
    write_roi = Roi(geometry.context, geometry.output_size)
    task_id = f"predict_{out_dataset.replace('/', '_')}"

    def is_done(block: Any) -> bool:
        return (marker_dir / str(block.block_id[1])).exists()

    with warnings.catch_warnings():
        # daisy warns that check_function runs per block on the server; here it is one
        # stat() of a marker file, and the markers (unlike daisy's tracking store) live
        # with the output they describe, so a replaced output never inherits them.
        warnings.filterwarnings("ignore", message=r"Task\(check_function", category=UserWarning)
        task = daisy.Task(
            task_id, total_roi, read_roi, write_roi,
            process_function=_Worker(str(marker_dir.absolute() / JOB_FILE), worker_command),
            check_function=is_done, read_write_conflict=False, fit="overhang",
            max_workers=workers, max_retries=max_retries,
        )
    with _daisy_logs(marker_dir / LOG_FOLDER):
        try:
            states = daisy.run_blockwise(
                task, progress=progress, block_tracking=False, return_states=True,
                summary=False,
            )
            worker_error = states[task_id].last_worker_error
        except RuntimeError as e:  # daisy gave up on the task (workers kept crashing)
            worker_error = str(e)

    graph = daisy.BlockwiseDependencyGraph(
        task_id, read_roi, write_roi, False, "overhang", total_read_roi=total_roi
    )
    missing = [b.write_roi for b, _ in graph.enumerate_all_dependencies() if not is_done(b)]
    if missing:
        shown = ", ".join(str(r) for r in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise BlockwisePredictionError(
            f"{len(missing)} of {graph.num_blocks} blocks of {out_file}/{out_dataset} were "
            f"not predicted after {max_retries} retries (write ROIs: {shown}). Last error: "
            f"{worker_error or 'none reported'}. Worker logs: {marker_dir / LOG_FOLDER}. "
            f"Fix the cause and rerun the same prediction: only these blocks are redone.",
            missing,
        )
    return Path(out_file) / out_dataset


@contextlib.contextmanager
def _daisy_logs(folder: Path):
    """Route daisy's per-worker logs into ``folder`` (not ``./daisy_logs``) for a run."""
    from daisy import logging as daisy_logging

    before = daisy_logging.get_log_basedir()
    daisy_logging.set_log_basedir(folder)
    try:
        yield
    finally:
        daisy_logging.set_log_basedir(before)


if __name__ == "__main__":
    worker_main()
