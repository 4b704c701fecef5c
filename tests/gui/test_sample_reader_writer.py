"""Sample data, reader and writer through napari: samples open as image + labels, layers
saved to zarr reopen where they were, and a run folder opens as its output layers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr
from napari.layers import Image, Labels

from napari_dacapo._reader import classify, get_reader, read_zarr
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
    ZarrArrayConfig,
)
from napari_dacapo.gui.layers import layer_name
from napari_dacapo.store.file_store import FileStore

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("key, shape", [("blobs_2d", (256, 256)), ("blobs_3d", (96,) * 3)])
def test_samples_open_as_image_and_labels(make_napari_viewer, key, shape):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-dacapo", key)
    image, labels = viewer.layers
    assert isinstance(image, Image) and isinstance(labels, Labels)
    assert image.data.shape == labels.data.shape == shape
    assert image.data.dtype == np.uint8 and labels.data.max() > 1  # several blobs
    assert labels.name == f"{image.name} labels"


def test_writer_reader_round_trip_keeps_geometry(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    raw = np.random.default_rng(0).integers(0, 255, (3, 20, 30), dtype=np.uint8)
    labels = np.zeros((3, 20, 30), np.uint32)
    labels[1, 5:9, 10:20] = 7
    geometry = {"scale": (2.0, 0.5, 0.5), "translate": (4.0, 1.5, -3.0)}
    viewer.add_image(raw, name="cells", **geometry)
    viewer.add_labels(labels, name="cells labels", **geometry)
    path = str(tmp_path / "annotations.zarr")

    viewer.layers.save(path, plugin="napari-dacapo")

    # On disk: integer world units DaCapo (and the training data path) understand.
    array = ZarrArrayConfig(name="l", file_name=path, dataset="cells_labels").array()
    assert tuple(array.voxel_size) == (20, 5, 5) and tuple(array.offset) == (40, 15, -30)
    np.testing.assert_array_equal(array.data, labels)

    reopened = make_napari_viewer()
    reopened.open(path, plugin="napari-dacapo")
    assert [type(layer) for layer in reopened.layers] == [Image, Labels]
    for layer, original in zip(reopened.layers, viewer.layers):
        assert layer.name == original.name
        np.testing.assert_allclose(layer.scale, original.scale)
        np.testing.assert_allclose(layer.translate, original.translate)
        np.testing.assert_array_equal(np.asarray(layer.data), original.data)


def test_writer_refuses_other_layer_types(tmp_path):
    from napari_dacapo._writer import write_layers

    with pytest.raises(ValueError, match="points layer"):
        write_layers(str(tmp_path / "x.zarr"), [(np.zeros((1, 2)), {"name": "p"}, "points")])


def test_zarr_paths_and_ome_zarr(tmp_path):
    container = tmp_path / "volume.zarr"
    root = zarr.open_group(str(container), mode="w", zarr_format=2)
    levels = [np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), np.zeros((32, 32), "u2")]
    for i, level in enumerate(levels):
        root.create_array(f"raw/{i}", data=level)
    root["raw"].attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "y", "type": "space", "unit": "nanometer"},
                 {"name": "x", "type": "space", "unit": "nanometer"}],
        "datasets": [
            {"path": str(i), "coordinateTransformations": [
                {"type": "scale", "scale": [4.0 * 2**i] * 2},
                {"type": "translation", "translation": [8.0, 12.0]}]}
            for i in range(2)
        ],
    }]
    root.create_array("gt", data=np.ones((16, 16), np.uint8))

    assert classify(container) == ("zarr", (container, ""))
    assert classify(container / "raw" / "0" / ".zarray") == ("zarr", (container, "raw/0"))
    assert classify(tmp_path) is None and get_reader(str(tmp_path)) is None

    layers = {meta["name"]: (data, meta, kind) for data, meta, kind in read_zarr(container)}
    assert set(layers) == {"raw", "gt"}
    data, meta, kind = layers["raw"]
    assert kind == "image" and meta["multiscale"] and len(data) == 2
    assert meta["scale"] == [4, 4] and meta["translate"] == [8, 12]
    assert layers["gt"][2] == "labels"  # 8-bit, but named like ground truth
    only, = read_zarr(container, "raw/1")
    assert only[1]["name"] == "1" and only[1]["scale"] == [8, 8]


def test_run_folder_opens_its_outputs(make_napari_viewer, trained_runs):
    viewer = make_napari_viewer()
    viewer.open(str(trained_runs / "tiny_2d"), plugin="napari-dacapo")
    names = {layer.name: layer for layer in viewer.layers}
    expected = {f"snapshot {a}" for a in ("raw", "gt", "mask", "target", "weight",
                                          "prediction")} | {"validation prediction",
                                                            "validation labels"}
    assert set(names) == {layer_name("tiny_2d", output) for output in expected}
    snapshot_raw = names[layer_name("tiny_2d", "snapshot raw")]
    snapshot_gt = names[layer_name("tiny_2d", "snapshot gt")]
    assert snapshot_raw.data.shape == (32, 32) and snapshot_raw.metadata["iteration"] == 4
    assert isinstance(snapshot_gt, Labels)
    # Outputs sit inside the raw crop the network saw (context on every side).
    assert np.all(snapshot_gt.translate - snapshot_raw.translate == 8)
    assert isinstance(names[layer_name("tiny_2d", "validation labels")], Labels)


def test_a_run_folders_container_opened_on_its_own_opens_as_the_run_shows_it(
    trained_runs, tmp_path
):
    from napari_dacapo._reader import read

    run_dir = tmp_path / "tiny_2d"
    shutil.copytree(trained_runs / "tiny_2d", run_dir)
    (run_dir / "display.json").write_text('{"world_factor": 10}')  # trained at scale 0.1
    from_run = {meta["name"]: meta for _, meta, _ in read(str(run_dir))}
    snapshots = read(str(run_dir / "snapshots.zarr"))  # not every iteration's arrays
    assert {meta["name"] for _, meta, _ in snapshots} == {
        name for name in from_run if "snapshot" in name}
    for _, meta, _ in snapshots:
        assert meta["scale"] == from_run[meta["name"]]["scale"]
        assert meta["metadata"]["iteration"] == 4
    (_, raw, _), = read(str(run_dir / "data" / "blobs_2d_train_raw.zarr"))  # the run's data
    raw_config = FileStore(tmp_path).retrieve_run_config("tiny_2d").datasplit_config
    voxel_size = raw_config.train_configs[0].raw_config.array().voxel_size
    assert list(raw["scale"]) == [v / 10 for v in voxel_size]


def test_a_run_folder_opens_in_the_units_its_layers_were_trained_in(
    make_napari_viewer, trained_runs, tmp_path
):
    """display.json records the units of the layers a run was trained on: its outputs
    opened in pixels beside them (napari then drops the units and warns that they are
    inconsistent), also a container of the run opened on its own and the run's data."""
    import json

    import pint

    from napari_dacapo._reader import read

    run_dir = tmp_path / "tiny_2d"
    shutil.copytree(trained_runs / "tiny_2d", run_dir)
    (run_dir / "display.json").write_text(json.dumps(
        {"world_factor": 1, "units": ["micrometer", "micrometer"]}))
    um = ("micrometer", "micrometer")
    layers = read(str(run_dir))
    assert layers
    for _, meta, _ in layers:
        channels = len(meta["scale"]) - 2  # a channel axis kept as an axis has no unit
        assert meta["units"] == ("pixel",) * channels + um, meta["name"]
    for path in (run_dir / "snapshots.zarr", run_dir / "data" / "blobs_2d_train_raw.zarr"):
        assert all(meta["units"][-2:] == um for _, meta, _ in read(str(path)))
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8)), name="trained on", units=um)
    viewer.open(str(run_dir), plugin="napari-dacapo")
    micrometer = pint.get_application_registry().micrometer
    assert tuple(viewer.layers.extent.units)[-2:] == (micrometer, micrometer)  # consistent


def test_an_rgb_layer_comes_back_rgb(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    colour = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    viewer.add_image(colour, name="colour", rgb=True, scale=(0.5, 0.5))
    path = str(tmp_path / "colour.zarr")
    viewer.layers.save(path, plugin="napari-dacapo")
    # On disk channels first (DaCapo's layout), as training reads it.
    assert ZarrArrayConfig(name="c", file_name=path, dataset="colour").array().shape == (3, 20, 30)
    reopened = make_napari_viewer()
    reopened.open(path, plugin="napari-dacapo")
    (layer,) = reopened.layers
    assert layer.rgb and layer.data.shape == (20, 30, 3)
    np.testing.assert_array_equal(np.asarray(layer.data), colour)
    np.testing.assert_allclose(layer.scale, (0.5, 0.5))


def test_images_are_saved_with_the_channels_the_training_panel_reads(
    make_napari_viewer, tmp_path, monkeypatch
):
    """A (2, Y, X) image is two channels of a 2D image, as the training panel reads it
    (``leading_channels``), so the saved array trains and predicts headless as the layer
    did; a (5, Y, X) image is read so too, and said; a volume with a z spacing stays 3D.
    All reopen as they were."""
    from napari_dacapo.gui.layer_arrays import leading_channels

    said: list[str] = []
    monkeypatch.setattr("napari.utils.notifications.show_info", said.append)
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    layers = [
        viewer.add_image(rng.integers(0, 4000, (2, 28, 58), dtype=np.uint16), name="cells2",
                         scale=(1, 0.5, 0.5), translate=(0, 1.5, 2)),
        viewer.add_image(rng.integers(0, 255, (5, 16, 16), dtype=np.uint8), name="stack"),
        viewer.add_image(rng.integers(0, 255, (20, 64, 64), dtype=np.uint8), name="volume",
                         scale=(4, 1, 1)),
    ]
    path = str(tmp_path / "saved.zarr")
    viewer.layers.save(path, plugin="napari-dacapo")

    expected = {"cells2": (2, 2), "stack": (2, 5), "volume": (3, None)}  # dims, channels
    for layer in layers:
        array = ZarrArrayConfig(name="a", file_name=path, dataset=layer.name).array()
        assert (array.dims, array.num_channels) == expected[layer.name]
        assert bool(array.channel_dims) == leading_channels(
            layer.data.shape, layer.scale, layer.translate)  # the panel's reading
    (note,) = said
    assert "'cells2' (2, 28, 58) as 2 channels (first axis, named 'c^') of a 2D" in note
    assert "'stack' (5, 16, 16) as 5 channels" in note and "If that axis is z" in note
    assert "volume" not in note

    reopened = make_napari_viewer()
    reopened.open(path, plugin="napari-dacapo")
    assert [layer.name for layer in reopened.layers] == [layer.name for layer in layers]
    for layer, original in zip(reopened.layers, layers):
        assert isinstance(layer, Image) and not layer.rgb
        np.testing.assert_allclose(layer.scale, original.scale)
        np.testing.assert_allclose(layer.translate, original.translate)
        np.testing.assert_array_equal(np.asarray(layer.data), original.data)


def test_a_volume_the_reader_opened_is_saved_as_a_volume(make_napari_viewer, tmp_path):
    """The reader records an array's axis names with the layer, so a 5-slice volume at
    unit scale (which alone would read as 5 channels) is saved as a volume again."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    volume = np.random.default_rng(0).integers(0, 255, (5, 16, 16), dtype=np.uint8)
    write_zarr_array(tmp_path / "in.zarr", "volume", volume, voxel_size=(1, 1, 1))
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "in.zarr"), plugin="napari-dacapo")
    viewer.layers.save(str(tmp_path / "out.zarr"), plugin="napari-dacapo")
    array = ZarrArrayConfig(name="a", file_name=tmp_path / "out.zarr", dataset="in").array()
    assert array.axis_names == ["z", "y", "x"] and array.dims == 3
    assert layer.metadata["axis_names"] == ["z", "y", "x"]


def test_an_ome_zarr_in_micrometres_lines_up_with_micrometre_layers(make_napari_viewer,
                                                                     tmp_path):
    """0.5 µm voxels open at the whole nanometres training uses (scale 500), with units
    'nanometer' so napari converts: the layer covers the same region as the same data in
    micrometres (as another OME-Zarr reader opens it), and saves and reopens alike."""
    import pint

    container = tmp_path / "cells.zarr"
    root = zarr.open_group(str(container), mode="w", zarr_format=2)
    data = np.random.default_rng(0).integers(0, 255, (20, 30), dtype=np.uint8)
    root.create_array("raw/0", data=data)
    root["raw"].attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [0.5, 0.5]},
            {"type": "translation", "translation": [1.5, -2.0]}]}],
    }]
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(container), plugin="napari-dacapo")
    nm = pint.get_application_registry().nanometer
    assert tuple(layer.units) == (nm, nm)
    np.testing.assert_allclose(layer.scale, [500, 500])  # the voxel size training sees
    np.testing.assert_allclose(layer.translate, [1500, -2000])
    alone = viewer.layers.extent.world.copy()
    viewer.add_image(data, name="other reader", scale=(0.5, 0.5), translate=(1.5, -2.0),
                     units=("micrometer", "micrometer"))
    assert tuple(viewer.layers.extent.units) == (nm, nm)
    np.testing.assert_allclose(viewer.layers.extent.world, alone)  # one region, not two

    viewer.layers.remove("other reader")
    viewer.layers.save(str(tmp_path / "saved.zarr"), plugin="napari-dacapo")
    array = ZarrArrayConfig(name="a", file_name=tmp_path / "saved.zarr", dataset="cells").array()
    assert tuple(array.voxel_size) == (500, 500) and tuple(array.offset) == (1500, -2000)
    reopened = make_napari_viewer()
    (again,) = reopened.open(str(tmp_path / "saved.zarr"), plugin="napari-dacapo")
    assert tuple(again.units) == (nm, nm)
    np.testing.assert_allclose(again.scale, layer.scale)
    np.testing.assert_allclose(again.translate, layer.translate)


def test_units_napari_cannot_read_are_left_unknown(tmp_path):
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    write_zarr_array(tmp_path / "a.zarr", "raw", np.zeros((4, 4), np.uint8), voxel_size=(2, 2),
                     units=["voxel", "voxel"])
    write_zarr_array(tmp_path / "a.zarr", "channels", np.zeros((2, 4, 4), np.uint8),
                     voxel_size=(2, 2), axis_names=["c^", "y", "x"], units=["nm", "nm"])
    layers = {meta["name"]: meta for _, meta, _ in read_zarr(tmp_path / "a.zarr")}
    assert "units" not in layers["raw"]  # napari would refuse the layer
    assert layers["channels"]["units"] == ("pixel", "nm", "nm")  # channels: no unit
