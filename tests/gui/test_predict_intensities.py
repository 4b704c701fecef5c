"""What the predict panel offers and says of an image's intensities against the run's
training data: the image's own range where it fits the run (trained with a range, or on
uint8 data without one), and a note and warning where the image would reach the network
on another scale (a uint16 image, or a 0-255 float one, on a run trained on uint8)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import store_random_weights, tiny_config

from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.experiments import IntensitiesArrayConfig
from napari_dacapo.gui.predict_intensities import (
    OWN_RANGE_BOX,
    ScaleCheck,
    ranged_offer,
    scale_offer,
)

pytestmark = pytest.mark.gui

WAIT_MS = 20_000


def blobs() -> np.ndarray:
    return synthetic_blobs((48, 72), seed=5)[0]


def stored_as(store, name: str, dtype=None, scale: int = 1, low=None, high=None):
    """Store the tiny 2D run config ``name``, its raw data as ``dtype`` (times ``scale``),
    or scaled from ``[low, high]``; returns the stored config."""
    config = tiny_config(2, name=name)
    split = config.datasplit_config

    def changed(dataset):
        raw = dataset.raw_config
        if dtype is not None:
            raw = raw.replace(data=raw.data.astype(dtype) * scale)
        if low is not None:
            raw = IntensitiesArrayConfig(name=f"{raw.name}_scaled", source_array_config=raw,
                                         min=low, max=high)
        return dataset.replace(raw_config=raw)

    config = config.replace(datasplit_config=split.replace(
        train_configs=[changed(d) for d in split.train_configs],
        validate_configs=[changed(d) for d in split.validate_configs]))
    store_random_weights(store, config)
    return store.retrieve_run_config(name)


def test_a_run_trained_on_uint8_offers_the_own_range_and_names_another_scale(trained_store):
    config = trained_store.retrieve_run_config("tiny_2d")  # uint8, without a range
    raw = blobs()
    same = scale_offer(config, raw, "blobs")
    assert same.own_range and not same.note and not same.warning
    assert "(uint8, 0–255 scaled to 0–1)" in same.tooltip
    assert scale_offer(config).own_range  # before an image is picked

    wide = scale_offer(config, raw.astype(np.uint16) * 10 + 1000, "wide")
    assert wide.own_range
    assert wide.note == (
        "Note: image 'wide' is uint16, whose intensities reach the network on another scale "
        "than run 'tiny_2d' was trained on (uint8, 0–255 scaled to 0–1): tick "
        f"'{OWN_RANGE_BOX}'.")
    assert wide.warning.startswith(
        "The intensities of image 'wide' (uint16, divided by 65535) reach the network on "
        "another scale than those of the data run 'tiny_2d' was trained on (uint8, 0–255 "
        "scaled to 0–1)")
    assert wide.warning.endswith(f"Tick '{OWN_RANGE_BOX}' to scale it from its own intensity "
                                 f"range, or convert it to uint8.")

    bright = scale_offer(config, raw.astype(np.float32), "floats")  # 0-255, as they are
    assert "lie far outside 0 to 1" in bright.warning and bright.note
    assert not scale_offer(config, raw.astype(np.float32) / 255, "floats").warning


def test_runs_trained_with_a_range_or_on_wider_integers(trained_store):
    ranged = stored_as(trained_store, "ranged", low=0, high=200)
    offer = ranged_offer(ranged)  # from the config alone, no reading
    assert offer is not None and offer.own_range and "0-200 become 0-1" in offer.tooltip
    # A range applies to any dtype, in the data's own units: no dtype to compare.
    assert scale_offer(ranged, blobs().astype(np.uint16), "wide") == offer

    wide = stored_as(trained_store, "wide", dtype=np.uint16, scale=257)
    assert ranged_offer(wide) is None
    offer = scale_offer(wide, blobs(), "blobs")
    assert not offer.own_range  # uint16 data may have spanned 0.005-0.06: not 0-1
    assert "trained without an intensity range, on uint16, divided by 65535" in offer.tooltip
    assert offer.note.endswith("(uint16, divided by 65535): convert it to uint16.")
    assert offer.warning.endswith("Convert it to uint16, or predict it with the CLI, giving "
                                  "the intensities that become 0 and 1 (--intensities "
                                  "LOW,HIGH).")


def test_the_check_reads_in_a_worker_and_keeps_the_answer(trained_store, qtbot):
    config = trained_store.retrieve_run_config("tiny_2d")
    image = SimpleNamespace(name="wide", data=blobs().astype(np.uint16) * 10 + 1000)
    check, checked = ScaleCheck(), []
    assert check.offer(config, image, lambda: checked.append(True)) is None
    qtbot.waitUntil(lambda: bool(checked), timeout=WAIT_MS)
    offer = check.offer(config, image, checked.clear)
    assert offer == scale_offer(config, image.data, "wide") and offer.warning
    assert check._checking is None and checked  # kept: no second worker
    # New data is checked again; at Predict, at once on the calling thread.
    image.data = blobs()
    assert check.now(config, image) == scale_offer(config, image.data, "wide")
    assert not check.now(config, image).warning
    assert check.offer(config, image, checked.clear) == check.now(config, image)


def test_the_predict_panel_offers_the_own_range_and_warns_of_another_scale(
    predict_panel, qtbot, monkeypatch, trained_store
):
    """A uint16 image on the uint8-trained tiny_2d: the box is offered, the status notes
    the other scale, Predict warns of it before any work (once: the worker does not warn
    again); ticked, the image is scaled from its own range, without a warning."""
    from napari_dacapo.gui import predict_widget as predict_widget_module
    from napari_dacapo.gui.layers import layer_name
    from napari_dacapo.predict import predict

    viewer, widget = predict_panel
    wide = blobs().astype(np.uint16) * 10 + 1000
    viewer.add_image(wide, name="wide")
    widget.checkpoint_choice.value = "latest"
    widget.labels_check.value = False
    qtbot.waitUntil(lambda: widget.range_check.enabled, timeout=WAIT_MS)
    assert "Note: image 'wide' is uint16" in widget.status.value
    assert "(uint8, 0–255 scaled to 0–1)" in widget.range_check.tooltip
    said: list[str] = []
    monkeypatch.setattr(predict_widget_module, "show_warning", said.append)
    widget.predict_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert len(said) == 1 and said[0].startswith("The intensities of image 'wide' (uint16, "
                                                 "divided by 65535) reach the network")

    said.clear()
    widget.range_check.value = True
    assert "Note: image 'wide'" not in widget.status.value
    widget.predict_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert not said
    shown = np.asarray(viewer.layers[layer_name("tiny_2d", "prediction wide")].data)
    expected = predict("tiny_2d", "latest", wide, store=trained_store, rescale="image")
    np.testing.assert_allclose(shown, expected[0], atol=1e-6)
