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
afterwards raise the job's :class:`BlockwiseError`, naming them and the cause (a block's
last error, or a ``worker_command`` that failed to start workers, with its output);
nothing is silently left empty. Worker logs go to ``logs/`` in the job folder, and so does
what daisy's scheduler reports along the way (``logs/daisy.log``).

Stopping. Ctrl-C and SIGTERM end the local workers and raise
:class:`~.stopping.JobStopped` once they are gone (see :mod:`.stopping`).

Messages name the fix in the words of the Python API, or of the command line within
:func:`command_line_messages`.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import dataclasses
import json
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

from .stopping import (
    JobStopped,
    WorkerLink,
    end_process_group,
    follow_parent,
    scheduler_output,
    stop_signals,
)

__all__ = [
    "BlockwiseError",
    "BlockwiseJob",
    "JobStopped",
    "Step",
    "command_line_messages",
    "phrased",
    "job_conflict",
    "resume_note",
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
#: The file in ``logs/`` that takes what daisy's scheduler reports during a run.
SCHEDULER_LOG = "daisy.log"
#: Starts the line in which a worker reports that its ``worker_command`` failed.
COMMAND_FAILED = "napari-dacapo worker command failed: "
#: Lines of a failed ``worker_command``'s error output that its report quotes.
COMMAND_OUTPUT_LINES = 5
#: The zarr attribute that holds an output array's stamp (see :func:`stamp_output`).
STAMP_ATTR = "napari_dacapo_written"
#: How daisy's own error ends: advice for its Python API, which a CLI user cannot follow.
_DAISY_ADVICE = "Fix the worker error or increase Task("

#: What a worker's block function returns for the parent: arrays stored in the block's
#: done marker, or None for a marker that only says "done".
Payload = dict[str, np.ndarray] | None
BlockFunction = Callable[[Any], Payload]

#: True within command_line_messages().
_COMMAND_LINE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "napari_dacapo_command_line", default=False
)


@contextlib.contextmanager
def command_line_messages() -> Iterator[None]:
    """Within it (in this thread), blockwise jobs name the fixes in their messages in the
    words of the command line (``--overwrite``, ``--checkpoint 450``), not of the Python
    API (``overwrite=True``): for the ``predict`` and ``segment`` commands."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def phrased(api: str, command_line: str) -> str:
    """``command_line`` within :func:`command_line_messages`, else ``api``."""
    return command_line if _COMMAND_LINE.get() else api


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

    def resume_advice(self, recorded: BlockwiseJob, differ: Sequence[str]) -> str:
        """How to run ``recorded``, the job that wrote this job's output, instead of this
        one, which differs from it in the fields ``differ``: a sentence naming the
        arguments (:func:`phrased`) to give, or '' where there is no such advice."""
        return ""

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
    doing
        What the step does to a block, for the report ("predicting").
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
    doing: str = "processing"

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


def _differing_fields(job: BlockwiseJob, recorded: BlockwiseJob) -> list[str]:
    """The fields in which ``job`` is another job than ``recorded``: all but the thread
    count, which is how a job runs, not what it computes."""
    return [f.name for f in dataclasses.fields(job) if f.name != "threads"
            and getattr(recorded, f.name) != getattr(job, f.name)]


def _value_text(value: Any) -> str | None:
    """A field's value as a refusal shows it, or None where it is too long to help."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        text = ":".join(",".join(map(str, part)) for part in value)  # a ROI, as --roi takes it
    else:
        text = "none" if value is None else (
            ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))
    return text if len(text) <= 40 else None


def _differences(job: BlockwiseJob, recorded: BlockwiseJob, differ: Sequence[str]) -> str:
    """E.g. ``iteration (510 here, 450 recorded)``: the differing fields, with their values
    where they are short (a config field: its differing entries)."""
    parts = []
    for name in differ:
        new, old = getattr(job, name), getattr(recorded, name)
        if name in job.field_notes:
            parts.append(job.field_notes[name])
            continue
        pairs = [(name, new, old)]
        if isinstance(new, dict) and isinstance(old, dict):
            pairs = [(f"{name} {key}", new.get(key), old.get(key))
                     for key in dict.fromkeys([*new, *old]) if new.get(key) != old.get(key)]
        for label, here, there in pairs:
            texts = (_value_text(here), _value_text(there))
            parts.append(label if None in texts else
                         f"{label} ({texts[0]} here, {texts[1]} recorded)")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@dataclass(frozen=True)
class Conflict:
    """Why a job cannot write its output, which exists and which it did not write.

    Attributes
    ----------
    why
        E.g. ``its iteration (510 here, 450 recorded) differs from the job recorded in
        .../job.yaml``.
    state
        '' for a complete output, else a sentence saying that it is incomplete.
    advice
        A sentence saying how to finish it instead ('' where no run of it can).
    """

    why: str
    state: str
    advice: str


def job_conflict(job: BlockwiseJob) -> Conflict | None:
    """Why ``job`` would refuse its output without ``overwrite``: a :class:`Conflict` if
    the output exists and another job (or none) wrote it; None if it does not exist, or
    ``job`` resumes it (its done markers belong to this very job)."""
    if not job.output.exists():
        return None
    recorded = _load_job_if_any(job.job_file)
    advice = ""
    unfinished = incomplete_output(job.output_file, job.output_dataset)
    state = "" if unfinished is None else f" It is incomplete: {unfinished}."
    if recorded is not None and type(recorded) is type(job):
        differ = _differing_fields(job, recorded)
        if not differ:
            return None
        verb = "differs" if len(differ) == 1 else "differ"
        why = (f"its {_differences(job, recorded, differ)} {verb} from the job recorded in "
               f"{job.job_file}")
        if unfinished is not None:
            # The mark says to rerun the same job: that is the recorded one, not this one.
            state = (f" It is incomplete: the {recorded.noun} writing it was interrupted or is "
                     f"still running.")
            advice = job.resume_advice(recorded, differ)
    else:
        why = f"no such job is recorded in {job.job_file}"
    return Conflict(why, state, advice)


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
        If the output exists and another job (or none) wrote it, unless ``overwrite``
        (see :func:`job_conflict`); the message says how to finish the job that wrote it
        where that is known, and how to replace it.
    """
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        prepare_zarr_array,
    )

    if job.output.exists() and not overwrite:
        conflict = job_conflict(job)
        if conflict is None:  # resume
            if _load_job_if_any(job.job_file) != job:
                _write_job(job)  # the workers read their thread count from job.yaml
            return
        replace = phrased("pass overwrite=True, or choose another output",
                          "pass --overwrite, or choose another OUTPUT")
        raise FileExistsError(
            f"{job.output} already exists and was not written by this {job.noun} "
            f"({conflict.why}).{conflict.state}{conflict.advice} To replace it, {replace}."
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


def resume_note(job: BlockwiseJob, step: Step) -> tuple[int, int, str]:
    """``(missing, total, note)`` for ``step``: its blocks without a done marker, all its
    blocks, and what a report says of them before the step starts, e.g. ``3 of 4 blocks
    were predicted already; predicting the other 1`` ('' when none is done yet)."""
    missing, total = len(missing_blocks(job, step)), step.graph(_task_id(job, step)).num_blocks
    done = total - missing
    if not done:
        return missing, total, ""
    if not missing:
        return missing, total, f"all {total} blocks were {step.verb} already"
    were = "was" if done == 1 else "were"
    return missing, total, (f"{done} of {total} blocks {were} {step.verb} already; "
                            f"{step.doing} the other {missing}")


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
    JobStopped
        On SIGINT or SIGTERM, once the local workers have ended (see :mod:`.stopping`).
    """
    import daisy

    if not missing_blocks(job, step):
        return  # nothing to do: start no worker
    marker_dir = job.marker_dir(step.name)
    marker_dir.mkdir(parents=True, exist_ok=True)
    task_id = _task_id(job, step)
    logs = job.folder / LOG_FOLDER

    def is_done(block: Any) -> bool:
        return (marker_dir / str(block.block_id[1])).exists()

    with WorkerLink() as link, stop_signals(link) as stop:
        with warnings.catch_warnings():
            # daisy warns that check_function runs per block on the server; here it is one
            # stat() of a marker file, and the markers (unlike daisy's tracking store)
            # live with the output they describe, so a replaced output never inherits
            # them.
            warnings.filterwarnings("ignore", message=r"Task\(check_function",
                                    category=UserWarning)
            task = daisy.Task(
                task_id, step.total_roi, step.read_roi, step.write_roi,
                process_function=_Worker(str(job.job_file.absolute()), step.name,
                                         worker_command, link.address),
                check_function=is_done, read_write_conflict=step.read_write_conflict,
                fit="overhang", max_workers=workers, max_retries=max_retries,
            )
        stop.check()
        state = error = None
        with _daisy_logs(logs), scheduler_output(logs / SCHEDULER_LOG):
            try:
                states = daisy.run_blockwise(
                    task, progress=progress, block_tracking=False, return_states=True,
                    summary=False,
                )
            except KeyboardInterrupt:  # daisy aborts its run on SIGINT
                link.close()  # before the scheduler's last words go to the terminal
                raise JobStopped(stop.signum or signal.SIGINT) from None
            except RuntimeError as e:  # daisy gave up on the task (workers kept crashing)
                states, error = getattr(e, "daisy_states", None), str(e)
            state = (states or {}).get(task_id)
        stop.check()

    missing = missing_blocks(job, step)
    if missing:
        raise job.error_type(
            _failure_report(job, step, missing, state, error, workers=workers,
                            max_retries=max_retries),
            missing,
        )


def _failure_report(
    job: BlockwiseJob, step: Step, missing: list[Roi], state: Any, error: str | None, *,
    workers: int, max_retries: int,
) -> str:
    """What failed in a step that left ``missing`` blocks, from daisy's ``state`` of its
    task (None if it gave none) or its ``error``, and how to fix it."""
    task_id = _task_id(job, step)
    total = step.graph(task_id).num_blocks
    shown = ", ".join(str(r) for r in missing[:5]) + (" ..." if len(missing) > 5 else "")
    last = error
    if state is not None:
        last = state.last_worker_error or error
    failed_command = _failed_command(last)
    failures = getattr(state, "worker_failure_count", 0) or 0
    restarts = getattr(state, "worker_restart_count", 0) or 0
    logs = job.folder / LOG_FOLDER
    rerun = phrased(f"run the same {job.noun} again", "run the same command again")
    gave_up = (f"the workers failed {failures} times in all (the {workers} started first "
               f"and {restarts} restarts), and daisy gave up")
    if failed_command is not None:
        command, status, output = failed_command
        quoted = f": {' / '.join(output)}" if output else " (it wrote no error output)"
        cause = (f"the worker command '{command}' failed (exit status {status}{quoted})"
                 + (f"; {gave_up}" if getattr(state, "abandoned", False) else ""))
        fix = (f"Fix the worker command: it must start the worker and wait until it ends "
               f"(e.g. 'bsub -K -n 1 {{command}}' or 'srun -n 1 {{command}}'); then "
               f"{rerun}: only the missing blocks are {step.verb}.")
    else:
        if getattr(state, "abandoned", False):
            cause = gave_up
        elif getattr(state, "failed_count", 0):
            cause = f"each failed on all {max_retries + 1} tries"
        else:
            cause = "the workers stopped before they were done"
        cause += f". Last error: {_worker_error_summary(last)}"
        fix = f"Fix what the workers report, then {rerun}: only these blocks are redone."
    return (
        f"{len(missing)} of {total} blocks of {job.output} were not {step.verb} (write ROIs:"
        f" {shown}): {cause}. {fix} The workers' full errors are in {logs / task_id} "
        f"(worker_*.err), the scheduler's in {logs / SCHEDULER_LOG}."
    )


def _failed_command(error: str | None) -> tuple[str, int, list[str]] | None:
    """``(command template, exit status, first lines of its error output)`` of a worker
    whose ``worker_command`` failed, from daisy's report of its exit (None for any other
    error)."""
    for line in reversed((error or "").splitlines()):
        if line.startswith(COMMAND_FAILED):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record = json.loads(line[len(COMMAND_FAILED):])
                return str(record["command"]), int(record["status"]), list(record["output"])
    return None


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
    process of its group, and each worker's KeyboardInterrupt traceback buried the job's
    own message under a couple of hundred lines."""
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
    which it ends). With ``link`` (a :class:`~.stopping.WorkerLink`'s address), the
    process ends with the parent's link, and with it the command it started."""

    job_path: str
    step: str
    worker_command: str | None = None
    link: str | None = None

    def __call__(self, *, context: Any = None) -> None:
        launched: list[subprocess.Popen[bytes]] = []
        if self.link is not None:
            follow_parent(self.link, lambda: [end_process_group(p) for p in launched])
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
        # A session of its own: a stopped job ends the launcher and what it started, here
        # (Ctrl-C in a terminal reaches this process, not the launcher).
        process = subprocess.Popen(self.worker_command.format(command=command), shell=True,
                                   stderr=subprocess.PIPE, start_new_session=True)
        launched.append(process)

        def stop(signum: int, frame: object) -> None:
            end_process_group(process)
            os._exit(128 + signum)

        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, stop)
        head = []
        for line in process.stderr:  # passed on to this worker's log as it comes
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
            if len(head) < COMMAND_OUTPUT_LINES and line.strip():
                head.append(line.decode(errors="replace").strip())
        if status := process.wait():
            # One line for the parent's report (daisy hands it the end of this output),
            # instead of a traceback per failed start.
            record = {"command": self.worker_command, "status": status, "output": head}
            print(COMMAND_FAILED + json.dumps(record), file=sys.stderr, flush=True)
            sys.exit(1)


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
