"""Where a run lives on disk: one folder per run under a root folder.

Layout of ``<root>/<run name>/``::

    config.yaml               the run config (in-memory arrays replaced by data/*.zarr)
    checkpoints/<i>.pt        model, optimizer and scheduler state after iteration i
    training_stats.json       the loss of every iteration
    validation_scores.json    the scores of every validated iteration
    best.json                 the best iteration per dataset and criterion
    snapshots.zarr/           training snapshots
    validation.zarr/          validation predictions and post-processed outputs
    data/<array>.zarr         arrays of in-memory (napari layer) configs
    training_data.json        voxel size and dtype of each training raw array
    lock                      held by the process training the run (holds its pid)

Every file is written atomically (a temporary file, then a rename), so a crash never
leaves half a file; an exclusive lock on ``lock`` stops two trainers from writing one run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import numbers
import os
import re
import shutil
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING, Any

from napari_dacapo.experiments.configs import (
    Config,
    load_config,
    replace_configs,
    save_config,
    to_dict,
)
from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import NumpyArrayConfig
from napari_dacapo.experiments.datasplits.datasets.dataset import Dataset
from napari_dacapo.experiments.training_stats import TrainingStats
from napari_dacapo.experiments.validation_iteration_scores import ValidationIterationScores
from napari_dacapo.experiments.validation_scores import ValidationScores, dataset_name

from .array_store import LocalContainerIdentifier
from .atomic import atomic_write, atomic_write_text

if TYPE_CHECKING:
    import torch

__all__ = [
    "FileStore", "StoreError", "CheckpointError", "RunLockedError", "RunDeletedError",
    "ROOT_ENV", "read_display", "read_training_data",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the store root (read whenever a FileStore is made).
ROOT_ENV = "NAPARI_DACAPO_ROOT"
#: Dataset key of the best scores over all validation datasets together.
ALL_DATASETS = "__all__"

CONFIG_FILE = "config.yaml"
CHECKPOINTS_DIR = "checkpoints"
TRAINING_STATS_FILE = "training_stats.json"
VALIDATION_SCORES_FILE = "validation_scores.json"
BEST_FILE = "best.json"
DISPLAY_FILE = "display.json"
TRAINING_DATA_FILE = "training_data.json"
SNAPSHOTS_CONTAINER = "snapshots.zarr"
VALIDATION_CONTAINER = "validation.zarr"
DATA_DIR = "data"
LOCK_FILE = "lock"
#: Dataset path inside each ``data/<array>.zarr`` container.
DATA_DATASET = "data"

_CHECKPOINT_FILE = re.compile(r"^(\d+)\.pt$")
_CHECKPOINT_KEYS = frozenset({"iteration", "model", "optimizer", "scheduler"})
_FIX_ROOT = f"Set {ROOT_ENV} (or pass --store) to a writable folder."
#: The longest run name, in UTF-8 bytes: most file systems refuse longer folder names.
MAX_RUN_NAME_BYTES = 255


class StoreError(Exception):
    """Reading or writing the run store failed; the message names the path and the fix."""


class CheckpointError(StoreError):
    """A checkpoint is missing or unreadable."""


class RunLockedError(StoreError):
    """Another process holds the run's lock (it is training that run)."""


class RunDeletedError(StoreError):
    """The run's folder was deleted while the run was being stored (e.g. while training)."""


class FileStore:
    """All runs under one root folder; see the module docstring for the layout.

    Parameters
    ----------
    root
        The root folder. Default: the environment variable ``NAPARI_DACAPO_ROOT`` (read
        now, when the store is made), else ``<user data dir>/napari-dacapo/runs``. Nothing
        is created until something is stored.
    keep_all
        Keep every checkpoint and validation output. By default only the latest and the
        current bests are kept (see :meth:`apply_retention`); DaCapo keeps everything.
    """

    def __init__(self, root: Path | str | None = None, keep_all: bool = False) -> None:
        self.keep_all = keep_all
        if root is None:
            root = os.environ.get(ROOT_ENV) or None
        if root is None:
            import platformdirs

            root = platformdirs.user_data_path("napari-dacapo") / "runs"
        # Absolute, because stored configs name files inside it (data/*.zarr).
        self.root = Path(root).expanduser().absolute()
        # Runs whose config this store has stored or read: a write to one whose config is
        # gone since finds its folder deleted (see _check_not_deleted).
        self._known_runs: set[str] = set()

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    # -- runs --------------------------------------------------------------------------------

    def run_dir(self, name: str) -> Path:
        """The folder of run ``name`` (which need not exist)."""
        if (
            not isinstance(name, str)
            or not name.strip()
            or name != name.strip()
            or name.startswith(".")
            or any(c in name for c in "/\\\0")
        ):
            raise StoreError(
                f"{name!r} cannot be a run name: it names a folder under {self.root}. Use a "
                f"name without slashes or surrounding spaces that does not start with '.'."
            )
        if (size := len(name.encode())) > MAX_RUN_NAME_BYTES:
            unit = "characters" if name.isascii() else "bytes in UTF-8"
            raise StoreError(
                f"Run name '{name[:40]}…' is too long ({size} {unit}): it names a folder "
                f"under {self.root}, and folder names have at most {MAX_RUN_NAME_BYTES}. "
                f"Use a shorter name."
            )
        return self.root / name

    def list_runs(self) -> list[str]:
        """Names of the stored runs (folders holding a config), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CONFIG_FILE).is_file())

    def has_run(self, name: str) -> bool:
        """Whether a config is stored for run ``name``."""
        return (self.run_dir(name) / CONFIG_FILE).is_file()

    # -- configs -----------------------------------------------------------------------------

    def store_run_config(self, config: Config, *, allow_longer: bool = True) -> Config:
        """Store a run config under its name and return the config as stored.

        Every :class:`NumpyArrayConfig` in the config (in-memory layer data) is written to
        ``data/<array name>.zarr`` in the run's folder and replaced by a config reading
        that zarr array, so the stored run never depends on a napari session. Storing a
        run again with in-memory arrays of the same names replaces that data (e.g. labels
        painted since).

        Raises
        ------
        StoreError
            If a different config is stored under that name (see
            :meth:`check_run_config`), or the store is not writable.
        """
        self.check_run_config(config, allow_longer=allow_longer)
        config = self._materialise(config)
        path = self.run_dir(config.name) / CONFIG_FILE
        with self._writing(path):
            save_config(config, path)
        self._known_runs.add(config.name)
        return config

    def check_run_config(self, config: Config, *, allow_longer: bool = True) -> None:
        """Refuse ``config`` if it differs from the config stored under its name (a name
        with no stored run is always accepted).

        Differences are found on :func:`~napari_dacapo.experiments.configs.to_dict`. A larger
        ``num_iterations`` alone is allowed with ``allow_longer`` (training for longer). An
        in-memory array matches the stored array of the same name that was written from
        it; its data is not compared.

        Raises
        ------
        StoreError
            Naming the run, the differing top-level fields and the fix.
        """
        name = config.name
        if not self.has_run(name):
            return
        data_dir = f"{self.run_dir(name) / DATA_DIR}{os.sep}"
        old, new = (
            _comparable(to_dict(c), data_dir) for c in (self.retrieve_run_config(name), config)
        )
        differ = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
        if not differ:
            return
        stored_n, new_n = old.get("num_iterations"), new.get("num_iterations")
        longer = isinstance(stored_n, int) and isinstance(new_n, int) and new_n > stored_n
        if allow_longer and differ == ["num_iterations"] and longer:
            return
        # The data differ as a whole: its nested names and paths would crowd out the rest.
        details = [d for k in differ if k != "datasplit_config"
                   for d in _differences(old.get(k), new.get(k), k)]
        if "datasplit_config" in differ:
            details.append("datasplit_config (the training or validation data)")
        if len(details) > _MAX_DIFFERENCES:
            details[_MAX_DIFFERENCES:] = [f"{len(details) - _MAX_DIFFERENCES} more"]
        # The rule is news only to a run refused for its num_iterations.
        hint = (
            " A stored run can only be continued with a larger num_iterations."
            if "num_iterations" in differ and allow_longer and not longer
            else ""
        )
        raise StoreError(
            f"Run '{name}' is already stored in {self.run_dir(name)} with a different config; "
            f"these fields differ: {', '.join(details)}.{hint} Choose another run name for "
            f"this config, or delete that folder to start the run over."
        )

    def retrieve_run_config(self, name: str) -> Config:
        """The config stored for run ``name``."""
        path = self.run_dir(name) / CONFIG_FILE
        if not path.is_file():
            raise StoreError(self._no_run_message(name))
        config = self._relocated(load_config(path))
        self._known_runs.add(name)
        return config

    def _no_run_message(self, name: str) -> str:
        """Why run ``name`` is not found, with the fix: the store lists no such run, or
        the store's folder itself does not exist (a mistyped ``--store``)."""
        fix = f"point {ROOT_ENV} (or --store) at the store that holds it."
        if not self.root.is_dir():
            return (
                f"No run named '{name}': the store {self.root} does not exist. Check that "
                f"path, or {fix}"
            )
        runs = ", ".join(self.list_runs()) or "none"
        return (
            f"No run named '{name}' in the store {self.root} (stored runs: {runs}). Check "
            f"the name, or {fix}"
        )

    def _relocated(self, config: Config) -> Config:
        """``config`` with the run's own data (``data/*.zarr``, written from napari layers)
        read from the run's folder where it is now: a run folder copied from a cluster to a
        laptop, or to another store, records where it was made."""
        from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
            ZarrArrayConfig,
        )

        data_dir = self.run_dir(config.name) / DATA_DIR

        def relocate(array: ZarrArrayConfig) -> Config:
            path = Path(array.file_name)
            moved = data_dir / path.name
            if (path.parent.name == DATA_DIR and path.parent.parent.name == config.name
                    and path.parent != data_dir and not path.exists() and moved.exists()):
                return array.replace(file_name=moved)
            return array

        return replace_configs(config, ZarrArrayConfig, relocate)

    def _materialise(self, config: Config) -> Config:
        data_dir = self.run_dir(config.name) / DATA_DIR
        written: dict[int, Config] = {}
        stems: set[str] = set()

        def materialise(array: NumpyArrayConfig) -> Config:
            # The same array object used twice (e.g. for training and validation) is written
            # once; different arrays with one name get distinct files.
            if id(array) not in written:
                base = re.sub(r"[^A-Za-z0-9._-]", "_", array.name).lstrip(".") or "array"
                stem, suffix = base, 1
                while stem in stems:
                    stem, suffix = f"{base}_{suffix}", suffix + 1
                stems.add(stem)
                written[id(array)] = self._write_array(array, data_dir / f"{stem}.zarr")
            return written[id(array)]

        return replace_configs(config, NumpyArrayConfig, materialise)

    def _write_array(self, array: NumpyArrayConfig, target: Path) -> Config:
        """Write ``array`` to the zarr container ``target`` (replacing it whole, so readers
        never see a half-written array) and return the config that reads it."""
        from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
            write_zarr_array,
        )

        geometry = array.array()  # voxel size, offset, axis names and units with defaults
        tag = uuid.uuid4().hex[:8]
        staging = target.with_name(f".{target.name}.{tag}.tmp")
        replaced = target.with_name(f".{target.name}.{tag}.old")
        with self._writing(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                written = write_zarr_array(
                    staging,
                    DATA_DATASET,
                    array.data,
                    geometry.voxel_size,
                    geometry.offset,
                    geometry.axis_names,
                    units=geometry.units,
                    name=array.name,
                )
                if target.exists():
                    os.replace(target, replaced)
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                shutil.rmtree(replaced, ignore_errors=True)
        moved = {
            f.name: type(value)(target) if isinstance(value, PurePath) else str(target)
            for f in dataclasses.fields(written)
            if f.init
            and isinstance(value := getattr(written, f.name), (str, PurePath))
            and Path(value) == staging
        }
        if not moved:
            raise StoreError(
                f"write_zarr_array returned {type(written).__name__} without the path it "
                f"wrote ({staging}); it must return a config that reads that file."
            )
        return dataclasses.replace(written, **moved)

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint_path(self, name: str, iteration: int) -> Path:
        """The file of run ``name``'s checkpoint after ``iteration``."""
        return self.run_dir(name) / CHECKPOINTS_DIR / f"{int(iteration)}.pt"

    def store_checkpoint(
        self,
        name: str,
        iteration: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Save a checkpoint atomically and return its path.

        The file is a ``torch.save`` dict with ``iteration``, ``model`` (state dict),
        ``optimizer`` and ``scheduler`` (state dicts, each saved with ``torch.save`` into
        bytes of its own; None without a scheduler) and the items of ``extra`` (plain data:
        numbers, strings, lists, dicts, tensors, as checkpoints are loaded with
        ``weights_only=True``).
        """
        import torch

        extra = dict(extra or {})
        if reserved := sorted(_CHECKPOINT_KEYS & set(extra)):
            raise ValueError(
                f"Extra checkpoint metadata uses the reserved key(s) {reserved}; rename them."
            )
        state = {
            "iteration": int(iteration),
            "model": model.state_dict(),
            # The training state is nested as bytes, read only to resume: torch's safe
            # unpickler spent more on it than on the weights (the example's checkpoint
            # loads in 6.3 ms whole, 3.3 ms without unpickling it), and predicting,
            # validating and starting from a checkpoint need only the weights.
            "optimizer": _saved(optimizer.state_dict()),
            "scheduler": None if scheduler is None else _saved(scheduler.state_dict()),
            **extra,
        }
        path = self.checkpoint_path(name, iteration)
        self._check_not_deleted(name)
        with self._writing(path):
            atomic_write(path, lambda fh: torch.save(state, fh))
        return path

    def checkpoint_iterations(self, name: str) -> list[int]:
        """The iterations with a stored checkpoint, ascending."""
        folder = self.run_dir(name) / CHECKPOINTS_DIR
        if not folder.is_dir():
            return []
        found = (_CHECKPOINT_FILE.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def checkpoint_problem(self, name: str, iteration: int) -> str:
        """Why run ``name``'s checkpoint at ``iteration`` cannot be read, found without
        reading its tensors (a GUI may ask on every refresh): '' when it looks whole.
        A torch checkpoint is a zip archive whose directory is written last, so a file cut
        short (a full disk, a copy stopped halfway) or of another kind lacks it; a file
        damaged otherwise (or cut within its last bytes) is found only when it is read
        (:meth:`retrieve_checkpoint`)."""
        import zipfile

        path = self.checkpoint_path(name, iteration)
        if not path.is_file():
            return f"Checkpoint {path} does not exist (deleted?)."
        if not zipfile.is_zipfile(path):
            others = [i for i in self.checkpoint_iterations(name) if i != int(iteration)]
            return (
                f"Checkpoint {path} cannot be read: it is cut short or not a checkpoint. "
                f"Delete that file{f', or use another iteration ({others})' if others else ''}."
            )
        return ""

    def latest_iteration(self, name: str) -> int | None:
        """The iteration of the latest checkpoint, None without checkpoints."""
        return max(self.checkpoint_iterations(name), default=None)

    def stored_iteration(self, name: str, iteration: int | str = "latest", why: str = "") -> int:
        """The stored checkpoint's iteration that ``iteration`` names: a number, digits
        (as the CLI passes them) or ``"latest"``. ``why`` says in the error where the
        number came from (e.g. the best iteration of a criterion).

        Raises
        ------
        ValueError
            For anything else.
        CheckpointError
            If there is no such checkpoint (listing those stored).
        """
        stored = self.checkpoint_iterations(name)
        if iteration == "latest":
            if not stored:
                raise CheckpointError(
                    f"Run '{name}' has no checkpoints in {self.run_dir(name) / CHECKPOINTS_DIR}."
                    f" Train it first, or pick another run."
                )
            return stored[-1]
        if isinstance(iteration, str) and iteration.strip().isdigit():
            iteration = int(iteration)
        elif not isinstance(iteration, numbers.Integral) or isinstance(iteration, bool):
            raise ValueError(
                f"checkpoint {iteration!r} is not understood: it must be 'latest' or a number "
                f"(an iteration), or 'best:<criterion>' where a run's best iterations are read."
            )
        if int(iteration) not in stored:
            fix = (f"stored iterations: {stored}. Pick one of those, or 'latest'." if stored
                   else f"it has no checkpoint left in {self.run_dir(name) / CHECKPOINTS_DIR}"
                        f" (deleted?). Train the run again to store new ones.")
            raise CheckpointError(
                f"Run '{name}' has no checkpoint at iteration {iteration}{why}; {fix}"
            )
        return int(iteration)

    def resume_problem(self, name: str, stored: Sequence[int] | None = None) -> str:
        """Why run ``name`` cannot be continued from its latest checkpoint, with the fix
        ('' when it can, or it was never trained): it was trained but has no checkpoint
        left, or its latest one is cut short (:meth:`checkpoint_problem`; found without
        reading tensors, so a GUI may ask on every refresh). ``stored``: its
        :meth:`checkpoint_iterations`, when the caller has just listed them."""
        stored = list(self.checkpoint_iterations(name) if stored is None else stored)
        if not stored:
            if not (self.run_dir(name) / TRAINING_STATS_FILE).is_file():
                return ""  # never trained
            folder = self.run_dir(name) / CHECKPOINTS_DIR
            if self._stored_a_checkpoint(name):
                return (
                    f"Run '{name}' has no checkpoint left in {folder} (pruned or deleted), so "
                    f"it cannot continue: training it again starts over from iteration 0 and "
                    f"replaces its stored training stats and scores."
                )
            # Stats are written while training, checkpoints only at validation intervals
            # (and at a stop): a trainer killed before the first left stats alone.
            reached, first = self._trained_until(name), self._first_checkpoint(name)
            due = f" (due at iteration {first})" if first else ""
            return (
                f"Run '{name}' has no checkpoint in {folder}: its training ended at iteration "
                f"{reached}, before the first checkpoint{due}, e.g. the trainer was killed. "
                f"It cannot continue: training it again starts over from iteration 0 and "
                f"replaces its stored training stats."
            )
        if not self.checkpoint_problem(name, stored[-1]):
            return ""
        fix = (f"to continue from the previous checkpoint (iteration {stored[-2]})"
               if len(stored) > 1 else "to train the run again from iteration 0")
        return (
            f"Run '{name}' cannot continue: its latest checkpoint "
            f"{self.checkpoint_path(name, stored[-1])} is cut short or not a checkpoint. "
            f"Delete that file {fix}."
        )

    def _stored_a_checkpoint(self, name: str) -> bool:
        """Whether run ``name`` is known to have stored a checkpoint once (it may be gone):
        it was validated (validation follows a checkpoint), or its stats reach its first
        checkpoint (stored there before the stats go past it). A checkpoint stored at a
        stop before that leaves no trace of its own."""
        run_dir = self.run_dir(name)
        if (run_dir / BEST_FILE).is_file() or (run_dir / VALIDATION_SCORES_FILE).is_file():
            return True
        first = self._first_checkpoint(name)
        return first is not None and self._trained_until(name) >= first

    def _trained_until(self, name: str) -> int:
        """How far run ``name``'s stored stats reach (0 if they cannot be read)."""
        try:
            return self.retrieve_training_stats(name).trained_until()
        except StoreError:
            return 0

    def _first_checkpoint(self, name: str) -> int | None:
        """The iteration of run ``name``'s first checkpoint: its validation interval, or
        its end if sooner (None if its config cannot be read). Training that stopped short
        of its end (``train --iterations``) stored one there, sooner still."""
        try:
            config = self.retrieve_run_config(name)
            return min(int(config.validation_interval), int(config.num_iterations))
        except (StoreError, OSError, ValueError, TypeError, AttributeError):
            return None

    def retrieve_checkpoint(
        self,
        name: str,
        iteration: int | str = "latest",
        map_location: Any = "cpu",
        training_state: bool = True,
    ) -> dict[str, Any]:
        """Load a checkpoint dict (see :meth:`store_checkpoint`).

        Parameters
        ----------
        iteration
            An iteration number, or ``"latest"``.
        map_location
            Passed to ``torch.load`` (default: load tensors on the CPU).
        training_state
            Whether to read the optimizer and scheduler state too (as state dicts); without
            it the dict holds no ``optimizer`` and ``scheduler`` entries.

        Raises
        ------
        CheckpointError
            If the checkpoint does not exist (listing those that do) or cannot be read.
        """
        import torch

        iteration = self.stored_iteration(name, iteration)
        path = self.checkpoint_path(name, iteration)
        try:
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
            if isinstance(checkpoint, dict) and training_state:
                for key in ("optimizer", "scheduler"):
                    if isinstance(checkpoint.get(key), bytes):  # older checkpoints: a dict
                        checkpoint[key] = torch.load(
                            io.BytesIO(checkpoint[key]), map_location=map_location,
                            weights_only=True,
                        )
        except Exception as e:  # torch raises many types for truncated or foreign files
            others = [i for i in self.checkpoint_iterations(name) if i != iteration]
            raise CheckpointError(
                f"Checkpoint {path} cannot be read ({type(e).__name__}: {e}). Delete that file"
                f"{f', or load another iteration ({others})' if others else ''}."
            ) from e
        if not isinstance(checkpoint, dict) or not {"model", "optimizer"} <= checkpoint.keys():
            raise CheckpointError(
                f"Checkpoint {path} is not a napari-dacapo checkpoint (no model and optimizer "
                f"state). Delete that file, or load another iteration."
            )
        if not training_state:
            del checkpoint["optimizer"]
            checkpoint.pop("scheduler", None)
        return checkpoint

    def prune_checkpoints(self, name: str, keep: Iterable[int]) -> list[int]:
        """Delete the checkpoints not in ``keep`` and return their iterations.

        Callers pass the iterations their retention rule keeps (the latest and the best
        ones); the latest checkpoint is kept in any case, since resuming needs it.
        """
        stored = self.checkpoint_iterations(name)
        keep = set(keep) | set(stored[-1:])
        deleted = [i for i in stored if i not in keep]
        for iteration in deleted:
            path = self.checkpoint_path(name, iteration)
            with self._writing(path):
                path.unlink(missing_ok=True)
        return deleted

    def best_iterations(self, name: str) -> set[int]:
        """Every iteration that is currently best for some dataset and criterion."""
        bests = self._parse(self.run_dir(name) / BEST_FILE, dict, dict)
        return {int(r["iteration"]) for per in bests.values() for r in per.values()}

    def apply_retention(self, name: str) -> list[int]:
        """Delete checkpoints and validation outputs that are neither the latest nor a
        current best (unless the store keeps everything). Returns the deleted iterations."""
        if self.keep_all:
            return []
        keep = self.best_iterations(name)
        deleted = self.prune_checkpoints(name, keep)
        outputs = self.validation_container(name).container
        if outputs.is_dir():
            latest = max((int(p.name) for p in outputs.iterdir() if p.name.isdigit()),
                         default=None)
            for folder in outputs.iterdir():
                if folder.name.isdigit() and int(folder.name) not in keep | {latest}:
                    shutil.rmtree(folder, ignore_errors=True)
        return deleted

    # -- stats and scores ------------------------------------------------------------------

    def store_training_stats(self, name: str, stats: TrainingStats) -> None:
        """Save the run's training stats (replacing those stored)."""
        self._check_not_deleted(name)
        self._write_json(self.run_dir(name) / TRAINING_STATS_FILE, stats.to_dict())

    def retrieve_training_stats(self, name: str) -> TrainingStats:
        """The stored training stats (empty if none)."""
        path = self.run_dir(name) / TRAINING_STATS_FILE
        return self._parse(path, TrainingStats.from_dict, TrainingStats)

    def store_validation_iteration_scores(
        self, name: str, validation_scores: ValidationScores
    ) -> None:
        """Save the scores of every validated iteration (replacing those stored).

        Dataset names, parameter sets and criteria are written alongside for readers of
        the file; retrieval returns the iteration scores only.
        """
        self._check_not_deleted(name)
        self._write_json(
            self.run_dir(name) / VALIDATION_SCORES_FILE,
            {
                "datasets": validation_scores.dataset_names,
                "parameters": [str(p) for p in validation_scores.parameters],
                "parameter_ids": [p.id for p in validation_scores.parameters],
                "criteria": validation_scores.criteria,
                "scores": [s.to_dict() for s in validation_scores.scores],
            },
        )

    def retrieve_validation_iteration_scores(self, name: str) -> list[ValidationIterationScores]:
        """The stored scores of every validated iteration (empty if none)."""
        path = self.run_dir(name) / VALIDATION_SCORES_FILE
        return self._parse(
            path, lambda d: [ValidationIterationScores.from_dict(s) for s in d["scores"]], list
        )

    def store_best(
        self,
        name: str,
        dataset: Dataset | str | None,
        criterion: str,
        iteration: int,
        parameters_id: int | None,
        value: float,
    ) -> None:
        """Record the best iteration and parameter set for one dataset and criterion.

        ``dataset=None`` records the best over all validation datasets together.
        """
        self._check_not_deleted(name)
        path = self.run_dir(name) / BEST_FILE
        bests = self._parse(path, dict, dict)
        key = ALL_DATASETS if dataset is None else dataset_name(dataset)
        bests.setdefault(key, {})[criterion] = {
            "iteration": int(iteration),
            "parameters_id": None if parameters_id is None else int(parameters_id),
            "value": float(value),
        }
        self._write_json(path, bests)

    def retrieve_best(
        self, name: str, criterion: str, dataset: Dataset | str | None = None
    ) -> dict[str, Any] | None:
        """The recorded best for ``criterion``, or None if none is recorded.

        Returns a dict with ``dataset``, ``criterion``, ``iteration``, ``parameters_id``
        and ``value``. ``dataset=None`` asks for the best over all datasets together,
        falling back to the only dataset when bests were recorded for one dataset only.
        """
        bests = self._parse(self.run_dir(name) / BEST_FILE, dict, dict)
        if dataset is not None:
            key = dataset_name(dataset)
        elif ALL_DATASETS not in bests and len(bests) == 1:
            key = next(iter(bests))
        else:
            key = ALL_DATASETS
        record = bests.get(key, {}).get(criterion)
        if record is None:
            return None
        return {"dataset": None if key == ALL_DATASETS else key, "criterion": criterion, **record}

    def store_display(self, name: str, display: dict[str, Any]) -> None:
        """Record how the run's arrays map to the viewer that trained it, e.g.
        ``{"world_factor": 10}``: napari layers with a scale of 0.5 train in integer units
        of 1/10 (see ``gui/layer_arrays.py``), and a run folder opened later divides its
        outputs' geometry by that factor again (see :func:`read_display`)."""
        self._check_not_deleted(name)
        self._write_json(self.run_dir(name) / DISPLAY_FILE, dict(display))

    def store_training_data(self, name: str, record: dict[str, Any]) -> None:
        """Record what run ``name`` trains on (see
        :func:`~napari_dacapo.predict.training_data.training_data_record`), for predictions
        where that data cannot be opened (a run trained on a cluster, predicted on a
        desktop) or should not be (it costs milliseconds per array at every prediction)."""
        self._check_not_deleted(name)
        self._write_json(self.run_dir(name) / TRAINING_DATA_FILE, dict(record))

    # -- arrays ------------------------------------------------------------------------------

    def snapshot_container(self, name: str) -> LocalContainerIdentifier:
        """The zarr container for run ``name``'s training snapshots."""
        return LocalContainerIdentifier(self.run_dir(name) / SNAPSHOTS_CONTAINER)

    def validation_container(self, name: str) -> LocalContainerIdentifier:
        """The zarr container for run ``name``'s validation outputs."""
        return LocalContainerIdentifier(self.run_dir(name) / VALIDATION_CONTAINER)

    # -- lock --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, *, to_train: bool = False) -> Iterator[None]:
        """Hold run ``name``'s exclusive lock while the block runs (e.g. while training).

        The operating system releases the lock when the holder exits or is killed, so a
        crashed trainer never leaves a stale lock behind. ``to_train``: the lock is taken
        to train the run, and a refusal suggests training the config under another name
        meanwhile; any other holder (e.g. validation) is told to wait for the training.

        Raises
        ------
        RunLockedError
            If another process (or another ``lock`` in this one) holds it.
        """
        path = self.run_dir(name) / LOCK_FILE
        with self._writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+")  # noqa: SIM115
        _HELD_LOCKS.add(fh)
        try:
            if not _try_lock_patiently(fh):
                fh.seek(_PID_OFFSET)
                holder = fh.read().strip() or "unknown"
                advice = (
                    "Wait for it to finish or stop it; to train this config meanwhile, give "
                    "it another run name." if to_train else
                    "Wait for the training to finish, or stop it, then try again."
                )
                who = ("in this process (e.g. a run still stopping after its training "
                       "panel was closed)" if holder == str(os.getpid())
                       else "by another process")
                raise RunLockedError(
                    f"Run '{name}' is being trained {who} (pid {holder}). "
                    f"{advice} (Lock file: {path}; it is released when that process ends.)"
                )
            try:
                fh.seek(0)
                fh.truncate()
                fh.write(f"\n{os.getpid()}\n")
                fh.flush()
                yield
            finally:
                _unlock(fh)
        finally:
            _HELD_LOCKS.discard(fh)
            fh.close()

    def lock_holder(self, name: str) -> str | None:
        """The pid (as the holder wrote it) of the process training run ``name``, or None
        when no process holds the run's lock.

        Read-only, so that a run training elsewhere can be followed from a folder the
        reader does not own: the lock file is opened for reading only (nothing is created
        when it is missing), and probed with a shared lock that is released at once; a
        trainer that tries to lock the run at that very instant waits for the probe (see
        :meth:`lock`). The holder may be this very process (e.g. its training panel).
        """
        path = self.run_dir(name) / LOCK_FILE
        try:
            fh = open(path)  # noqa: SIM115 (closed below; read-only on purpose)
        except FileNotFoundError:
            return None
        with fh:
            if _try_lock(fh, shared=True):
                _unlock(fh)
                return None
            fh.seek(_PID_OFFSET)
            return fh.read().strip() or "unknown"

    # -- files -------------------------------------------------------------------------------

    def _check_not_deleted(self, name: str) -> None:
        """Refuse to write into run ``name`` when its folder was deleted since this store
        stored or read its config (one stat): writing would make the folder anew without a
        config, a run that no list of runs shows.

        Raises
        ------
        RunDeletedError
            Naming the folder and the fix.
        """
        if name in self._known_runs and not (self.run_dir(name) / CONFIG_FILE).is_file():
            raise RunDeletedError(
                f"The run folder {self.run_dir(name)} was deleted while run '{name}' was "
                f"being trained or stored (its {CONFIG_FILE} is gone), so nothing more is "
                f"stored for it. Train it again to start a new run."
            )

    @contextlib.contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        """Turn an OS error while writing ``path`` into a StoreError with the fix."""
        try:
            yield
        except OSError as e:
            raise StoreError(
                f"Cannot write {path} in the run store {self.root}: {e.strerror or e}. "
                f"{_FIX_ROOT}"
            ) from e

    def _write_json(self, path: Path, data: Any) -> None:
        # NaN is written as the JSON extension NaN, which Python's json reads back.
        with self._writing(path):
            atomic_write_text(path, json.dumps(data, indent=1))

    def _parse(self, path: Path, parse: Callable[[Any], Any], empty: Callable[[], Any]) -> Any:
        """``parse`` the JSON file at ``path``; ``empty()`` if it does not exist."""
        if not path.is_file():
            return empty()
        try:
            return parse(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StoreError(
                f"{path} cannot be read ({type(e).__name__}: {e}). Delete it to start that "
                f"record afresh."
            ) from e


# -- helpers ---------------------------------------------------------------------------------


#: Lock files held by this process. A forked child (e.g. a batch-preparation worker) closes
#: its copies at once: an inherited flock would otherwise outlive a killed trainer for as
#: long as the child lives, and refuse the run to the next trainer.
_HELD_LOCKS: weakref.WeakSet = weakref.WeakSet()


def _close_inherited_locks() -> None:
    # Point the inherited descriptor at /dev/null instead of closing it: the file object
    # still owns that number and closes it later.
    for fh in list(_HELD_LOCKS):
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, fh.fileno())
            os.close(devnull)
        except OSError:
            pass
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


#: How many differing config fields a refusal names.
_MAX_DIFFERENCES = 6


def _differences(old: Any, new: Any, path: str) -> list[str]:
    """The innermost differing fields of config data under ``path`` (e.g.
    ``task_config.clip_distance``), each with both values when they are short enough to
    show; configs of different types differ as a whole."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict) and (
        old.get("__type__") == new.get("__type__")
    ):
        keys = [k for k in dict.fromkeys([*old, *new]) if k != "__type__"]
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{path}.{k}")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (o, n) in enumerate(zip(old, new))
                for d in _differences(o, n, f"{path}[{i}]")]
    shown = [v.get("__type__") if isinstance(v, dict) else v for v in (old, new)]
    if any(isinstance(v, (dict, list)) or len(repr(v)) > 40 for v in shown):
        return [path]
    return [f"{path} (stored {shown[0]!r}, new {shown[1]!r})"]


def _comparable(value: Any, data_dir: str) -> Any:
    """Config data where in-memory arrays, and arrays stored from them under ``data_dir``,
    are reduced to their name, so a re-stored in-memory array matches its stored copy."""
    if isinstance(value, dict):
        if "__type__" in value and (
            value["__type__"] == NumpyArrayConfig.__name__
            or any(isinstance(v, str) and v.startswith(data_dir) for v in value.values())
        ):
            return f"in-memory array {value.get('name')!r}"
        return {k: _comparable(v, data_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v, data_dir) for v in value]
    return value


#: How long :meth:`FileStore.lock` retries a held lock before refusing the run: a reader's
#: probe (:meth:`FileStore.lock_holder`) holds it for an instant, and must not make a
#: trainer that starts at that instant fail.
_LOCK_PATIENCE_S = 0.2


def _try_lock_patiently(fh: IO[str]) -> bool:
    deadline = time.monotonic() + _LOCK_PATIENCE_S
    while not _try_lock(fh):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


# The lock covers byte 0 of the lock file and the holder's pid follows it: Windows locks
# byte ranges (and others cannot read a locked range), POSIX flock locks the whole file.
_PID_OFFSET = 1

if sys.platform == "win32":
    import msvcrt

    def _try_lock(fh: IO[str], shared: bool = False) -> bool:
        # Windows has no shared locks: a probe locks byte 0 exclusively, for an instant.
        fh.seek(0)
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fh: IO[str]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fh: IO[str], shared: bool = False) -> bool:
        try:
            fcntl.flock(fh.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_display(run_dir: str | Path) -> dict[str, Any]:
    """The record :meth:`FileStore.store_display` wrote in ``run_dir``, or ``{}`` (none,
    or unreadable: a display hint must never stop a run folder from opening). Reads only,
    so a run training elsewhere can be opened."""
    return _read_record(Path(run_dir) / DISPLAY_FILE)


def _read_record(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when there is none or it cannot be read."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        logger.warning("Ignored %s: %s", path, e)
        return {}
    return record if isinstance(record, dict) else {}


def read_training_data(run_dir: str | Path) -> dict[str, Any]:
    """The record :meth:`FileStore.store_training_data` wrote in ``run_dir``, or ``{}``
    (none: a run trained before it was recorded; or unreadable, logged)."""
    return _read_record(Path(run_dir) / TRAINING_DATA_FILE)


def world_factor_of(run_dir: str | Path) -> float:
    """The world factor recorded in ``run_dir`` (:func:`read_display`): its values divided
    by it are the napari units of the layers the run was trained on; 1 when none is."""
    return float(read_display(run_dir).get("world_factor", 1))


def _saved(state: dict[str, Any]) -> bytes:
    """``state`` as ``torch.save`` writes it, in bytes (nested in a checkpoint)."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()
