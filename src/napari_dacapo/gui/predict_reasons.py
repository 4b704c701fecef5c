"""Why the predict panel cannot predict with the chosen run and checkpoint, found cheaply
enough to ask on every refresh of the GUI: the run's metadata read before (in a worker),
a listing of its checkpoints folder and a look at the chosen checkpoint file's zip
directory (:meth:`FileStore.checkpoint_problem`), never its tensors.

Qt-free.
"""

from __future__ import annotations

from napari_dacapo.checkpoints import criterion_of
from napari_dacapo.gui.run_info import RunInfo
from napari_dacapo.store.file_store import CheckpointError, FileStore

__all__ = ["run_reason", "checkpoint_reason"]


def run_reason(store: FileStore, run: str | None, info: RunInfo | None,
               checkpoint: str | None) -> str:
    """Why ``checkpoint`` of run ``run`` cannot predict ('' when it can); ``info`` is
    the run as read (None while it is read)."""
    if run is None:
        return (f"No runs are stored in {store.root}. Train one in the DaCapo "
                f"training panel, then press Refresh runs.")
    if info is None:
        return f"Reading run '{run}'…"
    if not info.checkpoints:
        if info.done:  # trained, but its checkpoints are gone
            return (f"Run '{info.name}' has no checkpoint left (pruned or deleted): train it "
                    f"again to predict with it.")
        return f"Run '{info.name}' has no checkpoint yet: train it first."
    return checkpoint_reason(store, info, checkpoint) if checkpoint else ""


def checkpoint_reason(store: FileStore, info: RunInfo, checkpoint: str) -> str:
    """Why the checkpoint a predict panel offers for run ``info`` (``latest``,
    ``best:<criterion>`` or an iteration) cannot be loaded ('' when its file looks whole):
    ``latest`` is the newest file now stored, as the prediction will resolve it, and
    ``best:<criterion>`` the best iteration as read with ``info``."""
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
        except CheckpointError as e:  # all deleted since the run was read
            return f"{e} {refresh}"
        which = ""
    else:
        iteration, which = int(checkpoint), ""
    problem = store.checkpoint_problem(info.name, iteration)
    if not problem:
        return ""
    # A damaged file's message names the fix (delete it); a missing one's does not.
    missing = not store.checkpoint_path(info.name, iteration).is_file()
    return f"{which}{problem}" + (f" {refresh}" if missing else "")
