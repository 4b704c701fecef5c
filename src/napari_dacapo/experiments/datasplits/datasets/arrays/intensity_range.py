"""The intensity range that raw data is rescaled from: robust percentiles of an image,
read from a bounded sample of it (numpy, dask or zarr), for the training panel's new runs
and for predicting an image with its own range (panel, CLI and API alike)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["IntensityRange", "PERCENTILES", "SAMPLE_VALUES", "intensity_range",
           "percentile_range", "sample_values"]

#: Most values :func:`intensity_range` reads from an image.
SAMPLE_VALUES = 2_000_000
#: The percentiles that become 0 and 1 (over all channels together).
PERCENTILES = (1.0, 99.8)


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
            f"read), so it has no range of intensities to scale: pick the image with the data."
        )
    return IntensityRange(low, high, how)


def percentile_range(data: Any) -> tuple[float, float] | None:
    """The 1st and 99.8th percentile of the finite values of a sample of ``data`` (as
    :func:`intensity_range` reads it), equal for a constant image; None when no value read
    is finite. For judging where an image's values lie, not for scaling them."""
    values = sample_values(data)
    values = values[np.isfinite(values)] if values.dtype.kind in "fc" else values
    if values.size == 0:
        return None
    low, high = np.percentile(values, PERCENTILES)
    return float(low), float(high)


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
