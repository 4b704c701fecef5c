"""Start: initialise a model from a stored run's checkpoint (fine-tuning)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import torch

from .start_config import StartConfig

if TYPE_CHECKING:
    from ..model import Model
    from ...store.file_store import FileStore

logger = logging.getLogger(__name__)


class StartError(RuntimeError):
    """The starter weights cannot be used; the message says which layers differ."""


class Start:
    """Loads a stored run's weights into a new model: a run of this store, or else, when
    ``run`` is the path of a DaCapo run folder or checkpoint, DaCapo's weights (see
    :mod:`.dacapo_weights`).

    Layers of the network body must match in shape (otherwise :class:`StartError` lists the
    layers that differ). The prediction head may differ: rows of the head for output
    channels whose names exist in both the old and the new head are copied, the others keep
    their fresh initialisation.
    """

    def __init__(self, start_config: StartConfig, store: FileStore | None = None) -> None:
        self.run = start_config.run
        self.criterion = start_config.criterion
        self._store = store

    @property
    def store(self) -> FileStore:
        if self._store is None:
            from ...store.file_store import FileStore

            self._store = FileStore()
        return self._store

    def checkpoint_iteration(self) -> int:
        """The stored run's iteration that ``criterion`` names."""
        from ...store.file_store import CheckpointError

        if self.criterion == "latest":
            latest = self.store.latest_iteration(self.run)
            if latest is None:
                raise CheckpointError(
                    f"Run '{self.run}' has no checkpoint to start from. Train it first, or "
                    f"pick another run in the start config."
                )
            return latest
        if self.criterion.startswith("best:"):
            named = self.criterion[5:]
            criteria = self._criteria()
            # A criterion by its full name, or the one ending in __<name> (a channel's).
            matches = [c for c in criteria if c == named] or [
                c for c in criteria if c.endswith(f"__{named}")]
            if criteria and len(matches) != 1:
                problem = (f"matches several criteria ({', '.join(matches)})" if matches
                           else "is not a criterion")
                raise CheckpointError(
                    f"'{named}' {problem} of run '{self.run}', which is scored by: "
                    f"{', '.join(criteria)}. Name one of those as the start config's "
                    f"criterion (e.g. 'best:{criteria[0]}'), or start from 'latest'."
                )
            best = self.store.retrieve_best(self.run, matches[0] if matches else named)
            if best is None:
                raise CheckpointError(
                    f"Run '{self.run}' has no best checkpoint for '{named}'. "
                    f"Validate it first, or start from 'latest'."
                )
            return int(best["iteration"])
        return int(self.criterion)

    def _criteria(self) -> list[str]:
        """The validation criteria of the stored run's task ([] when its config cannot be
        read: the best record then decides alone)."""
        from ...store.file_store import StoreError

        try:
            task = self.store.retrieve_run_config(self.run).task_config
            return list(task.task_type(task).evaluation_scores.criteria)
        except (StoreError, OSError, ValueError):
            return []

    def old_channels(self) -> list[str] | None:
        try:
            config = self.store.retrieve_run_config(self.run)
            task = config.task_config.task_type(config.task_config)
            return list(task.predictor.channels)
        except Exception:  # an old run whose task cannot be rebuilt: fall back to shapes
            logger.warning("Could not read the channels of run '%s'", self.run, exc_info=True)
            return None

    def initialize_weights(self, model: Model, new_head: list[str] | None = None) -> Model:
        """Load the starter weights into ``model`` and return it."""
        if is_path(self.run):
            return self._initialize_from_dacapo(model, new_head)
        iteration = self.checkpoint_iteration()
        state = self.store.retrieve_checkpoint(
            self.run, iteration, training_state=False
        )["model"]
        load_matching_weights(model, state, self.old_channels(), new_head)
        logger.info("Initialised weights from run '%s' iteration %d", self.run, iteration)
        return model


    def _initialize_from_dacapo(self, model: Model, new_head: list[str] | None) -> Model:
        from .dacapo_weights import dacapo_state

        state, path, iteration = dacapo_state(self.run, self.criterion)
        # DaCapo's channel names are in its own config store: heads are matched by shape.
        load_matching_weights(model, state, None, new_head)
        logger.info("Initialised weights from the DaCapo checkpoint %s (iteration %s)",
                    path, iteration)
        return model


def is_path(run: str) -> bool:
    """Whether a start config's ``run`` is a path (DaCapo's weights) rather than the name of
    a stored run: run names hold no slashes."""
    return "/" in run or (os.altsep is not None and os.altsep in run) or os.sep in run \
        or run.startswith("~")


def load_matching_weights(
    model: Model,
    state: dict[str, torch.Tensor],
    old_channels: list[str] | None,
    new_channels: list[str] | None,
) -> None:
    """Copy ``state`` into ``model``: the body must match; head rows follow channel names."""
    own = model.state_dict()
    head_keys = {f"prediction_head.{k}" for k in model.prediction_head.state_dict()}
    head_keys |= {f"chain.1.{k}" for k in model.prediction_head.state_dict()}
    differ = []
    for key, value in own.items():
        if key in head_keys:
            continue
        old = state.get(key)
        if old is None or old.shape != value.shape:
            differ.append(f"{key}: {tuple(value.shape)} vs stored "
                          f"{tuple(old.shape) if old is not None else 'missing'}")
    if differ:
        raise StartError(
            "The starter run's network does not match this architecture; layers that differ:\n  "
            + "\n  ".join(differ[:20])
            + "\nUse the same architecture config as the starter run, or train from scratch."
        )
    new_state = {k: (state[k] if k not in head_keys else v) for k, v in own.items()}
    for key in head_keys & own.keys():
        old = state.get(key)
        if old is None:
            continue
        new = own[key].clone()
        if old.shape == new.shape and (old_channels is None or old_channels == new_channels):
            new_state[key] = old
            continue
        if old_channels is None or new_channels is None:
            continue
        for row, channel in enumerate(new_channels):
            if channel in old_channels and old_channels.index(channel) < old.shape[0]:
                new[row] = old[old_channels.index(channel)]
        new_state[key] = new
    model.load_state_dict(new_state)
