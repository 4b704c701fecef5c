"""An input's intensities compared with the training data's, as the network reads them: a
prediction of intensities on another scale than the network learned may be meaningless
(:class:`IntensityScaleWarning`).

Raw data without a recorded range reaches the network divided by its integer dtype's
maximum (uint8 by 255, uint16 by 65535) and as they are for floats
(:func:`~napari_dacapo.experiments.datasplits.datasets.arrays.array.raw_as_float32`). A run
trained so on uint8 images learned intensities of 0-1: a uint16 image of 300-2850 reaches
its network as 0.005-0.04, nearly constant, and a float image of 0-255 as 0-255. A run
trained with a recorded range (an IntensitiesArrayConfig) scales any input from that range,
in the raw data's own units, whatever its dtype: nothing here applies to it.

The predict functions, the CLI, the training panel (continuing a stored run) and the
predict panel all judge with :func:`intensity_scale_mismatch`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .training_data import training_raws

if TYPE_CHECKING:
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import Array
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.run_config import RunConfig

__all__ = [
    "IntensityScaleWarning",
    "training_raw_dtypes",
    "scale_text",
    "own_range_fits",
    "needs_values",
    "intensity_scale_mismatch",
    "scale_fix",
    "sampled_data",
    "unchecked_intensity_scale",
]


class IntensityScaleWarning(UserWarning):
    """The input of a prediction reaches the network on another intensity scale than the
    run's training data did (see :func:`intensity_scale_mismatch`)."""


#: What the network learned from, by default: the consequence a mismatch message names.
_EFFECT = ("the network sees intensities unlike those it learned, and its prediction may be "
           "meaningless.")

#: False where prediction_input leaves the intensity scale unchecked.
_CHECK_INTENSITY_SCALE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "napari_dacapo_check_intensity_scale", default=True
)


def training_raw_dtypes(run: Run | RunConfig) -> list[np.dtype]:
    """The distinct dtypes of the raw data that the run (or run config) trains on, in
    dataset order (see :func:`~.training_data.training_raws`). Meant for a run trained
    without a recorded range (its training raw configs are the stored data, not an
    IntensitiesArrayConfig's float32 output)."""
    return list(dict.fromkeys(raw.dtype for raw in training_raws(run)))


def _divisor(dtype: Any) -> int | None:
    """What raw data of ``dtype`` is divided by on its way to the network (bool: 1, used as
    0 and 1); None for floats, used as they are."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return 1
    if np.issubdtype(dtype, np.integer):
        return int(np.iinfo(dtype).max)
    return None


def _network_range(dtype: Any) -> tuple[float, float]:
    """The values integer (or bool) data of ``dtype`` can reach the network as."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return 0.0, 1.0
    info = np.iinfo(dtype)
    return float(round(info.min / info.max)), 1.0


def scale_text(dtype: Any) -> str:
    """How the network reads raw data of ``dtype``, as messages say it, e.g. ``'uint8,
    0–255 scaled to 0–1'``, ``'uint16, divided by 65535'``, ``'float32, used as they
    are'``."""
    dtype = np.dtype(dtype)
    divisor = _divisor(dtype)
    if dtype == np.bool_:
        return "bool, 0 and 1"
    if dtype == np.uint8:
        return "uint8, 0–255 scaled to 0–1"
    if divisor is not None:
        return f"{dtype}, divided by {divisor}"
    return f"{dtype}, used as they are"


def own_range_fits(training: Sequence[Any]) -> bool:
    """Whether an input scaled from its own range to 0-1 fits a network trained without a
    range on raw data of the dtypes ``training``: uint8 data, divided by 255, spans about
    0-1 as well; of wider integers (a 12-bit camera's in uint16: 0.005-0.06) and floats the
    span is not known from the dtype."""
    return bool(training) and all(np.dtype(t) == np.uint8 for t in training)


def needs_values(dtype: Any, training: Sequence[Any]) -> bool:
    """Whether :func:`intensity_scale_mismatch` needs the input's values to judge: a float
    input (used as it is) of a run trained on integer data."""
    return _divisor(dtype) is None and any(_divisor(t) is not None for t in training)


def scale_fix(training: Sequence[Any]) -> str:
    """What to do about an input whose intensities are on another scale than the training
    data of the dtypes ``training``, said for the API and the CLI: scale it from its own
    range where that fits (:func:`own_range_fits`), give a range, or convert it."""
    given = ("give the intensities that become 0 and 1 (rescale=(low, high); CLI: "
             "--intensities LOW,HIGH)")
    target = next((np.dtype(t) for t in training if _divisor(t) is not None), None)
    convert = f"convert it to {target}" if target is not None else "convert it"
    if own_range_fits(training):
        return (f"Scale it from its own intensity range (rescale='image'; CLI: --intensities "
                f"image), {given}, or {convert}.")
    example = ""
    if target is not None and target != np.bool_ and np.iinfo(target).min == 0:
        maximum = np.iinfo(target).max
        example = f", e.g. (0, {maximum}) to divide its values by {maximum} as training did"
    return f"{given[0].upper()}{given[1:]}{example}; or {convert}."


def intensity_scale_mismatch(
    dtype: Any,
    training: Sequence[Any],
    run_name: str,
    *,
    values: tuple[float, float] | None = None,
    what: str = "The input's intensities",
    effect: str = _EFFECT,
    fix: str | None = None,
) -> str:
    """Why intensities of ``dtype`` reach the network of run ``run_name``, trained without
    a recorded range on raw data of the dtypes ``training`` (:func:`training_raw_dtypes`),
    on another scale than its training data did ('' when they do not, or it is not known).

    Integers (and bools) match training data divided by the same number (uint8 and
    uint16 do not: 255 and 65535). A float input, used as it is, is judged by ``values``,
    its 1st and 99.8th percentile (see :func:`needs_values`): it mismatches integer
    training data when those lie outside the values that data could reach the network
    as (0 to 1, or -1 to 1 for signed integers) by more than that span (a 0-255 float
    image on a uint8 run does; a 0-1 one does not). Float training data (used as it was)
    and unknown ``training`` or ``values`` give ''.
    """
    dtype = np.dtype(dtype)
    training = [np.dtype(t) for t in training]
    scales = [_divisor(t) for t in training]
    if not training or None in scales:  # unknown, or training values not known by dtype
        return ""
    fix = scale_fix(training) if fix is None else fix
    trained = "; ".join(scale_text(t) for t in training)
    divisor = _divisor(dtype)
    if divisor is not None:
        if divisor in scales:
            return ""
        return (f"{what} ({scale_text(dtype)}) reach the network on another scale than "
                f"those of the data run '{run_name}' was trained on ({trained}): {effect} "
                f"{fix}")
    if values is None:
        return ""
    low, high = values
    spans = [_network_range(t) for t in training]
    if any(lo - (hi - lo) <= low and high <= hi + (hi - lo) for lo, hi in spans):
        return ""
    reached = " or ".join(dict.fromkeys(f"{lo:g} to {hi:g}" for lo, hi in spans))
    return (f"{what} ({dtype}, used as they are: {low:.5g} to {high:.5g}, 1st to 99.8th "
            f"percentile) lie far outside {reached}, where those of the data run "
            f"'{run_name}' was trained on reached the network ({trained}): {effect} {fix}")


def sampled_data(array: Array) -> Any:
    """What to sample the values of ``array`` from
    (:func:`~napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range.percentile_range`,
    a bounded read): the data under a source array, also through crops and other
    wrappers that read its values unchanged; None for arrays that compute their values
    (e.g. concatenated or rescaled)."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import (
        DerivedArray,
        SourceArray,
        WrappedArray,
    )

    while isinstance(array, WrappedArray) and not isinstance(array, DerivedArray):
        array = array.source
    return array.source if isinstance(array, SourceArray) else None


@contextlib.contextmanager
def unchecked_intensity_scale() -> Iterator[None]:
    """Within it (in this thread), :func:`~.inputs.prediction_input` does not compare the
    input's intensity scale with the training data's: for callers that compared it
    already (blockwise workers: their job did, once; the predict panel, which says it
    before predicting)."""
    token = _CHECK_INTENSITY_SCALE.set(False)
    try:
        yield
    finally:
        _CHECK_INTENSITY_SCALE.reset(token)
