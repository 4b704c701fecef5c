"""What prediction reads of the data a run was trained on: its raw array configs, the
intensity range they were rescaled with, the voxel size and dtype of each raw array (as
recorded when the run trained, else opened), and its first raw array."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from funlib.geometry import Coordinate

from napari_dacapo.experiments.datasplits.datasets.arrays.array import Array

if TYPE_CHECKING:
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.run_config import RunConfig

__all__ = [
    "TrainingRaw",
    "training_raw_configs",
    "training_raw_arrays",
    "training_data_record",
    "training_raws",
    "training_intensity_range",
    "training_raw",
]


logger = logging.getLogger(__name__)

_PASS_EXPLICITLY = "Pass voxel_size= and rescale= explicitly."


@dataclass(frozen=True)
class TrainingRaw:
    """What prediction compares an input with: one training raw array's voxel size and
    dtype (the dtype the network's input was read from: float32 behind a recorded
    intensity range)."""

    voxel_size: Coordinate
    dtype: np.dtype


def training_raw_configs(run: Run | RunConfig) -> list[Any]:
    """The raw array config of each training dataset in the run's config (a run or its
    config): the datasets a TrainValidateDataSplitConfig lists, or the one of a
    DummyDataSplitConfig."""
    split = getattr(run, "config", run).datasplit_config
    datasets = getattr(split, "train_configs", None) or [getattr(split, "train_config", None)]
    return [c for c in (getattr(d, "raw_config", None) for d in datasets) if c is not None]


def training_raw_arrays(run: Run | RunConfig) -> list[Array]:
    """The raw arrays that the run (or run config) trains on, in dataset order; ``[]``
    when that data cannot be opened (a cluster node may not see it). Only the raw arrays
    the datasplit config names are opened (a run made in napari keeps them in
    ``data/*.zarr`` in its folder), or, for a datasplit that names none, its training
    datasets."""
    config = getattr(run, "config", run)
    try:
        if configs := training_raw_configs(config):
            return [c.array() for c in configs]
        split = config.datasplit_config
        return [d.raw for d in split.datasplit_type(split).train]
    except (OSError, ValueError):
        return []


def training_data_record(run: Run) -> dict[str, Any]:
    """What :meth:`~napari_dacapo.store.file_store.FileStore.store_training_data` records
    of the run's training raw arrays (``{}`` when they cannot be opened)."""
    arrays = training_raw_arrays(run)
    return {"raw": [{"voxel_size": [int(v) for v in a.voxel_size],
                     "dtype": np.dtype(a.dtype).str} for a in arrays]} if arrays else {}


def training_raws(run: Run | RunConfig) -> list[TrainingRaw]:
    """The voxel size and dtype of each raw array that the run (or run config) trains on,
    in dataset order: as recorded in the run's folder when it trained (a Run; one small
    file), else read from the arrays (:func:`training_raw_arrays`; ``[]`` when they cannot
    be opened)."""
    from napari_dacapo.store.file_store import read_training_data

    recorded = None
    if hasattr(run, "store"):
        recorded = read_training_data(run.store.run_dir(run.name)).get("raw")
    if recorded:
        try:
            raws = [TrainingRaw(Coordinate(r["voxel_size"]), np.dtype(r["dtype"]))
                    for r in recorded]
            dims = run.architecture.dims
            if any(len(raw.voxel_size) != dims for raw in raws):
                raise ValueError(f"a voxel size has not the network's {dims} axes")
            return raws
        except (KeyError, TypeError, ValueError) as e:
            logger.warning("Ignored the training data recorded for run %s: %r", run.name, e)
    return [TrainingRaw(Coordinate(a.voxel_size), np.dtype(a.dtype))
            for a in training_raw_arrays(run)]


def training_intensity_range(run: Run) -> tuple[float, float] | None:
    """The ``(min, max)`` of the IntensitiesArrayConfig that rescaled the run's training
    raw data, or None when the raw data was used as stored.

    Read from the run's config alone (through each training raw config's
    ``source_array_config`` chain), so predicting never needs the training data itself:
    a cluster node may not see it.

    Raises
    ------
    ValueError
        If the training datasets rescale differently (there is no one rule to repeat).
    """
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_array_config import (
        IntensitiesArrayConfig,
    )

    ranges = set()
    for config in training_raw_configs(run):
        found = None
        while config is not None:  # through derived and cropped arrays to the source
            if isinstance(config, IntensitiesArrayConfig):
                found = (float(config.min), float(config.max))
                break
            config = getattr(config, "source_array_config", None)
        ranges.add(found)
    if len(ranges) > 1:
        raise ValueError(
            f"The training datasets of run '{run.name}' rescale their raw intensities "
            f"differently ({sorted(ranges, key=str)}). Pass rescale=(min, max) for your data, "
            f"or rescale=False for data already scaled as the network expects."
        )
    return ranges.pop() if ranges else None


def training_raw(run: Run, what: str, fix: str = _PASS_EXPLICITLY) -> Array:
    """The raw array of the run's first training dataset, opened to read ``what`` (e.g.
    its voxel size); a ValueError ending in ``fix`` if it cannot be opened or there is
    none. Where the datasplit config names it, only that array is opened (not the whole
    datasplit: labels and validation data, milliseconds per zarr array)."""
    try:
        if configs := training_raw_configs(run):
            return configs[0].array()
        datasets = list(run.datasplit.train)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"The training data of run '{run.name}' cannot be opened to read {what} ({e}). "
            f"{fix}"
        ) from e
    if not datasets:
        raise ValueError(f"Run '{run.name}' has no training dataset to read {what} from. {fix}")
    return datasets[0].raw
