"""Arrays (zarr v2/v3, DaCapo and OME-Zarr layouts, derived arrays), datasets, datasplits,
the input checks run before training, and their configs' YAML round trips."""

from __future__ import annotations

import logging
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr
from funlib.geometry import Coordinate, Roi

from napari_dacapo.experiments.configs import (
    ConfigError,
    _yaml_loader,
    from_dict,
    load_config,
    save_config,
    to_dict,
)
from napari_dacapo.experiments.datasplits import (
    DummyDataSplitConfig,
    TrainValidateDataSplit,
    TrainValidateDataSplitConfig,
)
from napari_dacapo.experiments.datasplits.datasets import (
    DataError,
    RawGTDataset,
    RawGTDatasetConfig,
    check_training_dataset,
    check_validation_dataset,
    checks,
    overlap_roi,
)
from napari_dacapo.experiments.datasplits.datasets.arrays import (
    BinarizeArrayConfig,
    ConcatArrayConfig,
    ConstantArrayConfig,
    CropArrayConfig,
    IntensitiesArrayConfig,
    NumpyArrayConfig,
    ZarrArray,
    ZarrArrayConfig,
    prepare_zarr_array,
    write_zarr_array,
)
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import reopened_for_reading

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dacapo"


def numpy_config(name, data, voxel_size=None, offset=None, axis_names=None):
    return NumpyArrayConfig(
        name=name, data=np.asarray(data), voxel_size=voxel_size, offset=offset,
        axis_names=axis_names,
    )


# -- zarr arrays ----------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_written_zarr_reads_back_with_its_geometry(tmp_path, zarr_format):
    data = np.arange(2 * 6 * 8 * 10, dtype=np.uint16).reshape(2, 6, 8, 10)
    config = write_zarr_array(
        tmp_path / "c.zarr", "volumes/raw", data, voxel_size=(8, 4, 2), offset=(16, 8, 4),
        axis_names=["c^", "z", "y", "x"], units=["nm"] * 3, chunks=(2, 3, 4, 5),
        zarr_format=zarr_format,
    )
    array = config.array()
    assert isinstance(array, ZarrArray)
    assert array.axis_names == ["c^", "z", "y", "x"]
    assert (array.voxel_size, array.offset) == (Coordinate(8, 4, 2), Coordinate(16, 8, 4))
    assert array.units == ["nm"] * 3 and array.num_channels == 2
    assert array.roi == Roi((16, 8, 4), (48, 32, 20))
    assert array.chunk_shape == Coordinate(3, 4, 5) and array.dtype == np.uint16
    np.testing.assert_array_equal(array[Roi((24, 12, 6), (16, 8, 4))], data[:, 1:3, 1:3, 1:3])
    # Half the ROI lies before the array: that half is the fill value.
    padded = array.read(Roi((0, 8, 4), (32, 8, 4)), fill=7)
    assert padded.shape == (2, 4, 2, 2)
    assert (padded[:, :2] == 7).all()
    np.testing.assert_array_equal(padded[:, 2:], data[:, :2, :2, :2])
    # Daisy workers get arrays pickled: they reopen from the config.
    reopened = pickle.loads(pickle.dumps(IntensitiesArrayConfig(
        name="i", source_array_config=config, min=0, max=1).array()))
    assert reopened.roi == array.roi and reopened.source.config == config
    metadata = ".zattrs" if zarr_format == 2 else "zarr.json"
    assert (tmp_path / "c.zarr" / "volumes" / "raw" / metadata).exists()


def test_a_relative_zarr_path_is_kept_absolute_so_a_stored_run_opens_it_anywhere(
    tmp_path, monkeypatch
):
    write_zarr_array(tmp_path / "data" / "c.zarr", "raw", np.zeros((4, 4), np.uint8))
    monkeypatch.chdir(tmp_path / "data")
    config = from_dict(
        {"__type__": "ZarrArrayConfig", "name": "r", "file_name": "../data/./c.zarr",
         "dataset": "raw"}
    )
    assert config.file_name == tmp_path / "data" / "c.zarr"
    monkeypatch.chdir(tmp_path.parent)  # e.g. a run continued from another folder
    assert from_dict(to_dict(config)).array().shape == (4, 4)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_read_only_zarr_reads_through_the_fast_pipeline_and_gives_the_same_data(
    tmp_path, zarr_format
):
    pytest.importorskip("zarrs")
    data = np.arange(1, 37 * 53 + 1, dtype=np.uint16).reshape(37, 53)
    data[:8, :16] = 0  # a chunk of fill values: zarr does not store it
    config = write_zarr_array(tmp_path / "c.zarr", "raw", data, chunks=(8, 16),
                              zarr_format=zarr_format)
    first_chunk = "0.0" if zarr_format == 2 else "c/0/0"
    assert not (tmp_path / "c.zarr" / "raw" / first_chunk).exists()
    written = zarr.open_array(str(tmp_path / "c.zarr" / "raw"), mode="r+")
    read_only = config.array()
    writable = ZarrArrayConfig(name="w", file_name=tmp_path / "c.zarr", dataset="raw",
                               mode="r+").array()
    pipeline = lambda z: type(z.async_array.codec_pipeline).__name__
    assert pipeline(read_only._data) == "ZarrsCodecPipeline"
    assert pipeline(writable._data) == pipeline(written) == "BatchedCodecPipeline"
    assert zarr.config.get("codec_pipeline.path") != "zarrs.ZarrsCodecPipeline"
    roi = Roi((3, 5), (30, 40))
    np.testing.assert_array_equal(read_only[roi], writable[roi])
    np.testing.assert_array_equal(read_only[roi], data[3:33, 5:45])
    np.testing.assert_array_equal(read_only.data, data)  # the unstored chunk reads as 0
    # A zarr array given by a user is opened again, read-only, the same way.
    again = reopened_for_reading(written)
    assert pipeline(again) == "ZarrsCodecPipeline"
    assert again.read_only and not written.read_only
    np.testing.assert_array_equal(again[...], data)
    assert reopened_for_reading(data) is data


def test_without_zarrs_read_only_zarr_reads_through_zarrs_own_pipeline(tmp_path, monkeypatch):
    data = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    config = write_zarr_array(tmp_path / "c.zarr", "raw", data, chunks=(8, 16))
    monkeypatch.setitem(sys.modules, "zarrs", None)  # as if not installed
    array = config.array()
    assert type(array._data.async_array.codec_pipeline).__name__ == "BatchedCodecPipeline"
    np.testing.assert_array_equal(array.data, data)


def test_dacapo_written_fixture_reads_as_it_is():
    """data.zarr was written by DaCapo 0.3.5 / funlib.persistence (see make_fixtures.py)."""
    raw = ZarrArrayConfig(name="r", file_name=FIXTURES / "data.zarr", dataset="3d/raw").array()
    labels = ZarrArrayConfig(
        name="l", file_name=FIXTURES / "data.zarr", dataset="3d/labels"
    ).array()
    assert raw.axis_names == ["z", "y", "x"] and raw.units == ["nm"] * 3
    assert raw.roi == Roi((80, 40, 40), (256, 128, 128)) == labels.roi
    assert raw.dtype == np.uint8 and labels.dtype == np.uint32
    assert labels.data.max() > 0


def test_dacapo_style_channel_array_reads_as_it_is(tmp_path):
    # Written the way funlib.persistence.prepare_ds lays out a DaCapo prediction.
    group = zarr.open_group(tmp_path / "pred.zarr", mode="w", zarr_format=2)
    stored = group.create_array("validation/0", shape=(3, 4, 5), dtype="float32", chunks=(3, 4, 5))
    stored[:] = np.linspace(0, 1, 60, dtype=np.float32).reshape(3, 4, 5)
    stored.attrs.update({"voxel_size": [2, 2], "offset": [4, 6], "axis_names": ["c^", "y", "x"],
                         "units": ["nm", "nm"]})
    array = ZarrArrayConfig(name="p", file_name=tmp_path / "pred.zarr",
                            dataset="/validation/0/").array()
    assert array.axis_names == ["c^", "y", "x"] and array.num_channels == 3
    assert array.roi == Roi((4, 6), (8, 10))
    np.testing.assert_array_equal(array.data, stored[:])


def _write_ome(tmp_path, zarr_format, transforms, global_transforms=None):
    group = zarr.open_group(tmp_path / "ome.zarr", mode="w", zarr_format=zarr_format)
    image = group.create_group("image")
    for level, shape in (("s0", (2, 4, 8, 8)), ("s1", (2, 2, 4, 4))):
        image.create_array(level, shape=shape, dtype="uint8", chunks=shape)[:] = 1
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"
    ]
    multiscale = {
        "axes": axes,
        "datasets": [{"path": p, "coordinateTransformations": t} for p, t in transforms],
    }
    if global_transforms:
        multiscale["coordinateTransformations"] = global_transforms
    if zarr_format == 2:
        image.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        image.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_geometry_converts_micrometers_to_nanometers(tmp_path, zarr_format):
    transforms = [
        ("s0", [{"type": "scale", "scale": [1, 0.5, 0.25, 0.25]},
                {"type": "translation", "translation": [0, 1.0, 0.5, 0.5]}]),
        ("s1", [{"type": "scale", "scale": [1, 1.0, 0.5, 0.5]},
                {"type": "translation", "translation": [0, 1.0, 0.5, 0.5]}]),
    ]
    _write_ome(tmp_path, zarr_format, transforms)
    # The multiscale group opens its finest level.
    s0 = ZarrArrayConfig(name="o", file_name=tmp_path / "ome.zarr", dataset="image").array()
    assert s0.axis_names == ["c^", "z", "y", "x"] and s0.shape == (2, 4, 8, 8)
    assert s0.voxel_size == Coordinate(500, 250, 250)
    assert s0.offset == Coordinate(1000, 500, 500)
    assert s0.units == ["nanometer"] * 3
    s1 = ZarrArrayConfig(name="o", file_name=tmp_path / "ome.zarr", dataset="image/s1").array()
    assert s1.voxel_size == Coordinate(1000, 500, 500) and s1.roi == s0.roi


def test_ome_zarr_multiscale_wide_scale_applies_after_the_level(tmp_path):
    _write_ome(
        tmp_path, 2,
        [("s0", [{"type": "scale", "scale": [1, 2, 1, 1]},
                 {"type": "translation", "translation": [0, 4, 0, 0]}])],
        global_transforms=[{"type": "scale", "scale": [1, 3, 3, 3]}],
    )
    array = ZarrArrayConfig(name="o", file_name=tmp_path / "ome.zarr", dataset="image").array()
    assert array.voxel_size == Coordinate(6, 3, 3) and array.offset == Coordinate(12, 0, 0)
    assert array.units == ["micrometer"] * 3


def test_zarr_without_geometry_defaults_and_logs_a_note(tmp_path, caplog):
    zarr.open_array(tmp_path / "bare.zarr", mode="w", shape=(4, 6), dtype="uint8",
                    zarr_format=2)
    config = ZarrArrayConfig(name="b", file_name=tmp_path / "bare.zarr", dataset="")
    with caplog.at_level(logging.INFO):
        array = config.array()
    assert array.voxel_size == Coordinate(1, 1) and array.offset == Coordinate(0, 0)
    assert array.axis_names == ["y", "x"]
    assert "voxel size 1 and offset 0" in caplog.text
    # A config override that makes the first axis a channel axis sizes the defaults.
    multi = config.replace(axis_names=["c^", "x"], voxel_size=(3,)).array()
    assert multi.num_channels == 4 and multi.roi == Roi((0,), (18,))


def test_config_overrides_and_snap_to_grid(tmp_path):
    data = np.arange(10 * 10).reshape(10, 10)
    config = write_zarr_array(tmp_path / "s.zarr", "a", data, voxel_size=(2, 2), offset=(2, 2))
    moved = config.replace(offset=(20, 0)).array()
    assert moved.roi == Roi((20, 0), (20, 20))
    snapped = config.replace(snap_to_grid=(8, 8)).array()
    assert snapped.roi == Roi((8, 8), (8, 8))
    np.testing.assert_array_equal(snapped.data, data[3:7, 3:7])
    np.testing.assert_array_equal(snapped[Roi((10, 12), (4, 2))], data[4:6, 5:6])
    with pytest.raises(ValueError, match="not on the voxel grid"):
        config.replace(snap_to_grid=(3, 3)).array()


def test_prepared_zarr_is_written_block_by_block(tmp_path):
    config = prepare_zarr_array(tmp_path / "out.zarr", "pred", (2, 8, 8), "float32",
                                voxel_size=(4, 4), axis_names=["c^", "y", "x"])
    with pytest.raises(PermissionError, match="mode='r\\+'"):
        config.array()[Roi((0, 0), (8, 8))] = 1
    writable = config.replace(mode="r+").array()
    writable[Roi((8, 8), (8, 8))] = np.ones((2, 2, 2), np.float32)
    data = config.array().data
    assert data.sum() == 8 and data[:, 2:4, 2:4].all()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        prepare_zarr_array(tmp_path / "out.zarr", "pred", (8, 8), "uint8")
    with pytest.raises(ValueError, match="zarr_format=2"):
        prepare_zarr_array(tmp_path / "out.zarr", "v3", (8, 8), "uint8", zarr_format=3)


def test_zarr_errors_name_the_problem_and_the_fix(tmp_path):
    write_zarr_array(tmp_path / "c.zarr", "raw/s0", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match="missing.zarr does not exist"):
        ZarrArrayConfig(name="m", file_name=tmp_path / "missing.zarr", dataset="raw").array()
    with pytest.raises(FileNotFoundError, match="'gt' is not in .*holds raw/s0"):
        ZarrArrayConfig(name="m", file_name=tmp_path / "c.zarr", dataset="gt").array()
    with pytest.raises(FileNotFoundError, match="is a group, not an array.*raw/s0"):
        ZarrArrayConfig(name="m", file_name=tmp_path / "c.zarr", dataset="raw").array()
    zarr.open_group(tmp_path / "c.zarr", mode="a")["raw/s0"].attrs["voxel_size"] = [1, 1]
    with pytest.raises(ValueError, match=r"voxel_size \[1, 1\].*has 2 entries.*3 spatial.*"
                                         r"ZarrArrayConfig"):
        ZarrArrayConfig(name="m", file_name=tmp_path / "c.zarr", dataset="raw/s0").array()
    with pytest.raises(ConfigError, match="N5.*Convert it to zarr"):
        ZarrArrayConfig(name="m", file_name=tmp_path / "c.n5", dataset="raw")


def test_fractional_geometry_without_a_unit_is_refused(tmp_path):
    write_zarr_array(tmp_path / "f.zarr", "a", np.zeros((2, 2), np.uint8))
    zarr.open_group(tmp_path / "f.zarr", mode="a")["a"].attrs.update(
        {"voxel_size": [0.5, 0.5], "units": ["", ""]})
    with pytest.raises(ValueError, match=r"not whole numbers.*Set integer voxel_size"):
        ZarrArrayConfig(name="f", file_name=tmp_path / "f.zarr", dataset="a").array()


# -- derived arrays -------------------------------------------------------------------------


def test_intensities_map_min_max_to_zero_one():
    source = numpy_config("raw", np.array([[0, 50], [100, 150]], np.uint8))
    array = IntensitiesArrayConfig(name="i", source_array_config=source, min=50, max=100).array()
    assert array.dtype == np.float32
    np.testing.assert_allclose(array.data, [[-1, 0], [1, 2]])  # not clipped, as in DaCapo
    with pytest.raises(ConfigError, match="max .* must be greater than min"):
        IntensitiesArrayConfig(name="i", source_array_config=source, min=1, max=1)


def test_binarize_makes_one_channel_per_group_and_never_marks_background():
    labels = numpy_config("l", np.array([[0, 1], [2, 3]], np.uint64), voxel_size=(2, 2))
    array = BinarizeArrayConfig(
        name="b", source_array_config=labels,
        groupings=[("all", []), ("low", [0, 1]), ("three", [3])],
    ).array()
    assert array.axis_names == ["c^", "y", "x"] and array.shape == (3, 2, 2)
    assert array.dtype == np.uint8 and array.voxel_size == Coordinate(2, 2)
    np.testing.assert_array_equal(array.data, [[[0, 1], [1, 1]], [[0, 1], [0, 0]],
                                               [[0, 0], [0, 1]]])
    with pytest.raises(ValueError, match="channel axis.*without channels"):
        BinarizeArrayConfig(
            name="b", groupings=[("a", [])],
            source_array_config=numpy_config("c", np.zeros((2, 2, 2)), axis_names=["c^", "y", "x"]),
        ).array()
    with pytest.raises(ConfigError, match="repeated names"):
        BinarizeArrayConfig(name="b", source_array_config=labels, groupings=[("a", []), ("a", [1])])


def test_concat_stacks_channels_with_default_and_zeros():
    a = numpy_config("a", np.full((4, 4), 1, np.uint8), voxel_size=(2, 2))
    b = numpy_config("b", np.full((1, 3, 3), 2.5, np.float32), voxel_size=(2, 2),
                     offset=(2, 2), axis_names=["c^", "y", "x"])
    default = numpy_config("d", np.full((4, 4), 9, np.uint8), voxel_size=(2, 2))
    config = ConcatArrayConfig(name="c", channels=["a", "missing", "b"],
                               source_array_configs={"a": a, "b": b})
    array = config.array()
    assert array.axis_names == ["c^", "y", "x"] and array.shape == (3, 3, 3)
    assert array.roi == Roi((2, 2), (6, 6)) and array.dtype == np.float32
    data = array.data
    assert (data[0] == 1).all() and (data[1] == 0).all() and (data[2] == 2.5).all()
    with_default = config.replace(default_config=default).array()
    assert (with_default.data[1] == 9).all()
    coarse = numpy_config("x", np.zeros((2, 2)), voxel_size=(4, 4))
    with pytest.raises(ValueError, match="voxel size.*resample"):
        config.replace(source_array_configs={"a": a, "b": coarse}).array()
    with pytest.raises(ConfigError, match=r"channels \['z'\] that are not in channels"):
        ConcatArrayConfig(name="c", channels=["a"], source_array_configs={"a": a, "z": a})


def test_crop_reads_a_window_of_its_source():
    data = np.arange(36).reshape(6, 6)
    source = numpy_config("s", data, voxel_size=(2, 2), offset=(10, 10))
    crop = CropArrayConfig(name="c", source_array_config=source, roi=((12, 14), (4, 6))).array()
    assert crop.roi == Roi((12, 14), (4, 6)) and crop.shape == (2, 3)
    np.testing.assert_array_equal(crop.data, data[1:3, 2:5])
    np.testing.assert_array_equal(crop[Roi((14, 16), (2, 2))], data[2:3, 3:4])
    with pytest.raises(ValueError, match="not on the voxel grid.*e.g."):
        CropArrayConfig(name="c", source_array_config=source, roi=((11, 10), (4, 4))).array()
    with pytest.raises(ValueError, match="not inside the source.*e.g."):
        CropArrayConfig(name="c", source_array_config=source, roi=((0, 0), (14, 14))).array()


def test_constant_array_keeps_geometry_and_dtype():
    source = numpy_config("s", np.zeros((1, 3, 4), np.uint8), voxel_size=(2, 2),
                          axis_names=["c^", "y", "x"])
    ones = ConstantArrayConfig(name="m", source_array_config=source).array()
    assert ones.shape == (1, 3, 4) and ones.dtype == np.uint8 and ones.data.all()
    assert ones[Roi((2, 2), (2, 4))].shape == (1, 1, 2)
    with pytest.raises(ValueError, match="does not fit the source's dtype uint8"):
        ConstantArrayConfig(name="m", source_array_config=source, constant=300).array()


# -- datasets and datasplits ----------------------------------------------------------------


def dataset(raw, gt=None, mask=None, sample_points=None, name="d"):
    config = RawGTDatasetConfig(name=name, raw_config=raw, gt_config=gt, mask_config=mask,
                                sample_points=sample_points)
    return config.dataset_type(config)


def test_raw_gt_dataset_and_datasplits_open_their_arrays():
    raw = numpy_config("raw", np.zeros((8, 8), np.float32))
    gt = numpy_config("gt", np.ones((8, 8), np.uint8))
    train = RawGTDatasetConfig(name="t", raw_config=raw, gt_config=gt, weight=3,
                               sample_points=[[2, 2]])
    ds = RawGTDataset(train)
    assert (ds.name, ds.weight, ds.mask) == ("t", 3, None)
    assert ds.sample_points == [Coordinate(2, 2)] and ds.gt.dtype == np.uint8
    split = TrainValidateDataSplitConfig(
        name="s", train_configs=[train], validate_configs=[train.replace(name="v")]
    )
    opened = split.datasplit_type(split)
    assert isinstance(opened, TrainValidateDataSplit)
    assert [d.name for d in opened.train] == ["t"] and [d.name for d in opened.validate] == ["v"]
    dummy = DummyDataSplitConfig(name="d", train_config=train)
    assert [d.name for d in dummy.datasplit_type(dummy).train] == ["t"]
    with pytest.raises(ConfigError, match="same name \\['t'\\]"):
        TrainValidateDataSplitConfig(name="s", train_configs=[train, train])
    with pytest.raises(ConfigError, match="train_configs is empty"):
        TrainValidateDataSplitConfig(name="s", train_configs=[])


def test_dacapo_run_yaml_datasplits_open_the_fixture_data():
    for run in ("run_distance_2d.yaml", "run_affinities_3d.yaml"):
        text = (FIXTURES / run).read_text().replace(
            "/work/main/tests/fixtures/dacapo/data.zarr", str(FIXTURES / "data.zarr")
        )
        # The loader load_config uses, applied to the datasplit part of a DaCapo run file.
        ignored: list[str] = []
        data = yaml.load(text, Loader=_yaml_loader())["datasplit_config"]  # noqa: S506
        split = from_dict(data, ignored=ignored)
        assert ignored == []
        for ds in split.datasplit_type(split).train + split.datasplit_type(split).validate:
            check_training_dataset(ds)
            assert overlap_roi(ds) == ds.gt.roi


# -- checks ---------------------------------------------------------------------------------


def test_overlap_roi_is_where_all_arrays_exist():
    raw = numpy_config("raw", np.zeros((10, 10)), voxel_size=(2, 2))
    gt = numpy_config("gt", np.ones((4, 4), np.uint8), voxel_size=(2, 2), offset=(4, 6))
    mask = numpy_config("m", np.ones((4, 4), np.uint8), voxel_size=(2, 2), offset=(8, 8))
    assert overlap_roi(dataset(raw, gt, mask)) == Roi((8, 8), (4, 6))
    assert overlap_roi(dataset(raw)) == Roi((0, 0), (20, 20))


def test_check_refuses_labels_with_other_spatial_axes():
    raw = numpy_config("raw", np.zeros((4, 8, 8), np.float32))
    gt = numpy_config("gt", np.ones((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"raw has 3 spatial axes \(z, y, x\) but gt has 2 "
                                        r"\(y, x\).*name it 'c\^'"):
        check_training_dataset(dataset(raw, gt))
    # Named as a channel axis, the first raw axis is not spatial: accepted.
    rgb = numpy_config("raw", np.zeros((3, 8, 8), np.float32), axis_names=["c^", "y", "x"])
    check_training_dataset(dataset(rgb, gt))


def test_check_refuses_labels_away_from_the_raw():
    raw = numpy_config("raw", np.zeros((8, 8)), voxel_size=(4, 4))
    gt = numpy_config("gt", np.ones((8, 8), np.uint8), voxel_size=(4, 4), offset=(64, 0))
    with pytest.raises(DataError, match=r"do not overlap.*raw \[0:32, 0:32\].*gt \[64:96, "
                                        r"0:32\].*scale and translate"):
        check_training_dataset(dataset(raw, gt))


def test_check_refuses_other_voxel_sizes_and_off_grid_offsets():
    raw = numpy_config("raw", np.zeros((8, 8)), voxel_size=(4, 4))
    coarse = numpy_config("gt", np.ones((4, 4), np.uint8), voxel_size=(8, 8))
    with pytest.raises(DataError, match=r"gt voxel size \(8, 8\) differs.*resample.*\(4, 4\)"):
        check_training_dataset(dataset(raw, coarse))
    shifted = numpy_config("gt", np.ones((8, 8), np.uint8), voxel_size=(4, 4), offset=(5, 0))
    with pytest.raises(DataError, match=r"offset \(5, 0\) is not a multiple.*e.g. \(4, 0\)"):
        check_training_dataset(dataset(raw, shifted))


def test_check_refuses_empty_labels_and_masks_but_validation_allows_them(caplog):
    raw = numpy_config("raw", np.zeros((8, 8)))
    empty = numpy_config("gt", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="gt is 0 everywhere.*annotate at least one object"):
        check_training_dataset(dataset(raw, empty))
    gt = numpy_config("gt", np.ones((8, 8), np.uint8))
    with pytest.raises(DataError, match="mask is 0 everywhere.*set the mask to 1"):
        check_training_dataset(dataset(raw, gt, mask=empty))
    with caplog.at_level(logging.INFO):
        check_validation_dataset(dataset(raw, empty))
    assert "allowed for validation" in caplog.text
    with pytest.raises(DataError, match="no ground truth.*give it labels"):
        check_validation_dataset(dataset(raw))
    check_training_dataset(dataset(raw), require_gt=False)


def test_check_refuses_fractional_labels_and_accepts_whole_floats(caplog):
    raw = numpy_config("raw", np.zeros((4, 4)))
    soft = numpy_config("gt", np.full((4, 4), 0.5, np.float32))
    with pytest.raises(DataError, match=r"non-integer value 0.5 at world position \(0, 0\).*"
                                        r"threshold it"):
        check_training_dataset(dataset(raw, soft))
    with caplog.at_level(logging.INFO):
        check_training_dataset(dataset(raw, numpy_config("gt", np.ones((4, 4), np.float64))))
    assert "holds whole numbers" in caplog.text


def test_check_refuses_nan_in_raw_and_sample_points_outside():
    data = np.zeros((4, 6), np.float32)
    data[2, 3] = np.nan
    gt = numpy_config("gt", np.ones((4, 6), np.uint8), voxel_size=(2, 2))
    with pytest.raises(DataError, match=r"value nan at world position \(4, 6\).*nan_to_num"):
        check_training_dataset(dataset(numpy_config("raw", data, voxel_size=(2, 2)), gt))
    raw = numpy_config("raw", np.zeros((4, 6), np.float32), voxel_size=(2, 2))
    with pytest.raises(DataError, match=r"sample point \(20, 0\) is not inside.*remove it"):
        check_training_dataset(dataset(raw, gt, sample_points=[(2, 2), (20, 0)]))


def test_big_zarr_arrays_are_checked_on_a_spread_sample(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(checks, "SAMPLE_BYTES", 4096)  # 4 of the 64 chunks of 1 KiB
    raw = np.zeros((128, 128), np.float32)
    raw[3, 5] = np.inf  # in the first chunk, which the sample includes
    raw[3, 21] = np.nan  # in the second chunk, which it skips
    labels = np.zeros((128, 128), np.uint8)
    labels[3, 21] = 1
    raw_config = write_zarr_array(tmp_path / "big.zarr", "raw", raw, chunks=(16, 16))
    gt_config = write_zarr_array(tmp_path / "big.zarr", "gt", labels, chunks=(16, 16))
    with pytest.raises(DataError, match=r"value inf at world position \(3, 5\) \(in a sample "
                                        r"of 4 of 64 blocks\)"):
        check_training_dataset(dataset(raw_config, gt_config))
    raw[3, 5] = 0
    clean = write_zarr_array(tmp_path / "big.zarr", "raw", raw, chunks=(16, 16))
    with caplog.at_level(logging.WARNING):
        check_training_dataset(dataset(clean, gt_config))  # a sample cannot prove emptiness
    assert "gt is 0 everywhere" in caplog.text and "a sample of 16 of 64" in caplog.text


def test_big_in_memory_arrays_are_checked_in_full(monkeypatch):
    """A pass over memory is cheap: NaN where a sample would not look is still found (a
    float volume over SAMPLE_BYTES trained with NaN loss and stored NaN weights)."""
    monkeypatch.setattr(checks, "SAMPLE_BYTES", 4096)  # a sample: 1 of 2 blocks (1024^2)
    raw = np.zeros((8, 2048), np.float32)
    raw[3, 1500] = np.nan  # in the second block
    labels = np.ones((8, 2048), np.float32)
    with pytest.raises(DataError, match=r"value nan at world position \(3, 1500\);") as info:
        check_training_dataset(dataset(numpy_config("raw", raw), numpy_config("gt", labels)))
    assert "sample" not in str(info.value)
    labels[5, 2000] = 0.5  # float labels are cast to ids: each must be whole
    with pytest.raises(DataError, match=r"non-integer value 0.5 at world position \(5, 2000\)"):
        check_training_dataset(dataset(numpy_config("raw", np.zeros_like(raw)),
                                       numpy_config("gt", labels)))


def test_float_labels_with_whole_values_are_read_as_label_ids():
    labels = np.array([[0, 1], [2, 3]], np.float32)
    gt = dataset(numpy_config("raw", np.zeros((2, 2))), numpy_config("gt", labels)).gt
    assert gt.dtype == np.int64
    read = gt[gt.roi]
    assert read.dtype == np.int64
    np.testing.assert_array_equal(read, labels)
    labels[1, 1] = 2.5  # a value the sample of a lazily read gt did not see
    with pytest.raises(ValueError, match=r"non-integer value 2.5.*threshold"):
        gt[gt.roi]


# -- configs --------------------------------------------------------------------------------


def test_array_and_datasplit_configs_round_trip_through_yaml(tmp_path):
    raw = ZarrArrayConfig(name="raw", file_name=tmp_path / "d.zarr", dataset="raw",
                          axis_names=["z", "y", "x"], snap_to_grid=(8, 8, 8))
    labels = ZarrArrayConfig(name="labels", file_name=tmp_path / "d.zarr", dataset="labels")
    gt = ConcatArrayConfig(
        name="gt", channels=["mito", "er"],
        source_array_configs={"mito": BinarizeArrayConfig(
            name="b", source_array_config=labels, groupings=[("mito", [1, 2])])},
        default_config=ConstantArrayConfig(name="zeros", source_array_config=labels, constant=0),
    )
    config = TrainValidateDataSplitConfig(
        name="split",
        train_configs=[RawGTDatasetConfig(
            name="train",
            raw_config=IntensitiesArrayConfig(name="i", source_array_config=raw, min=0, max=255),
            gt_config=gt, weight=2, sample_points=[(8, 8, 8)],
        )],
        validate_configs=[RawGTDatasetConfig(
            name="val", raw_config=raw,
            gt_config=CropArrayConfig(name="c", source_array_config=labels,
                                      roi=Roi((0, 8, 8), (16, 16, 16))),
        )],
    )
    loaded = load_config(save_config(config, tmp_path / "split.yaml"))
    assert loaded == config
    assert isinstance(loaded.validate_configs[0].gt_config.roi, Roi)
    assert loaded.train_configs[0].gt_config.source_array_configs["mito"].groupings == [
        ("mito", [1, 2])
    ]


def test_dacapo_style_array_dicts_load(tmp_path):
    data = {
        "__type__": "CropArrayConfig",
        "name": "crop",
        "roi": [[0, 4], [8, 8]],
        "source_array_config": {
            "__type__": "OnesArrayConfig",
            "name": "ones",
            "source_array_config": {
                "__type__": "ZarrArrayConfig", "name": "z", "file_name": str(tmp_path / "a.zarr"),
                "dataset": "raw", "_axes": ["y", "x"], "mode": "a", "snap_to_grid": None,
            },
        },
    }
    ignored: list[str] = []
    crop = from_dict(data, ignored=ignored)
    assert ignored == []
    assert crop.roi == Roi((0, 4), (8, 8))
    ones = crop.source_array_config
    assert isinstance(ones, ConstantArrayConfig) and ones.constant == 1
    assert ones.source_array_config.axis_names == ["y", "x"]
    assert ones.source_array_config.file_name == tmp_path / "a.zarr"
    write_zarr_array(tmp_path / "a.zarr", "raw", np.full((8, 8), 5, np.uint16), voxel_size=(2, 2))
    array = crop.array()
    assert array.roi == Roi((0, 4), (8, 8)) and array.dtype == np.uint16 and array.data.all()
