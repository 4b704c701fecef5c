"""The intensity range a new run made in the training panel rescales its raw data with.

Without a range, the network reads raw data divided by its integer dtype's maximum (uint8
by 255, uint16 by 65535) and floats as they are; the default intensity augment clips
samples to ``[0, 1]``: a float image of 300-2800 then trains on a few distinct values, a
12-bit camera image in uint16 on 0.005-0.05. A new run made from layers therefore rescales
its raw data with an ``IntensitiesArrayConfig`` from robust percentiles of the training
image (as stardist and careamics users expect), which prediction repeats
(``predict.training_intensity_range``). uint8 images keep DaCapo's division by 255 (0-1
already, and what runs made before this were trained with). A stored run trained without a
range continues only on raw data that reaches its network on the same scale
(``predict.intensity_scale_mismatch``: a uint8 run refuses a uint16 image). Reading an
image (large, or lazy zarr/dask) is too slow for the GUI thread: :class:`IntensityMeasure`
measures it in a worker and keeps the answer per image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from napari_dacapo.experiments import (
    IntensitiesArrayConfig,
    RawGTDatasetConfig,
    TrainValidateDataSplitConfig,
)
from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
    IntensityRange,
    intensity_range,
)
from napari_dacapo.store.file_store import FileStore

from .background_answer import BackgroundAnswer, Same
from .data_panel import DataProblem, DataSelection
from .layer_arrays import layer_data

__all__ = ["MEASURING", "IntensityMeasure", "keeps_stored_range", "rescaled",
           "scaled_datasplit"]


#: What Train says while the image's intensities are measured.
MEASURING = "Measuring the image's intensities…"


def keeps_stored_range(dtype: Any) -> bool:
    """Whether a new run trains raw data of ``dtype`` without a range, divided by its
    dtype's maximum: uint8 divided by 255 is 0-1 already (and the panel's runs on 8-bit
    images trained so before rescaling was added); booleans are 0 and 1."""
    return np.dtype(dtype) in (np.dtype(np.uint8), np.dtype(np.bool_))


def scaled_datasplit(
    selection: DataSelection, name: str, store: FileStore, measure: IntensityMeasure,
    on_measured: Callable[[], None],
) -> tuple[TrainValidateDataSplitConfig, str]:
    """The datasplit of ``selection`` with its raw data scaled as run ``name`` trains it,
    and a note that says how (for the panel's data section).

    A stored run keeps its stored range: measured again, a range that differs would make
    the config differ from the stored one, or change what the network sees. A stored run
    without one (stored before rescaling was added, or trained on uint8) continues only on
    raw data that reaches its network on the scale it learned (:func:`_unscaled_note`). A
    new run takes the training image's percentiles (``measure``, which calls
    ``on_measured`` when a measure it started ends); a uint8 image is divided by 255.

    Raises
    ------
    DataProblem
        While the image's intensities are being measured (Train waits for them), when
        they give no range (a constant image), or when the raw data would reach the
        network on another scale than the stored run's training data (e.g. a uint16
        image for a run trained on uint8 images), or, for a new run on uint8 data, a
        validation image of another integer dtype than the training raw.
    """
    from napari_dacapo.predict import training_intensity_range

    datasplit = selection.datasplit
    data = layer_data(selection.raw_layer)
    if store.has_run(name):
        try:
            stored_config = store.retrieve_run_config(name)
            bounds = training_intensity_range(stored_config)
        except ValueError:  # datasets rescaled differently: the store's check names it
            return datasplit, ""
        if bounds is None:
            return datasplit, _unscaled_note(
                selection, name, stored_config, measure, on_measured)
        stored = IntensityRange(*bounds, how=f"as run '{name}' was trained")
        return rescaled(datasplit, *bounds), stored.describe()
    if keeps_stored_range(data.dtype):
        _check_validation_raw(datasplit, [data.dtype])
        return datasplit, _unscaled_how(data.dtype)
    measured = measure.range(data, on_measured)
    if measured is None:
        raise DataProblem(MEASURING)
    if isinstance(measured, str):
        raise DataProblem(measured)
    return rescaled(datasplit, measured.low, measured.high), measured.describe()


def _unscaled_note(
    selection: DataSelection, name: str, stored_config: Any, measure: IntensityMeasure,
    on_measured: Callable[[], None],
) -> str:
    """How the raw data of ``selection`` reaches the network of run ``name``, stored
    without a range; a :class:`DataProblem` when that is another scale than its training
    data's (read from the run's stored data: its dtypes, and for a float image on a run
    trained on integers, the image's measured range)."""
    from napari_dacapo.predict import (
        intensity_scale_mismatch,
        needs_values,
        training_raw_dtypes,
    )

    layer = selection.raw_layer
    data = layer_data(layer)
    training = training_raw_dtypes(stored_config)
    values = None
    if needs_values(data.dtype, training):
        measured = measure.range(data, on_measured)
        if measured is None:
            raise DataProblem(MEASURING)
        if isinstance(measured, IntensityRange):  # else a constant image: not judged
            values = (measured.low, measured.high)
    if training:
        mismatch = intensity_scale_mismatch(
            data.dtype, training, name, values=values,
            what=f"The intensities of raw '{layer.name}'",
            effect="continued, the network would train on intensities unlike those it "
            "learned.",
            fix=f"Convert the image to {training[0]}, as the run's data was, or train it as "
            f"a new run (another run name), which scales its intensities for itself.",
        )
        if mismatch:
            raise DataProblem(mismatch)
    how = _unscaled_how(data.dtype)
    if not training:
        return (f"{how.rstrip('.')}: run '{name}' was trained without a range, on data "
                f"that cannot be opened to compare.")
    return f"{how.rstrip('.')}, as run '{name}' was trained."


def _unscaled_how(dtype: Any) -> str:
    """How raw data of ``dtype`` reaches the network without a range, as the data section
    says it."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return "Intensities 0–255 (8-bit) are scaled to 0–1."
    if dtype == np.bool_:
        return "Intensities are used as they are (0 and 1)."
    if np.issubdtype(dtype, np.integer):
        return f"Intensities are divided by {np.iinfo(dtype).max} (the {dtype} maximum)."
    return "Intensities are used as stored (floats, not rescaled)."


def _check_validation_raw(
    datasplit: TrainValidateDataSplitConfig, training: list[Any]
) -> None:
    """Refuse a validation image (picked as validation raw) whose integer intensities reach
    the network on another scale than the training data's, of the dtypes ``training``
    (both without a range): validation would score the network on intensities it never
    trained on. A float one is not judged (that needs its values). For new runs only: a
    stored run validated so cannot drop its validation data and still continue."""
    from napari_dacapo.predict import intensity_scale_mismatch

    for dataset in datasplit.validate_configs:
        dtype = getattr(getattr(dataset.raw_config, "data", None), "dtype", None)
        if dtype is None or not np.issubdtype(dtype, np.integer):
            continue
        if intensity_scale_mismatch(dtype, training, ""):
            raise DataProblem(
                f"The validation raw image is {dtype}, but the training raw is "
                f"{', '.join(map(str, training))}: without an intensity range each is "
                f"divided by its dtype's maximum, so validation would score the network on "
                f"intensities on another scale than it trains on. Convert the validation "
                f"image to {training[0]}, or pick none."
            )


def rescaled(
    datasplit: TrainValidateDataSplitConfig, low: float, high: float
) -> TrainValidateDataSplitConfig:
    """``datasplit`` with the raw data of every dataset, training and validation alike,
    rescaled from ``[low, high]`` to ``[0, 1]`` by an :class:`IntensitiesArrayConfig` (one
    per raw array: a validation region's raw is the training raw, stored once)."""
    wrapped: dict[int, IntensitiesArrayConfig] = {}

    def wrap(dataset: RawGTDatasetConfig) -> RawGTDatasetConfig:
        raw = dataset.raw_config
        if id(raw) not in wrapped:
            wrapped[id(raw)] = IntensitiesArrayConfig(
                name=f"{raw.name}_scaled", source_array_config=raw, min=low, max=high
            )
        return dataset.replace(raw_config=wrapped[id(raw)])

    return datasplit.replace(
        train_configs=[wrap(dataset) for dataset in datasplit.train_configs],
        validate_configs=[wrap(dataset) for dataset in datasplit.validate_configs],
    )


class IntensityMeasure:
    """:func:`intensity_range` of the training image, measured in a worker and kept for
    that image's data (the same array object: a layer given new data is measured again).
    """

    def __init__(self) -> None:
        self._answers = BackgroundAnswer(_unreadable)

    _measuring = property(lambda self: self._answers.worker)  # tests wait for it to end

    def range(self, data: Any, on_measured: Callable[[], None]) -> IntensityRange | str | None:
        """The range of ``data``, or why it has none (a message); None while that is not
        known yet: it is then measured in a worker (one at a time, so a measure of data
        replaced since is followed by one of the current) and ``on_measured()`` is called
        (GUI thread) when it ends."""
        return self._answers.ask(Same(data), _measured, data, on_ended=on_measured)

    def close(self) -> None:
        """No more measures, nor callbacks from one that runs (the panel is going away)."""
        self._answers.close()


def _measured(data: Any) -> IntensityRange | str:
    """:func:`intensity_range` of ``data``, or why there is none (worker thread)."""
    try:
        return intensity_range(data)
    except ValueError as error:
        return str(error)
    except Exception as error:  # reading failed (a zarr store gone, a dask graph failing)
        return _unreadable(error)


def _unreadable(error: Exception) -> str:
    return f"The image's intensities could not be read ({type(error).__name__}: {error})."
