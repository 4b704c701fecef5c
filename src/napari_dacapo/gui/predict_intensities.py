"""How the predict panel scales the chosen image's intensities for the chosen run: whether
it offers the image's own range (its "scale to this image's intensities" box), and a note
and warning when the image would reach the network on another scale than the run's
training data (``predict.intensity_scale_mismatch``: a uint16 image on a run trained on
uint8 images, a 0-255 float image on it).

A run trained with a range is answered from its config alone; one trained without needs
its training data's metadata (its dtype) and, for a float image, a bounded sample of the
image: :class:`ScaleCheck` reads them in a worker and keeps the answer for that run and
image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .background_answer import BackgroundAnswer, Same
from .layer_arrays import layer_data

__all__ = ["OWN_RANGE_BOX", "ScaleCheck", "ScaleOffer", "scale_offer"]

#: The text of the predict panel's box that scales an image from its own range.
OWN_RANGE_BOX = "scale to this image's intensities"


@dataclass(frozen=True)
class ScaleOffer:
    """What the predict panel offers and says about the intensities of an image predicted
    with a run.

    Attributes
    ----------
    own_range
        Whether scaling the image from its own range (the box) fits the run.
    tooltip
        The box's tooltip: what off and on do, or why it is not offered.
    note
        For the panel's status while the box is off: the image's intensities reach the
        network on another scale than the training data's, and the fix ('' when not).
    warning
        The whole warning, shown when Predict is pressed with the box off ('' when none).
    """

    own_range: bool
    tooltip: str
    note: str = ""
    warning: str = ""


def ranged_offer(config: Any) -> ScaleOffer | None:
    """The offer for run ``config`` known from its config alone (no reading): trained with
    a range (the box replaces it), or its datasets scaled differently; None for a run
    trained without a range (see :func:`scale_offer`)."""
    from napari_dacapo.predict import training_intensity_range

    try:
        trained = training_intensity_range(config)
    except ValueError:  # datasets scaled differently: prediction says so
        return ScaleOffer(False, "The run's training datasets were scaled from different "
                                 "ranges: there is no one range to replace.")
    if trained is None:
        return None
    low, high = trained
    return ScaleOffer(True, f"Off: intensities {low:g}-{high:g} become 0-1, as in training. "
                            f"On: this image's 1st-99.8th percentiles do, for an image "
                            f"brighter or dimmer than the training data.")


def scale_offer(config: Any, data: Any = None, image: str = "") -> ScaleOffer:
    """What the panel offers and says for image ``image`` (its layer ``data``; None: no
    image chosen) predicted with run ``config`` (Qt-free; for a run trained without a
    range it opens the training data's metadata and may sample a float image, so it runs
    in a worker)."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        percentile_range,
    )
    from napari_dacapo.predict import (
        intensity_scale_mismatch,
        needs_values,
        own_range_fits,
        scale_text,
        training_raw_dtypes,
    )

    offer = ranged_offer(config)
    if offer is not None:
        return offer
    training = training_raw_dtypes(config)
    if not training:
        return ScaleOffer(False, "The run was trained without an intensity range, on data "
                                 "that cannot be opened to see how it was scaled.")
    trained = "; ".join(scale_text(t) for t in training)
    fits = own_range_fits(training)
    if fits:
        tooltip = (f"Off: the image's intensities reach the network as its dtype scales "
                   f"them, as the run's training data's did ({trained}). On: its "
                   f"1st-99.8th percentiles become 0-1, for an image brighter or dimmer "
                   f"than the training data, or stored in another dtype.")
    else:
        tooltip = (f"The run was trained without an intensity range, on {trained}: an "
                   f"image's own range scaled to 0-1 is not what its network learned.")
    if data is None:
        return ScaleOffer(fits, tooltip)
    dtype = np.dtype(data.dtype)
    values = percentile_range(data) if needs_values(dtype, training) else None
    target = training[0]
    fix = (f"Tick '{OWN_RANGE_BOX}' to scale it from its own intensity range, or convert it "
           f"to {target}." if fits else
           f"Convert it to {target}, or predict it with the CLI, giving the intensities that "
           f"become 0 and 1 (--intensities LOW,HIGH).")
    warning = intensity_scale_mismatch(dtype, training, config.name, values=values,
                                       what=f"The intensities of image '{image}'", fix=fix)
    if not warning:
        return ScaleOffer(fits, tooltip)
    short = f"tick '{OWN_RANGE_BOX}'" if fits else f"convert it to {target}"
    note = (f"Note: image '{image}' is {dtype}, whose intensities reach the network on "
            f"another scale than run '{config.name}' was trained on ({trained}): {short}.")
    return ScaleOffer(fits, tooltip, note, warning)


class ScaleCheck:
    """:func:`scale_offer` for the chosen run and image, found in a worker where it reads
    (a run trained without a range) and kept for that run config and image data."""

    def __init__(self) -> None:
        self._answers = BackgroundAnswer(_unread)

    _checking = property(lambda self: self._answers.worker)  # tests wait for it to end

    def offer(self, config: Any, image: Any, on_checked: Callable[[], None]
              ) -> ScaleOffer | None:
        """The offer for image layer ``image`` (or None) predicted with run ``config``;
        None while it is read: it is then found in a worker (one at a time, so a check of
        a run or image chosen before is followed by one of the current) and
        ``on_checked()`` is called (GUI thread) when it ends."""
        data, name = _data_and_name(image)
        return ranged_offer(config) or self._answers.ask(
            (Same(config), Same(data), name), scale_offer, config, data, name,
            on_ended=on_checked)

    def now(self, config: Any, image: Any) -> ScaleOffer:
        """The offer, found on the calling thread if it is not known yet (at Predict: the
        warning is said before any work, even when the worker has not answered)."""
        data, name = _data_and_name(image)
        key = (Same(config), Same(data), name)
        known = ranged_offer(config) or self._answers.kept(key)
        if known is None:
            try:
                known = scale_offer(config, data, name)
            except Exception as error:  # unreadable: said in the tooltip, not raised at Predict
                known = _unread(error)
            self._answers.keep(key, known)
        return known

    def close(self) -> None:
        """No more checks, nor callbacks from one that runs (the panel is going away)."""
        self._answers.close()


def _data_and_name(image: Any) -> tuple[Any, str]:
    """What an offer is found from and kept for: the image layer's data and name."""
    return (None, "") if image is None else (layer_data(image), image.name)


def _unread(error: Exception) -> ScaleOffer:
    """The offer when the run's training data or the image could not be read."""
    return ScaleOffer(False, f"How the run's training data was scaled could not be read "
                             f"({type(error).__name__}: {error}).")
