"""A run trained with DaCapo, stored as a napari-dacapo run: its config and one of its
checkpoints, so that it predicts (CLI, predict panel, blockwise) and trains further here.

The config is DaCapo's run YAML (``configs/runs/<name>.yaml`` of its file config store),
read as :func:`~napari_dacapo.experiments.configs.load_config` reads it; the weights are
DaCapo's checkpoint, read and renamed by
:mod:`~napari_dacapo.experiments.starts.dacapo_weights`. The optimizer starts afresh (as
when fine-tuning); the checkpoint keeps DaCapo's iteration number.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from napari_dacapo.experiments.run_config import RunConfig
    from napari_dacapo.store.file_store import FileStore

__all__ = ["import_dacapo_run"]


def import_dacapo_run(
    config: RunConfig | str | Path,
    weights: str | Path,
    checkpoint: str = "latest",
    name: str | None = None,
    store: FileStore | None = None,
) -> tuple[str, int]:
    """Store DaCapo's run ``config`` with the weights of its checkpoint; returns the stored
    run's name and the checkpoint's iteration.

    Parameters
    ----------
    config
        The DaCapo run config, or the path of its YAML.
    weights
        The DaCapo run's folder (``<runs_base_dir>/<run>``) or one checkpoint file.
    checkpoint
        ``"latest"`` or an iteration number.
    name
        The name to store the run under (default: the config's).
    store
        Where to store it (default: the default store).

    Raises
    ------
    DaCapoWeightsError, StartError, StoreError, ConfigError
        Before anything is written: weights that cannot be read or do not fit the config's
        network (the layers that differ are named), a run of that name stored already, a
        config that does not load.
    """
    from napari_dacapo.experiments.configs import load_config
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.run_config import RunConfig
    from napari_dacapo.experiments.starts.dacapo_weights import dacapo_state
    from napari_dacapo.experiments.starts.start import StartError, load_matching_weights
    from napari_dacapo.store.file_store import FileStore, StoreError

    if not isinstance(config, RunConfig):
        config = load_config(config, RunConfig)
    config = dataclasses.replace(config, name=name or config.name, start_config=None)
    store = store or FileStore()
    if store.has_run(config.name):
        raise StoreError(
            f"A run named '{config.name}' is stored already in {store.root}. Import under "
            f"another name (--name), or delete that run's folder first."
        )
    state, path, iteration = dacapo_state(weights, checkpoint)
    iteration = iteration or 0  # a checkpoint file whose name is not its iteration
    run = Run(config, load_starter_model=False, store=store, resume=False)
    # Every layer, the head included, must be DaCapo's: nothing is left at random.
    load_matching_weights(run.model, state, None, None)
    missing = sorted(k for k in run.model.state_dict() if k not in state)
    if missing:
        raise StartError(
            f"The DaCapo checkpoint {path} has no weights for {missing[:10]}: its network "
            f"does not match the config's. Import it with the DaCapo run's own config."
        )
    store.store_run_config(run.config)
    store.store_checkpoint(config.name, iteration, run.model, run.optimizer, run.lr_scheduler)
    store.store_training_stats(config.name, run.training_stats)
    return config.name, iteration
