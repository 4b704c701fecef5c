"""What every blockwise job shares: its record, the done markers, the workers and the
report of blocks still missing.

A job (a :class:`BlockwiseJob`: plain data) writes one output array and keeps its
bookkeeping in the *job folder* ``<container>.blocks/<dataset>/`` beside the output:
``job.yaml`` (the job itself), one folder of done markers per step, and ``logs/``. A job
runs as one or more *steps* (:class:`Step`), each a daisy task over a grid of blocks.

Restarting. After a block, its worker writes a *done marker* named by the block's id; a
rerun of the same job skips every block that has one (daisy's ``check_function``) and
does only the missing ones. A marker may carry the block's results for the parent (an
``.npz`` payload, e.g. the fragments of a segmentation block); it is written atomically,
so a marker is either absent or complete. A different job over the same output is an
error unless ``overwrite=True``, so stale blocks of an earlier job are never mixed in.
Whatever replaces an output array, a job with ``overwrite=True`` or an in-process
prediction, discards its job folder (:func:`discard_job`), and gives the new array a fresh
stamp (:func:`fresh_stamp`) by which jobs that read it (a segmentation of a prediction)
notice that it was written anew.

Incomplete outputs. Until its writer finishes it, an output carries the attribute
:data:`INCOMPLETE_ATTR`, set when the array is made and saying how to finish it
(:func:`finish_output` removes it). An interrupted job leaves it, so that whatever opens
the array (:func:`incomplete_output`) can tell a partial output from a finished one: a
segmentation refuses such a prediction.

Workers. By default daisy starts ``workers`` local processes, each computing with
``cores // workers`` threads (torch's and OpenMP's; the job's ``threads``), so that the
workers together use the machine's cores without putting several threads on one core.
With ``worker_command``, a shell command template such as ``"bsub -K -n 1 {command}"`` or
``"srun -n 1 {command}"``, each of daisy's worker slots instead runs that command, with
``{command}`` replaced by the worker's command line (``python -m napari_dacapo.blockwise
JOB --step STEP --context CONTEXT``), so workers can run on other machines that see the
same files. daisy 2 spawns a worker by calling a function in a worker process of its own;
here that function runs the command and waits for it, so the command must block until its
worker ends (``bsub -K``, ``srun``). Such workers keep their libraries' default thread
count unless the job names one.

Failures. A block that raises is reported to daisy with its traceback and retried up to
``max_retries`` times (by any worker; the worker itself keeps going). Blocks still missing
afterwards raise the job's :class:`BlockwiseError`, naming them; nothing is silently left
empty. Worker logs go to ``logs/`` in the job folder.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml
from funlib.geometry import Roi

from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import keep_consolidated
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_metadata import (
    INCOMPLETE_ATTR,
)

__all__ = [
    "BlockwiseError",
    "BlockwiseJob",
    "Step",
    "job_folder",
    "recorded_job",
    "discard_job",
    "fresh_stamp",
    "stamp_output",
    "output_stamp",
    "finish_output",
    "incomplete_output",
    "threads_per_worker",
    "prepare_output",
    "missing_blocks",
    "run_step",
    "read_payloads",
    "worker_main",
]

JOB_FILE = "job.yaml"
LOG_FOLDER = "logs"
#: The zarr attribute that holds an output array's stamp (see :func:`stamp_output`).
STAMP_ATTR = "napari_dacapo_written"
#: How daisy's own error ends: advice for its Python API, which a CLI user cannot follow.
_DAISY_ADVICE = "Fix the worker error or increase Task("

#: What a worker's block function returns for the parent: arrays stored in the block's
#: done marker, or None for a marker that only says "done".
Payload = dict[str, np.ndarray] | None
BlockFunction = Callable[[Any], Payload]


class BlockwiseError(RuntimeError):
    """Blocks of a blockwise job were still not done after all retries.

    Attributes
    ----------
    failed_rois
        World write ROIs of the missing blocks (cut to the output).
    """

    def __init__(self, message: str, failed_rois: list[Roi]) -> None:
        super().__init__(message)
        self.failed_rois = failed_rois


def job_folder(output_file: str | Path, output_dataset: str) -> Path:
    """The job folder of the output ``output_file/output_dataset``:
    ``<container>.blocks/<dataset>``."""
    return Path(f"{Path(output_file).absolute()}.blocks") / output_dataset


@dataclass(frozen=True, kw_only=True)
class BlockwiseJob(ABC):
    """A blockwise job as plain data: what its workers need, written to ``job.yaml``.

    Subclasses add their fields, name their ``kind`` (the tag in ``job.yaml``) and
    ``steps``, and open the worker side of each step (:meth:`open_step`).

    Attributes
    ----------
    output_file, output_dataset
        The output array (absolute container path, dataset inside it).
    roi
        ``[offset, shape]`` of the output, world units.
    threads
        Compute threads of each worker (torch, OpenMP), or None for the libraries'
        default. Not part of the job's identity: a rerun with other workers resumes.
    """

    output_file: str
    output_dataset: str
    roi: list[list[int]]
    threads: int | None = None

    kind: ClassVar[str] = ""
    steps: ClassVar[tuple[str, ...]] = ()
    #: How messages name the job ("rerun the same <noun>").
    noun: ClassVar[str] = "job"
    #: What a user reruns to finish an interrupted job (said by its incomplete output).
    rerun: ClassVar[str] = "job"
    #: How a refusal names a field that differs from the recorded job, where its name
    #: alone would not say what changed.
    field_notes: ClassVar[dict[str, str]] = {}
    error_type: ClassVar[type[BlockwiseError]] = BlockwiseError
    _kinds: ClassVar[dict[str, type[BlockwiseJob]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BlockwiseJob._kinds[cls.kind] = cls

    @property
    def output(self) -> Path:
        """``container.zarr/dataset`` of the output."""
        return Path(self.output_file) / self.output_dataset

    @property
    def output_roi(self) -> Roi:
        return Roi(*self.roi)

    @property
    def folder(self) -> Path:
        """The job folder, ``<container>.blocks/<dataset>``."""
        return job_folder(self.output_file, self.output_dataset)

    @property
    def job_file(self) -> Path:
        return self.folder / JOB_FILE

    def marker_dir(self, step: str) -> Path:
        """Where the done markers of ``step`` live."""
        return self.folder / step

    @abstractmethod
    def open_step(self, step: str) -> BlockFunction:
        """The worker side of ``step``: open what its blocks need (once per worker) and
        return the function that processes one daisy block."""

    def record(self) -> dict[str, Any]:
        """What ``job.yaml`` holds: the kind and the fields."""
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @staticmethod
    def load(path: str | Path) -> BlockwiseJob:
        """The job recorded in ``path`` (a ``job.yaml``)."""
        data = yaml.safe_load(Path(path).read_text())
        return BlockwiseJob._kinds[data.pop("kind")](**data)


@dataclass(frozen=True)
class Step:
    """One daisy task of a job: a grid of blocks, relative to ``total_roi``.

    Attributes
    ----------
    name
        The step's name (its marker folder and daisy task id).
    verb
        What a done block is, for the report ("predicted").
    total_roi, read_roi, write_roi
        As for ``daisy.Task``; blocks that overhang the output are cut to it by the worker.
    read_write_conflict
        Whether blocks read what their neighbours write (daisy then never runs two such
        blocks at once, and of two neighbours always finishes one before the other).
    """

    name: str
    verb: str
    total_roi: Roi
    read_roi: Roi
    write_roi: Roi
    read_write_conflict: bool = False

    def graph(self, task_id: str) -> Any:
        """daisy's graph of the step's blocks (their ids and ROIs, as the run hands them
        out)."""
        import daisy

        return daisy.BlockwiseDependencyGraph(
            task_id, self.read_roi, self.write_roi, self.read_write_conflict, "overhang",
            total_read_roi=self.total_roi,
        )


def _load_job_if_any(path: Path) -> BlockwiseJob | None:
    try:
        return BlockwiseJob.load(path)
    except (OSError, AttributeError, KeyError, TypeError, yaml.YAMLError):
        return None


def recorded_job(output_file: str | Path, output_dataset: str) -> BlockwiseJob | None:
    """The job recorded as the writer of ``output_file/output_dataset``, if any (and
    readable)."""
    return _load_job_if_any(job_folder(output_file, output_dataset) / JOB_FILE)


def discard_job(output_file: str | Path, output_dataset: str) -> None:
    """Forget the blockwise job that wrote ``output_file/output_dataset`` (its job folder:
    record, done markers, logs). Call it before anything replaces that array: the markers
    would otherwise let a later run of that job take the new contents for its own finished
    blocks."""
    shutil.rmtree(job_folder(output_file, output_dataset), ignore_errors=True)


def fresh_stamp(unfinished: str | None = None) -> dict[str, str]:
    """The attributes of an output array (re)made now: a new stamp (a random id) and, with
    ``unfinished``, the mark that the array is incomplete (``unfinished`` says how to
    finish it; :func:`finish_output` removes it). Give them when the array is made (e.g.
    ``prepare_zarr_array(attributes=...)``), so that no moment shows it unmarked. Jobs that
    read the array record its stamp (:func:`output_stamp`), so that they notice when it was
    written anew since."""
    import uuid

    attributes = {STAMP_ATTR: uuid.uuid4().hex}
    if unfinished is not None:
        attributes[INCOMPLETE_ATTR] = unfinished
    return attributes


def stamp_output(
    output_file: str | Path, output_dataset: str, unfinished: str | None = None
) -> str:
    """Give the array ``output_file/output_dataset``, just (re)created, the attributes of
    :func:`fresh_stamp` and return its stamp."""
    import zarr

    attributes = fresh_stamp(unfinished)
    zarr.open_array(str(output_file), path=output_dataset, mode="r+").attrs.update(attributes)
    return attributes[STAMP_ATTR]


def finish_output(output_file: str | Path, output_dataset: str) -> None:
    """Mark the array ``output_file/output_dataset`` complete: remove the incomplete mark
    that :func:`fresh_stamp` gave it. Call it once everything is written."""
    import zarr

    attrs = zarr.open_array(str(output_file), path=output_dataset, mode="r+").attrs
    if INCOMPLETE_ATTR in attrs:
        del attrs[INCOMPLETE_ATTR]
        keep_consolidated(output_file)


def incomplete_output(output_file: str | Path, output_dataset: str) -> str | None:
    """How to finish the array ``output_file/output_dataset`` if it is incomplete (its
    writer was interrupted or is still running), else None (also for an array that cannot
    be read)."""
    import zarr

    try:
        attrs = zarr.open_array(str(output_file), path=output_dataset, mode="r").attrs
        unfinished = attrs.get(INCOMPLETE_ATTR)
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return None if unfinished is None else str(unfinished)


def output_stamp(output_file: str | Path, output_dataset: str) -> str | None:
    """The stamp of the array ``output_file/output_dataset`` (None for an array that
    napari-dacapo did not write, or that cannot be read)."""
    import zarr

    try:
        stamp = zarr.open_array(str(output_file), path=output_dataset, mode="r").attrs.get(
            STAMP_ATTR
        )
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return stamp if isinstance(stamp, str) else None


def threads_per_worker(
    workers: int, worker_command: str | None, threads: int | None = None
) -> int | None:
    """The compute threads of each worker: ``threads`` if given; for local workers the
    usable cores shared out, ``max(1, cores // workers)`` (each worker process would
    otherwise run one thread per core: with 2 workers on 2 cores, a 1000-block 3D
    prediction took 46 s instead of 13 s); None (the libraries' default) for workers
    started by a ``worker_command``, which run on machines of their own."""
    if threads is not None:
        return threads
    if worker_command is not None:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


def prepare_output(
    job: BlockwiseJob,
    *,
    shape: Sequence[int],
    dtype: Any,
    voxel_size: Sequence[int],
    axis_names: Sequence[str],
    units: Sequence[str],
    chunks: Sequence[int],
    overwrite: bool,
    display_from: tuple[str | Path, str] | None = None,
) -> None:
    """Create the output array and the job folder, or check that both belong to ``job``
    when resuming. ``display_from`` (container, dataset) is the zarr array whose napari
    placement (world factor, units) the output takes over: the input's.

    Raises
    ------
    FileExistsError
        If the output exists and another job (or none) wrote it, unless ``overwrite``.
    """
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        prepare_zarr_array,
    )

    if job.output.exists() and not overwrite:
        recorded = _load_job_if_any(job.job_file)
        if recorded is not None and type(recorded) is type(job):
            # The thread count is how the job runs, not what it computes.
            differ = [f.name for f in dataclasses.fields(job) if f.name != "threads"
                      and getattr(recorded, f.name) != getattr(job, f.name)]
            if not differ:  # resume: the done markers belong to this very job
                if recorded != job:  # the workers read their thread count from job.yaml
                    _write_job(job)
                return
            names = ", ".join(job.field_notes.get(name, name) for name in differ)
            verb = "differs" if len(differ) == 1 else "differ"
            why = f"its {names} {verb} from the job recorded in {job.job_file}"
        else:
            why = f"no such job is recorded in {job.job_file}"
        unfinished = incomplete_output(job.output_file, job.output_dataset)
        state = "" if unfinished is None else f" It is incomplete: {unfinished}."
        raise FileExistsError(
            f"{job.output} already exists and was not written by this {job.noun} ({why})."
            f"{state} To replace it, pass overwrite=True (--overwrite on the command line), "
            f"or choose another output."
        )
    discard_job(job.output_file, job.output_dataset)
    job.folder.mkdir(parents=True)
    # Marked incomplete from the start; the job's last step finishes it (finish_output).
    unfinished = (
        f"the blockwise {job.noun} writing it was interrupted or is still running; to "
        f"finish it, rerun the same {job.rerun} (its finished blocks are kept)"
    )
    prepare_zarr_array(
        job.output_file, job.output_dataset, shape, dtype, voxel_size=voxel_size,
        offset=job.output_roi.offset, axis_names=axis_names, units=units, chunks=chunks,
        overwrite=True, attributes=fresh_stamp(unfinished),
    )
    if display_from is not None:
        copy_display(display_from, (job.output_file, job.output_dataset))
    # Written last: an interrupted preparation is not mistaken for a resumable job.
    _write_job(job)


def copy_display(source: tuple[str | Path, str], target: tuple[str | Path, str]) -> None:
    """Give the zarr array ``target`` the napari placement that ``source`` records (the
    world factor and units our writer stores for layers with a fractional scale), so that
    both open on the same spot in napari."""
    import zarr

    from napari_dacapo._reader import NAPARI_ATTR, recorded_display

    display = recorded_display(*source)
    if display:
        zarr.open_array(str(target[0]), path=target[1], mode="r+").attrs[NAPARI_ATTR] = display


def _write_job(job: BlockwiseJob) -> None:
    from napari_dacapo.store.atomic import atomic_write_text

    atomic_write_text(job.job_file, yaml.safe_dump(job.record(), sort_keys=False))


def _task_id(job: BlockwiseJob, step: Step) -> str:
    return f"{step.name}_{job.output_dataset.replace('/', '_')}"


def missing_blocks(job: BlockwiseJob, step: Step) -> list[Roi]:
    """Write ROIs (cut to the output) of the blocks of ``step`` without a done marker."""
    marker_dir = job.marker_dir(step.name)
    return [
        block.write_roi.intersect(job.output_roi)
        for block, _ in step.graph(_task_id(job, step)).enumerate_all_dependencies()
        if not (marker_dir / str(block.block_id[1])).exists()
    ]


def run_step(
    job: BlockwiseJob,
    step: Step,
    *,
    workers: int,
    worker_command: str | None,
    max_retries: int,
    progress: bool,
) -> None:
    """Run the blocks of ``step`` that have no done marker yet with ``workers`` daisy
    workers (see the module docstring).

    Raises
    ------
    BlockwiseError
        The job's ``error_type``, if blocks failed on every try; rerunning the job does
        just those.
    """
    import daisy

    if not missing_blocks(job, step):
        return  # nothing to do: start no worker
    marker_dir = job.marker_dir(step.name)
    marker_dir.mkdir(parents=True, exist_ok=True)
    task_id = _task_id(job, step)

    def is_done(block: Any) -> bool:
        return (marker_dir / str(block.block_id[1])).exists()

    with warnings.catch_warnings():
        # daisy warns that check_function runs per block on the server; here it is one
        # stat() of a marker file, and the markers (unlike daisy's tracking store) live
        # with the output they describe, so a replaced output never inherits them.
        warnings.filterwarnings("ignore", message=r"Task\(check_function", category=UserWarning)
        task = daisy.Task(
            task_id, step.total_roi, step.read_roi, step.write_roi,
            process_function=_Worker(str(job.job_file.absolute()), step.name, worker_command),
            check_function=is_done, read_write_conflict=step.read_write_conflict,
            fit="overhang", max_workers=workers, max_retries=max_retries,
        )
    logs = job.folder / LOG_FOLDER
    with _daisy_logs(logs):
        try:
            states = daisy.run_blockwise(
                task, progress=progress, block_tracking=False, return_states=True,
                summary=False,
            )
            worker_error = states[task_id].last_worker_error
        except RuntimeError as e:  # daisy gave up on the task (workers kept crashing)
            worker_error = str(e)

    missing = missing_blocks(job, step)
    if missing:
        total = step.graph(task_id).num_blocks
        shown = ", ".join(str(r) for r in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise job.error_type(
            f"{len(missing)} of {total} blocks of {job.output} were not {step.verb} after "
            f"{max_retries} retries (write ROIs: {shown}). Last error: "
            f"{_worker_error_summary(worker_error)}. The workers' full errors are in "
            f"{logs / task_id} (worker_*.err). Fix what they report, then rerun the same "
            f"{job.noun}: only these blocks are redone.",
            missing,
        )


def _worker_error_summary(error: str | None) -> str:
    """daisy's report of a worker error cut to what a user acts on: its first line and
    the exception a traceback ends with (the whole traceback is in the worker logs),
    without daisy's advice for its own Python API."""
    if not error:
        return "none reported"
    text = error.split(_DAISY_ADVICE)[0].strip()
    # Without the carets that underline code in a traceback.
    lines = [line.strip() for line in text.splitlines() if line.strip(" ^~")]
    if len(lines) > 1 and any(line.startswith('File "') for line in lines):
        head = []
        for line in lines[:-1]:
            if line.startswith('File "'):
                break
            for noise in ("Traceback (most recent call last):", "... (traceback truncated) ..."):
                line = line.replace(noise, "").strip()
            if line:
                head.append(line)
        lines = [*head, lines[-1]]
    return " ".join(lines).strip().rstrip(".")


def _write_marker(path: Path, payload: Payload) -> None:
    from napari_dacapo.store.atomic import atomic_write

    atomic_write(path, lambda fh: np.savez(fh, **payload) if payload else None)


def read_payloads(marker_dir: Path) -> Iterator[dict[str, np.ndarray]]:
    """The payloads of the done markers in ``marker_dir``."""
    for path in sorted(marker_dir.iterdir()):
        if path.name.isdigit():
            with np.load(path) as payload:
                yield {name: payload[name] for name in payload.files}


def _work(job_path: str | Path, step: str, context: Any = None) -> None:
    """Process blocks of ``step`` handed out by the daisy server until there are none
    left, leaving a done marker after each."""
    import daisy

    _quiet_on_interrupt()
    job = BlockwiseJob.load(job_path)
    if job.threads is not None:
        _limit_threads(job.threads)
    process = job.open_step(step)
    marker_dir = job.marker_dir(step)
    client = daisy.Client(context)
    while True:
        acquired = False
        try:
            with client.acquire_block() as block:
                if block is None:
                    return
                acquired = True
                payload = process(block)
                # The marker comes last: a worker killed mid-block leaves the block to redo.
                _write_marker(marker_dir / str(block.block_id[1]), payload)
        except Exception:
            if not acquired:  # the connection to the server failed: nothing to retry
                raise
            # The client has reported the failure (with its traceback) and daisy retries
            # the block; this worker keeps what it opened for the next one.


def _quiet_on_interrupt() -> None:
    """Make Ctrl-C end this worker process at once and quietly (exit code 130): its block,
    without a marker, is redone when the job is rerun. Ctrl-C in a terminal reaches every
    process of its group, and each worker's KeyboardInterrupt traceback, printed by daisy,
    buried the job's own 'Aborted!' under a couple of hundred lines."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def _limit_threads(threads: int) -> None:
    """Compute with ``threads`` threads in this worker process: set before its block
    function opens anything, so that libraries started later (torch, OpenMP, BLAS, and
    rayon, whose pool the zarrs reader decodes chunks in) read it from the environment;
    torch, if already started, is told directly."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                     "RAYON_NUM_THREADS"):
        os.environ[variable] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


@dataclass(frozen=True)
class _Worker:
    """daisy's worker function: run :func:`_work` here, or start it with the user's
    command template and wait for it (daisy calls this in a worker process of its own,
    which it ends)."""

    job_path: str
    step: str
    worker_command: str | None = None

    def __call__(self, *, context: Any = None) -> None:
        if self.worker_command is None:
            _work(self.job_path, self.step, context)
            # Nothing is left to do in daisy's worker process, and daisy waits for it to
            # end: skip the interpreter's teardown (half a second with torch loaded, on
            # every job's critical path). Blocks and markers are already on disk.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        command = shlex.join([
            sys.executable, "-m", "napari_dacapo.blockwise", self.job_path,
            "--step", self.step, "--context", context.to_env(),
        ])
        subprocess.run(self.worker_command.format(command=command), shell=True, check=True)


def check_worker_options(
    workers: int, worker_command: str | None, threads: int | None = None
) -> None:
    """Refuse fewer than one worker or thread and a command template without
    ``{command}``."""
    if workers < 1:
        raise ValueError(f"workers is {workers}; give at least 1 worker.")
    if threads is not None and threads < 1:
        raise ValueError(
            f"threads is {threads}; give at least 1 thread per worker, or None for "
            f"the cores shared out among local workers."
        )
    if worker_command is not None and "{command}" not in worker_command:
        raise ValueError(
            f"worker_command '{worker_command}' has no '{{command}}' placeholder; write "
            f"where the worker's command line goes, e.g. 'bsub -K -n 1 {{command}}'."
        )


def worker_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of a worker started by a ``worker_command``:
    ``python -m napari_dacapo.blockwise JOB [--step STEP] --context CONTEXT``."""
    import daisy

    parser = argparse.ArgumentParser(
        prog="python -m napari_dacapo.blockwise",
        description="A worker of a napari_dacapo.blockwise job (prediction or segmentation).",
    )
    parser.add_argument("job", help="The job.yaml of the job.")
    parser.add_argument("--step", default=None, help="The job's step (default: its first).")
    parser.add_argument("--context", required=True, help="The daisy worker context.")
    args = parser.parse_args(argv)
    step = args.step or BlockwiseJob.load(args.job).steps[0]
    # The context travels on the command line, not in the environment, because cluster
    # launchers do not all pass the environment on; daisy parses it from there.
    os.environ[daisy.Context.ENV_VARIABLE] = args.context
    _work(args.job, step, daisy.Context.from_env())


@contextlib.contextmanager
def _daisy_logs(folder: Path) -> Iterator[None]:
    """Route daisy's per-worker logs into ``folder`` (not ``./daisy_logs``) for a run."""
    from daisy import logging as daisy_logging

    before = daisy_logging.get_log_basedir()
    daisy_logging.set_log_basedir(folder)
    try:
        yield
    finally:
        daisy_logging.set_log_basedir(before)
