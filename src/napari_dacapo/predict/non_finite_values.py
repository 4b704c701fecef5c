"""Predictions that hold NaN or infinite values (passed on from such values in the input):
how to find them (:func:`non_finite`) and what to say (:data:`NON_FINITE_PREDICTION`)."""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["NON_FINITE_PREDICTION", "NonFiniteWarning", "non_finite", "warn_if_non_finite"]


#: What to say when a prediction holds NaN or infinite values (the network passes them on
#: from the input: training refuses such input, prediction reads what it is given).
NON_FINITE_PREDICTION = (
    "The prediction holds NaN or infinite values: the input holds such values (e.g. NaN "
    "for missing data) and the network passes them on around them. Replace them before "
    "predicting, e.g. with numpy.nan_to_num(image)."
)


class NonFiniteWarning(UserWarning):
    """A prediction holds NaN or infinite values (see :data:`NON_FINITE_PREDICTION`)."""


def non_finite(prediction: np.ndarray) -> bool:
    """Whether ``prediction`` holds a NaN or infinite value (a sum first: one fast pass over
    an array that has none, which is the usual case)."""
    total = np.sum(prediction, dtype=np.float64)
    return not np.isfinite(total) and not bool(np.isfinite(prediction).all())


def warn_if_non_finite(prediction: np.ndarray, stacklevel: int = 2) -> None:
    """Warn (:class:`NonFiniteWarning`) if ``prediction`` holds NaN or infinite values."""
    if non_finite(prediction):
        warnings.warn(NON_FINITE_PREDICTION, NonFiniteWarning, stacklevel=stacklevel + 1)
