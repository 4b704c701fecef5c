"""Following a stored run that may be training in another process (a cluster node, the
CLI): what changed since the last look, read without writing anything.

Qt-free; the runs browser calls :func:`poll_run` in a worker thread every few seconds.
Snapshot layers are loaded into memory here (they are one training sample each), so the
GUI thread never reads them from disk, and a snapshot the trainer replaces later cannot
break a layer that is already shown.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_dacapo.gui.run_info import RunInfo, read_if_changed
from napari_dacapo.store.file_store import ROOT_ENV, FileStore

logger = logging.getLogger(__name__)

__all__ = ["FollowUpdate", "SnapshotKey", "follow_text", "latest_snapshot", "made_from_file",
           "not_ours", "poll_run"]

#: The latest snapshot of a run: its iteration and the names of the arrays written so far.
SnapshotKey = tuple[int, tuple[str, ...]]


@dataclass(frozen=True)
class FollowUpdate:
    """What :func:`poll_run` found.

    Attributes
    ----------
    info
        The run re-read with its curves, or None when its files did not change.
    snapshot
        The run's latest snapshot now (None: it has none).
    layers
        That snapshot's layer data tuples (data in memory), or None when they were not
        read (unchanged, not wanted, or still being written).
    """

    info: RunInfo | None
    snapshot: SnapshotKey | None
    layers: list[tuple[Any, dict[str, Any], str]] | None


def latest_snapshot(store: FileStore, name: str) -> SnapshotKey | None:
    """The latest snapshot of run ``name`` (two small folder listings), or None."""
    container = store.snapshot_container(name).container
    iterations = [int(e) for e in _entries(container) if e.isdigit()]
    if not iterations:
        return None
    latest = max(iterations)
    arrays = sorted(e for e in _entries(container / str(latest)) if not e.startswith("."))
    return latest, tuple(arrays)


def poll_run(
    store: FileStore,
    name: str,
    stamp: tuple[Any, ...],
    shown: SnapshotKey | None,
    snapshots: bool,
    first: bool,
) -> FollowUpdate:
    """Re-read run ``name`` if its files changed since ``stamp``, and, with ``snapshots``,
    its latest snapshot if it differs from the ``shown`` one.

    On the ``first`` look at a run, its snapshot is read only while the run is training:
    browsing finished runs must not fill the viewer with their layers (Open outputs
    does that on request); later, any new snapshot is read.
    """
    info = read_if_changed(store, name, stamp)
    trainer = info.trainer if info is not None else stamp[-1] if stamp else None
    key = latest_snapshot(store, name)
    layers = None
    if snapshots and key is not None and key != shown and (trainer or not first):
        try:
            layers = _snapshot_layers(store, name)
            if len(layers) < len(key[1]):
                raise ValueError(f"{len(layers)} of its {len(key[1])} arrays are readable")
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            # The trainer is writing that snapshot right now; the next look reads it whole.
            logger.debug("Snapshot %s of run '%s' not read yet: %s", key, name, e)
            key, layers = shown, None
    return FollowUpdate(info, key, layers)


def follow_text(info: RunInfo, criterion: str | None, snapshot: SnapshotKey | None) -> str:
    """One line on where run ``info`` stands: iterations, who trains it, the best
    checkpoint for ``criterion`` (default: the main one), the stored checkpoints and the
    latest snapshot."""
    own = info.trainer == str(os.getpid())
    state = ("training here" if own else f"training in process {info.trainer}"
             if info.trainer else "not training")
    stored = ", ".join(map(str, info.checkpoints[-4:])) or "none"
    if len(info.checkpoints) > 4:
        stored = "…, " + stored
    parts = [
        f"Iteration {info.done} of {info.total} ({state})",
        f"best checkpoint: {info.best_text(criterion if criterion in info.best else None)}",
        f"checkpoints: {stored}",
    ]
    if snapshot is not None:
        parts.append(f"snapshot: iteration {snapshot[0]}")
    return "; ".join(parts) + "."


def not_ours(info: RunInfo, store_root: Path, training_root: Path) -> str:
    """Why the training panel (training in ``training_root``) must not train on from run
    ``info`` of the store at ``store_root`` ('' when it may): a process trains the run,
    or the run lives in a store the panel does not train in, e.g. a cluster's."""
    if info.trainer == str(os.getpid()):
        return f"Run '{info.name}' is training in this napari's training panel."
    if info.trainer:
        return (f"Run '{info.name}' is being trained by another process (pid {info.trainer});"
                f" it is only followed here until that process ends.")
    if Path(training_root) != Path(store_root):
        return (f"Runs in {store_root} are only followed here: the training panel stores runs "
                f"in {training_root}. Continue this run where it is stored (napari-dacapo "
                f"train --run {info.name} --store {store_root}), or start napari with "
                f"{ROOT_ENV} set to that folder.")
    return ""


def made_from_file(info: RunInfo, store_root: Path, fine_tune: bool) -> str:
    """Why the training panel cannot continue run ``info`` of the store at ``store_root``,
    made from a config file (its datasplit cannot be made again from layers), and how to
    continue it instead; ``fine_tune``: whether Fine-tune is offered for it."""
    also = " Fine-tune trains a new run from its weights here." if fine_tune else ""
    return (f"Run '{info.name}' was made from a config file, not from napari layers: train "
            f"it further with 'napari-dacapo train --run {info.name} --store {store_root} "
            f"--iterations N'.{also}")


def _snapshot_layers(store: FileStore, name: str) -> list[tuple[Any, dict[str, Any], str]]:
    """The latest snapshot's layers (named like the training panel's), in memory."""
    from napari_dacapo._reader import read_run

    container = str(store.snapshot_container(name).container)
    return [
        (np.asarray(data), meta, kind)
        for data, meta, kind in read_run(store.run_dir(name))
        if meta["metadata"]["source"] == container
    ]


def _entries(folder: Path) -> list[str]:
    """Names of the sub-folders of ``folder`` (none if it does not exist)."""
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
