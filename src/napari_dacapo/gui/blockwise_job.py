"""The blockwise prediction the predict panel runs for big (zarr-backed) image layers.

:func:`~napari_dacapo.blockwise.predict_blockwise` writes the prediction block by block
into a zarr array, with daisy worker processes. Here it runs in a child process of its
own (``python -m napari_dacapo.gui.blockwise_job JOB``), which :func:`blockwise_events`
starts and watches from a worker thread. A child process because a prediction must be
cancellable: daisy's scheduler is a loop in compiled code that nothing in another thread
can stop, but a process group (the child and its daisy workers) can be ended at any
moment. Cancelling ends it: finished blocks keep their done markers (written after their
data), and predicting the same job again resumes with the missing blocks.

Progress is the number of done markers, ``<container>.blocks/<dataset>/<block id>``,
counted with one ``os.scandir`` a few times a second in the watching thread (never in the
GUI thread: the folder holds one entry per block and may sit on a network disk).

Qt-free: the panel turns the events into a lazily read layer and a progress bar.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Seconds between two counts of the done markers.
POLL_S = 0.25
#: Seconds a cancelled prediction gets to end before it is killed.
STOP_S = 10.0
#: Starts the line in which the child process reports an error it knows the fix for.
ERROR_PREFIX = "napari-dacapo blockwise error: "

#: How to fix an error of the child process in the predict panel, beyond its message.
_PANEL_FIXES = {"FileExistsError": " In the predict panel: tick 'overwrite another "
                "prediction', or choose another output."}

__all__ = ["BlockwiseJob", "BlockwiseStarted", "OutputReady", "BlocksDone",
           "BlockwiseJobError", "blockwise_events", "default_output"]


@dataclass(frozen=True)
class BlockwiseJob:
    """What one blockwise prediction needs, as plain data (it travels to a child process).

    Attributes
    ----------
    store_root, run, checkpoint
        The stored run and its checkpoint (``latest``, an iteration, ``best:<criterion>``).
    input, output
        ``container.zarr/dataset`` of the image and of the prediction (absolute).
    workers
        How many daisy worker processes predict at once.
    roi
        ``[offset, shape]`` in the input's world units, or None for the whole input.
    overwrite
        Replace an output written by another job (the same job always resumes).
    rescale
        True: scale the image as the run's training data was; ``"image"``: from the
        image's own intensity range (see :func:`napari_dacapo.predict.prediction_input`).
    """

    store_root: str
    run: str
    checkpoint: str
    input: str
    output: str
    workers: int = 2
    roi: list[list[int]] | None = None
    overwrite: bool = False
    rescale: bool | str = True

    @property
    def marker_dir(self) -> Path:
        """The folder of the done markers (see :mod:`napari_dacapo.blockwise`)."""
        from napari_dacapo.blockwise import split_zarr_path

        container, dataset = split_zarr_path(self.output)
        return Path(f"{container}.blocks") / dataset


@dataclass(frozen=True, slots=True)
class BlockwiseStarted:
    """The prediction's child process runs; ``done`` of ``total`` blocks were already
    done (by an earlier, interrupted run of the same job)."""

    total: int
    done: int


@dataclass(frozen=True, slots=True)
class OutputReady:
    """The output array of this job exists: ``array`` (zarr, opened read-only) with its
    voxel size and offset in the input's world units."""

    array: Any
    voxel_size: tuple[int, ...]
    offset: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BlocksDone:
    """``done`` of ``total`` blocks are written."""

    done: int
    total: int


class BlockwiseJobError(Exception):
    """The blockwise prediction failed; ``kind`` names the error the child process met
    (e.g. ``BlockwisePredictionError``, ``FileExistsError``), the message its fix.

    Not a RuntimeError: napari's worker threads take those for a deleted Qt object and
    only warn, instead of reporting the error."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def blockwise_events(
    job: BlockwiseJob, cancel: threading.Event
) -> Iterator[BlockwiseStarted | OutputReady | BlocksDone]:
    """Run ``job`` in a child process and report its progress (in a worker thread):
    :class:`BlockwiseStarted`, then :class:`OutputReady` once the output array belongs
    to this job, and :class:`BlocksDone` whenever the count of done blocks changes.
    Setting ``cancel`` ends the child process and its workers.

    Raises
    ------
    BlockwiseJobError
        If the child process failed (its error message, with the fix, is the message).
    """
    total = _block_count(job)
    job_file = job.marker_dir / "job.yaml"
    job_stamp, done = _mtime(job_file), _count_done(job.marker_dir)
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, json.dumps(asdict(job))],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
        try:
            yield BlockwiseStarted(total, done)
            first, ready = done, False
            while True:
                exited = process.poll() is not None
                count = _count_done(job.marker_dir)
                # A job file rewritten, or new blocks, mean the output is this job's (an
                # existing output of another job is refused by the child, never shown).
                if not ready and _mtime(job_file) and (
                        _mtime(job_file) != job_stamp or count > first
                        or (exited and process.returncode == 0)):
                    ready = True
                    yield _output_ready(job)
                if count != done:
                    done = count
                    yield BlocksDone(done, total)
                if exited or cancel.wait(POLL_S):
                    break
        finally:
            _stop(process)
        if cancel.is_set():  # blocks done since the last count (e.g. all of them) are kept
            count = _count_done(job.marker_dir)
            if not ready and count > first and _mtime(job_file):
                yield _output_ready(job)
            if count != done:
                yield BlocksDone(count, total)
        if process.returncode != 0 and not cancel.is_set():
            log.seek(0)
            raise _child_error(log.read(), process.returncode)


def default_output(
    source: tuple[Path, str], run: str, checkpoint: str, store_root: Path
) -> Path:
    """``<container>_predictions.zarr/<run>/<checkpoint>`` beside the input container, or
    under ``store_root`` when the input's folder cannot be written (a shared disk)."""
    container = source[0]
    folder = container.parent if os.access(container.parent, os.W_OK) else store_root
    return folder / f"{container.stem}_predictions.zarr" / run / checkpoint.replace(":", "_")


# -- the watching thread ------------------------------------------------------------------------


def _block_count(job: BlockwiseJob) -> int:
    """How many blocks cover the job's output region (as predict_blockwise lays them out)."""
    from funlib.geometry import Roi

    from napari_dacapo.blockwise.prediction import BlockLayout
    from napari_dacapo.checkpoints import load_run
    from napari_dacapo.store.file_store import FileStore

    run, _ = load_run(job.run, FileStore(job.store_root))
    layout = BlockLayout.plan(
        run.model, _open_array(job.input), Roi(*job.roi) if job.roi else None, job.output,
        workers=job.workers, overwrite=job.overwrite,
    )
    return layout.num_blocks


def _output_ready(job: BlockwiseJob) -> OutputReady:
    output = _open_array(job.output)
    return OutputReady(output.source, tuple(output.voxel_size), tuple(output.offset))


def _open_array(path: str) -> Any:
    """The zarr array at ``container.zarr/dataset``, read-only."""
    from napari_dacapo.blockwise import split_zarr_path
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )

    container, dataset = split_zarr_path(path)
    return ZarrArrayConfig(name="array", file_name=container, dataset=dataset).array()


def _count_done(folder: Path) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(e.name.isdigit() for e in entries)
    except OSError:  # not there (yet), or not a folder: nothing done there
        return 0


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _stop(process: subprocess.Popen) -> None:
    """End ``process`` and the daisy workers it started (its process group)."""
    if process.poll() is not None:
        return
    kill = (lambda sig: os.killpg(process.pid, sig)) if hasattr(os, "killpg") else (
        lambda sig: process.kill())
    kill(signal.SIGTERM)
    try:
        process.wait(STOP_S)
    except subprocess.TimeoutExpired:
        kill(getattr(signal, "SIGKILL", signal.SIGTERM))
        process.wait()


def _child_error(log: str, returncode: int) -> BlockwiseJobError:
    for line in reversed(log.splitlines()):
        if line.startswith(ERROR_PREFIX):
            record = json.loads(line[len(ERROR_PREFIX):])
            return BlockwiseJobError(record["message"] + _PANEL_FIXES.get(record["kind"], ""),
                                     record["kind"])
    tail = "\n".join(log.strip().splitlines()[-15:])
    return BlockwiseJobError(
        f"The blockwise prediction stopped unexpectedly (exit code {returncode}). Its last "
        f"output:\n{tail}\nPress Predict again to resume it; finished blocks are kept.",
        "crash",
    )


# -- the child process --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Run one :class:`BlockwiseJob` (given as JSON): the child process's entry point.
    Errors whose message names the fix are reported on one line for the parent."""
    from funlib.geometry import Roi

    from napari_dacapo.blockwise import BlockwiseError, predict_blockwise
    from napari_dacapo.store.file_store import FileStore, StoreError

    job = BlockwiseJob(**json.loads((sys.argv[1:] if argv is None else argv)[0]))
    try:
        predict_blockwise(
            job.run, job.checkpoint, job.input, job.output, workers=job.workers,
            roi=Roi(*job.roi) if job.roi else None, store=FileStore(job.store_root),
            overwrite=job.overwrite, rescale=job.rescale,
        )
    except (BlockwiseError, FileExistsError, StoreError, ValueError, OSError) as e:
        record = {"kind": type(e).__name__, "message": str(e)}
        print(ERROR_PREFIX + json.dumps(record), file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
