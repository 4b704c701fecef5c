"""Why the predict panel cannot predict with the chosen run and checkpoint, found cheaply
enough to ask on every refresh of the GUI: the run's metadata read before (in a worker),
whether its config is still stored, a listing of its checkpoints folder and a look at the
chosen checkpoint file's zip directory (:meth:`FileStore.checkpoint_problem`), never its
tensors.

Qt-free.
"""

from __future__ import annotations

from napari_dacapo.checkpoints import criterion_of
from napari_dacapo.gui.run_info import RunInfo
from napari_dacapo.store.file_store import CHECKPOINTS_DIR, CheckpointError, FileStore

__all__ = ["checkpoint_reason", "gone_reason", "run_reason"]


def run_reason(store: FileStore, run: str | None, info: RunInfo | None,
               checkpoint: str | None) -> str:
    """Why ``checkpoint`` of run ``run`` cannot predict ('' when it can); ``info`` is
    the run as read (None while it is read)."""
    if run is None:
        return (f"No runs are stored in {store.root}. Train one in the DaCapo "
                f"training panel, then press Refresh runs.")
    if info is None:
        return f"Reading run '{run}'…"
    if gone := gone_reason(store, info.name):
        return gone
    if not info.checkpoints:
        if info.done:  # trained, but its checkpoints are gone
            return (f"Run '{info.name}' has no checkpoint left (pruned or deleted): train it "
                    f"again to predict with it.")
        return f"Run '{info.name}' has no checkpoint yet: train it first."
    return checkpoint_reason(store, info, checkpoint) if checkpoint else ""


def gone_reason(store: FileStore, run: str) -> str:
    """Why run ``run``, read before, cannot predict now that its folder (or config) is gone
    from ``store`` ('' while it is there), said as the runs browser says it, with the fix."""
    if store.has_run(run):
        return ""
    return (f"Run '{run}' is no longer in {store.root}. Pick another run, or press Refresh "
            f"runs to list the runs stored now.")


def checkpoint_reason(store: FileStore, info: RunInfo, checkpoint: str) -> str:
    """Why the checkpoint a predict panel offers for run ``info`` (``latest``,
    ``best:<criterion>`` or an iteration) cannot be loaded ('' when its file looks whole):
    ``latest`` is the newest file now stored, as the prediction will resolve it, and
    ``best:<criterion>`` the best iteration as read with ``info``."""
    if gone := gone_reason(store, info.name):
        return gone
    refresh = "Pick another checkpoint, or press Refresh runs to re-read the run."
    criterion = criterion_of(checkpoint)
    if criterion is not None:
        if criterion not in info.best:
            return f"Run '{info.name}' has no best checkpoint for '{criterion}'. {refresh}"
        iteration = info.best[criterion][0]
        which = f"The best checkpoint for '{criterion}' (iteration {iteration}): "
    elif checkpoint == "latest":
        try:
            iteration = store.stored_iteration(info.name, "latest")
        except CheckpointError:  # all deleted since the run was read
            # Not the store's "Train it first": the run was trained, as it was read.
            return (f"Run '{info.name}' has no checkpoint left in "
                    f"{store.run_dir(info.name) / CHECKPOINTS_DIR} (deleted since it was read): "
                    f"train it again to predict with it, or pick another run.")
        which = ""
    else:
        iteration, which = int(checkpoint), ""
    problem = store.checkpoint_problem(info.name, iteration)
    if not problem:
        return ""
    # A damaged file's message names the fix (delete it); a missing one's does not.
    missing = not store.checkpoint_path(info.name, iteration).is_file()
    return f"{which}{problem}" + (f" {refresh}" if missing else "")
