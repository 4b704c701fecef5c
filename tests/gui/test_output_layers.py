"""Output layers: the arrays of one snapshot (raw crop, target, prediction) are shown
together, so the three layers always lie on top of each other, however the snapshots and
the timer's ticks interleave."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_dacapo.gui import outputs as outputs_module
from napari_dacapo.gui.layers import layer_name
from napari_dacapo.gui.outputs import SNAPSHOT_OUTPUTS, OutputLayers

pytestmark = pytest.mark.gui


def snapshot(offset: tuple[int, int]) -> dict[str, SimpleNamespace]:
    """A SnapshotTaken's arrays: a 16² raw crop around an 8² target and prediction."""
    context = np.asarray(offset) - 4
    return {
        "raw": SimpleNamespace(data=np.zeros((1, 16, 16), np.float32),
                               offset=tuple(context), voxel_size=(1, 1)),
        **{key: SimpleNamespace(data=np.zeros((1, 8, 8), np.float32), offset=offset,
                                voxel_size=(1, 1)) for key in ("target", "prediction")},
    }


def places(viewer) -> dict[str, tuple[float, ...]]:
    """Where each shown snapshot layer shows its sample (the raw crop's centre region)."""
    found = {}
    for key, output in SNAPSHOT_OUTPUTS.items():
        name = layer_name("run", output)
        if name in viewer.layers and viewer.layers[name].visible:
            translate = np.asarray(viewer.layers[name].translate)
            found[key] = tuple(translate + (4 if key == "raw" else 0))
    return found


def test_a_snapshots_layers_are_shown_together(make_napari_viewer, monkeypatch):
    monkeypatch.setattr(outputs_module, "LAYER_INTERVAL_S", 0.0)
    viewer = make_napari_viewer()
    outputs = OutputLayers(viewer)
    outputs.begin("run", 1, 2, False, (0.0, 1.0))

    outputs.snapshot(snapshot((10, 20)))
    # Its layers are added one per tick (each costs the GUI thread about 0.1 s), hidden
    # until all are there: then they are shown at once.
    for _ in range(3):
        outputs.flush()  # one tick
        assert places(viewer) == {}
    assert len(viewer.layers) == 3
    outputs.flush()
    assert places(viewer) == dict.fromkeys(("raw", "target", "prediction"), (10.0, 20.0))

    # Newer snapshots while the layers wait for their next update: the latest is shown,
    # all of it, in one tick.
    outputs.snapshot(snapshot((30, 40)))
    outputs.put("live", np.zeros((1, 32, 32), np.float32), (0, 0), (1, 1), predicted=True)
    outputs.snapshot(snapshot((50, 60)))
    for _ in range(3):
        outputs.flush()
        assert len(set(places(viewer).values())) == 1, places(viewer)
    assert places(viewer)["prediction"] == (50.0, 60.0)
    assert all(layer.visible for layer in viewer.layers)


def test_a_validations_prediction_and_labels_are_updated_together(make_napari_viewer,
                                                                 monkeypatch):
    monkeypatch.setattr(outputs_module, "LAYER_INTERVAL_S", 0.0)
    viewer = make_napari_viewer()
    outputs = OutputLayers(viewer)
    outputs.begin("run", 1, 2, False, (0.0, 1.0))

    def validation(offset):
        outputs.validation({
            "prediction": (np.zeros((1, 8, 8), np.float32), offset, (1, 1)),
            "segmentation": (np.ones((8, 8), np.uint64), offset, (1, 1)),
        })

    validation((2, 2))
    outputs.flush(None)  # all at once
    names = [layer.name for layer in viewer.layers]
    assert names == [layer_name("run", "validation prediction"),
                     layer_name("run", "validation labels")]  # labels over the prediction
    validation((6, 6))
    outputs.flush()  # one tick
    assert [tuple(layer.translate) for layer in viewer.layers] == [(6.0, 6.0)] * 2


def test_a_closed_panels_outputs_show_nothing_more(make_napari_viewer):
    viewer = make_napari_viewer()
    outputs = OutputLayers(viewer)
    outputs.begin("run", 1, 2, False, (0.0, 1.0))
    outputs.snapshot(snapshot((10, 20)))
    outputs.flush()  # its first layer, hidden
    outputs.close()
    outputs.flush(None)
    assert len(viewer.layers) == 1 and viewer.layers[0].visible  # none left hidden


@pytest.mark.parametrize("picked", [(), ("a",), ("a", "b")], ids=["none", "one", "two"])
def test_an_added_output_layer_leaves_the_selection_as_it_was(make_napari_viewer, picked):
    from napari_dacapo.gui.layers import show

    viewer = make_napari_viewer()
    for name in ("a", "b"):
        viewer.add_image(np.zeros((4, 4)), name=name)
    viewer.layers.selection.clear()
    viewer.layers.selection.update({viewer.layers[name] for name in picked})
    changes: list[object] = []
    viewer.layers.selection.events.connect(changes.append)

    show(viewer, "run · live", np.zeros((4, 4)), select=False)

    assert viewer.layers.selection == {viewer.layers[name] for name in picked}
    assert viewer.layers.selection.active is (viewer.layers["a"] if picked == ("a",) else None)
    assert changes == []  # nothing followed the new layer's brief selection


def test_output_layers_take_the_units_of_the_data_beside_them(make_napari_viewer, qtbot):
    """An image read from a zarr with its voxel size is in nanometres: an output layer in
    pixels beside it made napari drop the scale bar's units, with a warning."""
    from napari.utils.notifications import notification_manager

    from napari_dacapo.gui.layers import show, show_channels

    notes: list[str] = []
    notification_manager.notification_ready.connect(lambda n: notes.append(str(n.message)))
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((8, 8)), scale=(4, 4), units=("nm", "nm"))
    channels = show_channels(viewer, "run · prediction", np.zeros((2, 8, 8), np.float32),
                             "image", (4, 4), (0, 0))
    labels = show(viewer, "run · labels", np.zeros((8, 8), np.uint8), "labels", scale=(4, 4))
    qtbot.wait(100)  # the canvas checks the layers' units at its next draw

    assert [str(u) for u in channels.units] == ["pixel", "nanometer", "nanometer"]
    assert [str(u) for u in labels.units] == ["nanometer", "nanometer"]
    assert [str(u) for u in viewer.layers.extent.units][-2:] == ["nanometer", "nanometer"]
    assert not [n for n in notes if "units" in n]


def test_an_rgb_output_layer_takes_units_for_its_spatial_axes(make_napari_viewer):
    """An RGB layer's colours are no axis: counted as one, its units did not fit it and
    adding it raised (affinities shown as RGB beside an image in nanometres)."""
    from napari_dacapo.gui.layers import show

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8)), scale=(4, 4), units=("nm", "nm"))
    layer = show(viewer, "run · affinities", np.zeros((8, 8, 3), np.float32), rgb=True,
                 scale=(4, 4))
    assert layer.rgb and [str(u) for u in layer.units] == ["nanometer", "nanometer"]


def test_output_layers_beside_data_in_pixels_stay_in_pixels(make_napari_viewer):
    from napari_dacapo.gui.layers import show

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8)))
    layer = show(viewer, "run · prediction", np.zeros((8, 8), np.float32))
    assert [str(u) for u in layer.units] == ["pixel", "pixel"]


def test_the_raw_crop_of_an_rgb_image_is_shown_as_rgb(make_napari_viewer):
    """An RGB training image's raw crop came as (3, Y, X) and was shown as three slices:
    the 2D viewer turned 3D, with a slider through the colours."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 40, 3), np.uint8), rgb=True)
    outputs = OutputLayers(viewer)
    outputs.begin("run", 1, 2, False, (0.0, 1.0), raw_rgb=True)
    arrays = snapshot((10, 20))
    colours = np.stack([np.full((16, 16), v, np.float32) for v in (0.25, 0.5, 1.0)])
    arrays["raw"].data = colours  # (channels, y, x), as the network reads them
    outputs.snapshot(arrays)
    outputs.flush(None)
    raw = viewer.layers[layer_name("run", "snapshot raw")]
    assert raw.rgb and raw.data.shape == (16, 16, 3)
    np.testing.assert_allclose(raw.data[0, 0], (0.25, 0.5, 1.0))
    assert viewer.dims.ndim == 2
    assert places(viewer) == dict.fromkeys(("raw", "target", "prediction"), (10.0, 20.0))
    # An image that is not RGB keeps its channels as an axis.
    outputs.begin("run", 1, 2, False, (0.0, 1.0))
    outputs.snapshot(arrays)
    outputs.flush(None)
    raw = viewer.layers[layer_name("run", "snapshot raw")]
    assert not raw.rgb and raw.data.shape == (3, 16, 16)
