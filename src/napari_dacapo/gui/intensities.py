"""The intensity range a new run made in the training panel rescales its raw data with.

The network reads raw data as stored (integers divided by their dtype's maximum, floats
as they are), and the default intensity augment clips samples to ``[0, 1]``: a float
image of 300-2800 then trains on a few distinct values, a 12-bit camera image in uint16
on 0.005-0.05. A new run made from layers therefore rescales its raw data with an
``IntensitiesArrayConfig`` from robust percentiles of the training image (as stardist and
careamics users expect), which prediction repeats (``predict.training_intensity_range``).
uint8 images keep DaCapo's division by 255 (already 0-1, and what runs made before this
were trained with). Reading an image (large, or lazy zarr/dask) is too slow for the GUI
thread: :class:`IntensityMeasure` measures it in a worker and keeps the answer per image.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.qt.threading import create_worker

from napari_dacapo.experiments import (
    IntensitiesArrayConfig,
    RawGTDatasetConfig,
    TrainValidateDataSplitConfig,
)
from napari_dacapo.store.file_store import FileStore

from .data_panel import DataProblem, DataSelection
from .layer_arrays import layer_data

__all__ = ["IntensityMeasure", "IntensityRange", "intensity_range", "keeps_stored_range",
           "rescaled", "sample_values", "scaled_datasplit"]

#: Most values :func:`intensity_range` reads from an image.
SAMPLE_VALUES = 2_000_000
#: The percentiles that become 0 and 1 (over all channels together).
PERCENTILES = (1.0, 99.8)


def keeps_stored_range(dtype: Any) -> bool:
    """Whether raw data of ``dtype`` trains as stored: uint8 divided by 255 is 0-1 already
    (and the panel's runs on 8-bit images trained so before rescaling was added); booleans
    are 0 and 1."""
    return np.dtype(dtype) in (np.dtype(np.uint8), np.dtype(np.bool_))


@dataclass(frozen=True)
class IntensityRange:
    """The intensities that become 0 (``low``) and 1 (``high``), and ``how`` they were
    found."""

    low: float
    high: float
    how: str

    def describe(self) -> str:
        """E.g. ``'Intensities 312–2790 are scaled to 0–1 (1st–99.8th percentile).'``."""
        return (f"Intensities {_shown(self.low)}–{_shown(self.high)} are scaled to 0–1 "
                f"({self.how}).")


def intensity_range(data: Any) -> IntensityRange:
    """The 1st and 99.8th percentile of ``data`` (all channels together, of at most about
    :data:`SAMPLE_VALUES` values, :func:`sample_values`); its minimum and maximum when those
    percentiles are equal (a mostly constant image, e.g. sparse bright spots).

    Raises
    ------
    ValueError
        If the values read are all equal, or none is finite.
    """
    values = sample_values(data)
    values = values[np.isfinite(values)] if values.dtype.kind in "fc" else values
    if values.size == 0:
        raise ValueError("The image holds no finite value (all NaN or infinity): replace such "
                         "values (e.g. with numpy.nan_to_num), or pick the image with the data.")
    low, high = (_rounded(v) for v in np.percentile(values, PERCENTILES))
    first, last = (f"{p:g}{'st' if p == 1 else 'th'}" for p in PERCENTILES)
    how = f"{first}–{last} percentile"
    if not high > low:
        low, high = _rounded(values.min()), _rounded(values.max())
        how = "minimum–maximum: the percentiles are equal"
    if not high > low:
        raise ValueError(
            f"The image holds the single value {_shown(low)} (in the {values.size} values "
            f"read), so there is nothing to learn from: pick the image layer with the data."
        )
    return IntensityRange(low, high, how)


def sample_values(data: Any, limit: int = SAMPLE_VALUES) -> np.ndarray:
    """At most about ``limit`` values of ``data`` (numpy, dask or zarr), spread over it: all
    of a small array; of chunked data (zarr, dask), whole chunks spread evenly over the
    chunk grid (reading strided values would decode every chunk), strided within when a
    chunk alone holds more; of other data, every n-th value along each axis."""
    shape = tuple(int(n) for n in data.shape)
    if math.prod(shape) <= limit:
        return np.asarray(data[...]).ravel()
    chunks = _chunk_shape(data, shape)
    if chunks is None:
        return np.asarray(data[_strides(shape, limit)]).ravel()
    grid = [-(-n // c) for n, c in zip(shape, chunks)]
    count = min(math.prod(grid), max(1, limit // math.prod(chunks)))
    picks = np.unique(np.linspace(0, math.prod(grid) - 1, count).round().astype(int))
    budget = max(1, limit // len(picks))
    parts = []
    for pick in picks:
        index = np.unravel_index(pick, grid)
        box = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunks, shape))
        block = np.asarray(data[box])
        parts.append(block[_strides(block.shape, budget)].ravel())
    return np.concatenate(parts)


def scaled_datasplit(
    selection: DataSelection, name: str, store: FileStore, measure: IntensityMeasure,
    on_measured: Callable[[], None],
) -> tuple[TrainValidateDataSplitConfig, str]:
    """The datasplit of ``selection`` with its raw data scaled as run ``name`` trains it,
    and a note that says how (for the panel's data section).

    A stored run keeps its stored range (none for a run stored before rescaling was added,
    or trained on uint8): measured again, a range that differs would make the config
    differ from the stored one, or change what the network sees. A new run takes the
    training image's percentiles (``measure``, which calls ``on_measured`` when a measure
    it started ends); a uint8 image is used as stored.

    Raises
    ------
    DataProblem
        While the image's intensities are being measured (Train waits for them), or when
        they give no range (a constant image).
    """
    from napari_dacapo.predict import training_intensity_range

    datasplit = selection.datasplit
    data = layer_data(selection.raw_layer)
    as_stored = "Intensities 0–255 (8-bit) are scaled to 0–1." if data.dtype == np.uint8 else ""
    if store.has_run(name):
        try:
            bounds = training_intensity_range(store.retrieve_run_config(name))
        except ValueError:  # datasets rescaled differently: the store's check names it
            return datasplit, ""
        if bounds is None:
            return datasplit, as_stored or f"Intensities are used as stored, as run '{name}' was."
        stored = IntensityRange(*bounds, how=f"as run '{name}' was trained")
        return rescaled(datasplit, *bounds), stored.describe()
    if keeps_stored_range(data.dtype):
        return datasplit, as_stored
    measured = measure.range(data, on_measured)
    if measured is None:
        raise DataProblem("Measuring the image's intensities…")
    if isinstance(measured, str):
        raise DataProblem(measured)
    return rescaled(datasplit, measured.low, measured.high), measured.describe()


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


def _chunk_shape(data: Any, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The chunk shape of zarr (``chunks``) or dask (``chunksize``) data, else None."""
    for key in ("chunksize", "chunks"):
        chunks = getattr(data, key, None)
        if (isinstance(chunks, tuple) and len(chunks) == len(shape)
                and all(isinstance(c, (int, np.integer)) and c > 0 for c in chunks)):
            return tuple(int(c) for c in chunks)
    return None


def _strides(shape: tuple[int, ...], limit: int) -> tuple[slice, ...]:
    """Slices taking every n-th value along each axis, at most ``limit`` values in all (the
    longest axis is thinned first, so a few channels are kept whole)."""
    steps = [1] * len(shape)

    def kept(axis: int) -> int:
        return -(-shape[axis] // steps[axis])

    while math.prod(kept(a) for a in range(len(shape))) > limit:
        steps[max(range(len(shape)), key=kept)] *= 2
    return tuple(slice(None, None, s) for s in steps)


def _rounded(value: Any) -> float:
    # Six significant digits: the stored config reads 312.5, not 312.49998474121094.
    return float(f"{float(value):.6g}")


def _shown(value: float) -> str:
    return f"{value:.5g}"


class IntensityMeasure:
    """:func:`intensity_range` of the training image, measured in a worker and kept for
    that image's data (the same array object: a layer given new data is measured again).
    """

    def __init__(self) -> None:
        self._known: tuple[Callable[[], Any], IntensityRange | str] | None = None
        self._measuring: Any = None
        self._closed = False

    def range(self, data: Any, on_measured: Callable[[], None]) -> IntensityRange | str | None:
        """The range of ``data``, or why it has none (a message); None while that is not
        known yet: it is then measured in a worker (one at a time, so a measure of data
        replaced since is followed by one of the current) and ``on_measured()`` is called
        (GUI thread) when it ends."""
        if self._known is not None and self._known[0]() is data:
            return self._known[1]
        if self._measuring is None and not self._closed:
            ref = _reference(data)
            worker = create_worker(_measured, data, _start_thread=False)
            worker.returned.connect(lambda answer: self._on_returned(ref, answer))
            worker.finished.connect(lambda: self._on_finished(on_measured))
            self._measuring = worker
            worker.start()
        return None

    def close(self) -> None:
        """No more measures, nor callbacks from one that runs (the panel is going away)."""
        self._closed = True

    def _on_returned(self, ref: Callable[[], Any], answer: IntensityRange | str) -> None:
        self._known = (ref, answer)

    def _on_finished(self, on_measured: Callable[[], None]) -> None:
        self._measuring = None
        if not self._closed:
            on_measured()


def _measured(data: Any) -> IntensityRange | str:
    """:func:`intensity_range` of ``data``, or why there is none (worker thread)."""
    try:
        return intensity_range(data)
    except ValueError as error:
        return str(error)
    except Exception as error:  # reading failed (a zarr store gone, a dask graph failing)
        return f"The image's intensities could not be read ({type(error).__name__}: {error})."


def _reference(data: Any) -> Callable[[], Any]:
    """A weak reference to ``data`` where it allows one (the image's data is not kept
    alive by the panel after its layer is deleted), else a strong one."""
    try:
        return weakref.ref(data)
    except TypeError:
        return lambda: data
