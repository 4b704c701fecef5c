"""What prediction reads of the data a run was trained on: its raw array configs, the
intensity range they were rescaled with, and its first raw array."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari_dacapo.experiments.datasplits.datasets.arrays.array import Array

if TYPE_CHECKING:
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.run_config import RunConfig

__all__ = [
    "training_raw_configs",
    "training_raw_arrays",
    "training_intensity_range",
    "training_raw",
]


_PASS_EXPLICITLY = "Pass voxel_size= and rescale= explicitly."


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
