"""Whether the image the predict panel would predict holds NaN or infinite values, which
the network passes on into the prediction and its labels (training refuses such raw data
before it starts, see :mod:`.data_check`).

An image held in memory (numpy) is searched once per array, in a worker (one pass over it:
:func:`~napari_dacapo.predict.non_finite`), when it is picked or its data replaced; the
panel refuses to predict it until its values are replaced. An image read lazily (dask,
zarr; possibly bigger than memory) is not scanned: the prediction warns of such values
once it has run, as the panel's status says beforehand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from napari_dacapo.gui.background_answer import BackgroundAnswer, Same
from napari_dacapo.gui.layer_arrays import layer_data
from napari_dacapo.predict import non_finite

__all__ = ["LAZY_NOTE", "ImageValuesCheck", "non_finite_reason"]

logger = logging.getLogger(__name__)

#: Said of a lazily read image with floating-point values (not searched beforehand).
LAZY_NOTE = ("Note: the image is read lazily, so it is not searched for NaN or infinite "
             "values before predicting; the prediction warns of them.")


def non_finite_reason(name: str) -> str:
    """Why image ``name``, which holds NaN or infinite values, is not predicted, with the fix."""
    layer = f"viewer.layers['{name}']"
    return (f"Image '{name}' holds NaN or infinite values, which the network would pass on "
            f"into the prediction and its labels. Replace them first, e.g. in napari's "
            f"console: import numpy; {layer}.data = numpy.nan_to_num({layer}.data)")


def _searched(data: Any) -> bool:
    """Whether ``data`` is searched for NaN and infinity: floating-point values in memory."""
    return isinstance(data, np.ndarray) and data.dtype.kind in "fc"


class ImageValuesCheck:
    """Whether the picked image's data holds NaN or infinite values: searched in a worker
    (one at a time) and kept for as long as the layer holds that array."""

    def __init__(self) -> None:
        self._answers = BackgroundAnswer(_unsearched)

    def problem(self, image: Any, on_checked: Callable[[], None]) -> str:
        """Why ``image`` cannot be predicted for its values ('' when it can): also while
        its array is searched (``on_checked()`` is then called, on the GUI thread, once
        that search ends), so that Predict never starts on values not yet known."""
        data = layer_data(image)
        if not _searched(data):
            return ""
        found = self._answers.ask(Same(data), non_finite, data, on_ended=on_checked)
        if found is None:
            return f"Searching image '{image.name}' for NaN or infinite values…"
        return non_finite_reason(image.name) if found else ""

    @staticmethod
    def note(image: Any) -> str:
        """:data:`LAZY_NOTE` for an image whose values are not searched beforehand."""
        data = layer_data(image)
        floating = np.dtype(getattr(data, "dtype", np.float32)).kind in "fc"
        return LAZY_NOTE if floating and not _searched(data) else ""


def _unsearched(error: Exception) -> bool:
    # Not refused for it: the prediction still warns of such values after it ran.
    logger.warning("The image could not be searched for NaN or infinite values: %s", error)
    return False
