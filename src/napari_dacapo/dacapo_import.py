"""A run trained with DaCapo, stored as a napari-dacapo run: its config and one of its
checkpoints, so that it predicts (CLI, predict panel, blockwise) and trains further here.

The config is DaCapo's run YAML (``configs/runs/<name>.yaml`` of its file config store),
read as :func:`~napari_dacapo.experiments.configs.load_config` reads it; the weights are
DaCapo's checkpoint, read and renamed by
:mod:`~napari_dacapo.experiments.starts.dacapo_weights`. The optimizer starts afresh (as
when fine-tuning); the checkpoint keeps its iteration (:func:`checkpoint_iteration`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from napari_dacapo.experiments.run_config import RunConfig
    from napari_dacapo.store.file_store import FileStore

__all__ = ["import_dacapo_run", "checkpoint_iteration"]

#: A checkpoint file named by its iteration: DaCapo's ``<N>``, napari-dacapo's ``<N>.pt``.
_ITERATION_NAME = re.compile(r"^(\d+)(\.pt)?$")


def import_dacapo_run(
    config: RunConfig | str | Path,
    weights: str | Path,
    checkpoint: str = "latest",
    name: str | None = None,
    store: FileStore | None = None,
    iteration: int | None = None,
) -> tuple[str, int]:
    """Store DaCapo's run ``config`` with the weights of its checkpoint; returns the stored
    run's name and the checkpoint's iteration.

    A checkpoint beyond the config's ``num_iterations`` is stored as a complete run:
    ``num_iterations`` is raised to its iteration (with a warning), as DaCapo itself
    trains no further than ``num_iterations`` and as ``train --iterations`` raises it to
    train a run further.

    Parameters
    ----------
    config
        The DaCapo run config, or the path of its YAML.
    weights
        The DaCapo run's folder (``<runs_base_dir>/<run>``) or one checkpoint file.
    checkpoint
        ``"latest"`` or an iteration number (which checkpoint of a run's folder).
    name
        The name to store the run under (default: the config's).
    store
        Where to store it (default: the default store).
    iteration
        The checkpoint's iteration, for a file whose iteration is not known otherwise
        (see :func:`checkpoint_iteration`; without either it is stored as iteration 0,
        with a warning).

    Raises
    ------
    DaCapoWeightsError, StartError, StoreError, ConfigError
        Before anything is written: weights that cannot be read or do not fit the config's
        network (the layers that differ are named), an ``iteration`` that contradicts the
        one the checkpoint records, a run of that name stored already, a config that does
        not load.
    """
    from napari_dacapo.experiments.configs import load_config
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.run_config import RunConfig
    from napari_dacapo.experiments.starts.dacapo_weights import DaCapoWeightsError, dacapo_state
    from napari_dacapo.experiments.starts.start import StartError, load_matching_weights
    from napari_dacapo.predict import training_data_record
    from napari_dacapo.store.file_store import FileStore, StoreError

    if iteration is not None and (isinstance(iteration, bool) or int(iteration) < 0):
        raise ValueError(f"iteration must be a number of 0 or more, not {iteration!r}.")
    if not isinstance(config, RunConfig):
        config = load_config(config, RunConfig)
    config = dataclasses.replace(config, name=name or config.name, start_config=None)
    store = store or FileStore()
    if store.has_run(config.name):
        raise StoreError(
            f"A run named '{config.name}' is stored already in {store.root}. Import under "
            f"another name (--name), or delete that run's folder first."
        )
    state, path, recorded = dacapo_state(weights, checkpoint)
    if recorded is None:
        recorded = checkpoint_iteration(path)
    if iteration is not None and recorded is not None and int(iteration) != recorded:
        raise DaCapoWeightsError(
            f"The checkpoint {path} is of iteration {recorded} (as its name or its run's "
            f"records say), not {iteration}. Leave out the iteration (--iteration) to keep "
            f"{recorded}."
        )
    unknown = recorded is None and iteration is None
    iteration = int(iteration if iteration is not None else recorded or 0)
    planned = config.num_iterations
    # DaCapo trains a run while its iteration is below num_iterations: a checkpoint past
    # it is of a finished run, stored as one (as `train --iterations` raises it).
    config = dataclasses.replace(config, num_iterations=max(planned, iteration))
    run = Run(config, load_starter_model=False, store=store, resume=False)
    # Every layer, the head included, must be DaCapo's: nothing is left at random.
    load_matching_weights(run.model, state, None, None)
    missing = sorted(k for k in run.model.state_dict() if k not in state)
    if missing:
        raise StartError(
            f"The DaCapo checkpoint {path} has no weights for {missing[:10]}: its network "
            f"does not match the config's. Import it with the DaCapo run's own config."
        )
    if unknown:
        warnings.warn(
            f"The iteration of the checkpoint {path} is unknown (its name is not one, and "
            f"nothing beside it records one): it is stored as iteration 0. Give its "
            f"iteration (--iteration N) to record it.",
            stacklevel=2,
        )
    if iteration > planned:
        warnings.warn(
            f"The checkpoint is of iteration {iteration}, beyond the config's num_iterations "
            f"({planned}): run '{config.name}' is stored as trained to its end, with "
            f"num_iterations {iteration}. To train it further, give more iterations "
            f"(napari-dacapo train --run {shlex.quote(config.name)} --iterations M, M above "
            f"{iteration}).",
            stacklevel=2,
        )
    run.config = store.store_run_config(run.config)
    store.store_checkpoint(config.name, iteration, run.model, run.optimizer, run.lr_scheduler)
    # As training records it: what prediction checks inputs against, where the DaCapo
    # run's data may not be reachable later (a cluster's).
    if record := training_data_record(run):
        store.store_training_data(config.name, record)
    store.store_training_stats(config.name, run.training_stats)
    return config.name, iteration


def checkpoint_iteration(path: str | Path) -> int | None:
    """The iteration of the checkpoint file ``path`` where a store records it, or None.

    In order: its name (DaCapo's weights store writes ``checkpoints/iterations/<N>``,
    older versions ``checkpoints/<N>``; napari-dacapo's store ``checkpoints/<N>.pt``); the
    name of the file it links to (DaCapo links its best weights,
    ``checkpoints/<dataset>/<criterion>``, to ``iterations/<N>``); the ``<name>.json``
    beside it (where DaCapo records that best iteration as ``{"iteration": N}``); the
    ``iteration`` that a napari-dacapo checkpoint holds.
    """
    path = Path(path)
    for candidate in (path, path.resolve()):
        if match := _ITERATION_NAME.match(candidate.name):
            return int(match.group(1))
    try:
        recorded = json.loads(path.with_name(f"{path.name}.json").read_text())["iteration"]
    except (OSError, ValueError, TypeError, KeyError):
        recorded = None
    if recorded is None:
        recorded = _stored_iteration(path)
    if isinstance(recorded, bool):
        return None
    try:
        return int(recorded) if recorded is not None and int(recorded) >= 0 else None
    except (TypeError, ValueError):
        return None


def _stored_iteration(path: Path) -> object:
    """The ``iteration`` entry of a checkpoint saved as a dict (napari-dacapo's), read
    without loading its tensors; None for any other file."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # DaCapo's Weights objects, foreign or truncated files: no entry
        return None
    return saved.get("iteration") if isinstance(saved, dict) else None
