"""Prediction for users: predict(), predict_tiles(), apply(), export, and the validate,
predict and export commands, on a tiny trained run."""

from __future__ import annotations

import shutil
import warnings
from unittest import mock

import dask.array as da
import numpy as np
import pytest
import torch
import yaml
import zarr
from click.testing import CliRunner
from conftest import store_random_weights, tiny_config
from funlib.geometry import Coordinate, Roi

import napari_dacapo.predict as predict_module
from napari_dacapo.checkpoints import load_model, load_run
from napari_dacapo.cli import main
from napari_dacapo.examples import synthetic_blobs
from napari_dacapo.experiments import (
    DummyDataSplitConfig,
    IntensitiesArrayConfig,
    NumpyArrayConfig,
    RawGTDatasetConfig,
)
from napari_dacapo.experiments.datasplits.datasets.arrays.array import (
    raw_as_float32,
    voxel_slices,
)
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import write_zarr_array
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
    ZarrArrayConfig,
)
from napari_dacapo.experiments.run import Run
from napari_dacapo.export import export_model
from napari_dacapo.predict import (
    PredictionStarted,
    TileGeometry,
    TilePredicted,
    VoxelSizeWarning,
    apply,
    assemble,
    model_input,
    predict,
    predict_tiles,
    prediction_input,
    read_input,
    tile_dtype,
    training_intensity_range,
    training_raw_configs,
    training_voxel_sizes,
    unchecked_voxel_size,
    voxel_size_mismatch,
)
from napari_dacapo.store.file_store import (
    CheckpointError,
    FileStore,
    StoreError,
    world_factor_of,
)
from napari_dacapo.train import train_run

FP32 = {"precision": "fp32", "device": "cpu"}  # exact comparisons need plain fp32
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny 2D run trained for 6 iterations, validated at 3 and 6; seeded, as a tiny
    network's weights and samples may otherwise give a constant output (and tests that
    compare predictions need one that varies)."""
    store = FileStore(tmp_path_factory.mktemp("predict") / "runs")
    config = tiny_config(2)
    config = config.replace(trainer_config=config.trainer_config.replace(seed=0))
    torch.manual_seed(1)  # with seed 0 this network's output is constant
    list(train_run(Run(config, store=store), store=store))
    return store, config.name


@pytest.fixture(scope="module")
def random_weights(trained):
    """``random_weights(dims)``: the store and the name of a tiny run with random weights."""
    store, _ = trained
    names: dict[int, str] = {}

    def run_with_random_weights(dims: int) -> tuple[FileStore, str]:
        if dims not in names:
            names[dims] = store_random_weights(store, tiny_config(dims, name=f"random_{dims}d"))
        return store, names[dims]

    return run_with_random_weights


@pytest.fixture(scope="module")
def upsampling(trained):
    """A run with a 2x upsampling network whose training raw data has voxel size 2 and is
    rescaled from [0, 100]."""
    store, _ = trained
    config = tiny_config(2, name="upsampling")
    split = config.datasplit_config
    train = split.train_configs[0]
    raw = train.raw_config.replace(voxel_size=Coordinate(2, 2))
    rescaled = IntensitiesArrayConfig(name="raw_0_100", source_array_config=raw, min=0, max=100)
    config = config.replace(
        architecture_config=config.architecture_config.replace(upsample_factors=[(2, 2)]),
        datasplit_config=split.replace(
            train_configs=[train.replace(raw_config=rescaled, gt_config=None)],
            validate_configs=[],
        ),
    )
    return store, store_random_weights(store, config)


def blobs(shape, seed=3):
    return synthetic_blobs(shape, seed=seed)[0]


def uint16_config(name: str, dtype=np.uint16, scale=257):
    """The tiny 2D run config with its raw data stored as ``dtype`` (``scale`` times the
    uint8 blobs), trained without an intensity range."""
    config = tiny_config(2, name=name)
    split = config.datasplit_config

    def wide(dataset):
        raw = dataset.raw_config
        return dataset.replace(raw_config=raw.replace(data=raw.data.astype(dtype) * scale))

    return config.replace(datasplit_config=split.replace(
        train_configs=[wide(d) for d in split.train_configs],
        validate_configs=[wide(d) for d in split.validate_configs]))


def forward_on_whole_image(model, image: np.ndarray, context: int) -> np.ndarray:
    """One forward pass of the eval-mode model over the zero-padded whole ``image``
    (``(*spatial)`` float32): the reference a seamless tiling must reproduce."""
    size = list(image.shape)
    for axis in range(len(size)):  # grow each axis until the padded input is valid
        while True:
            shape = list(model.eval_input_shape)  # valid on the other axes
            shape[axis] = size[axis] + 2 * context
            try:
                model.compute_output_shape(Coordinate(shape))
                break
            except ValueError:
                size[axis] += 1
    padded = np.pad(image, [(context, s - n + context) for s, n in zip(size, image.shape)])
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(padded)[None, None])[0].numpy()
    assert out.shape[1:] == tuple(size)
    return out[(slice(None), *(slice(0, n) for n in image.shape))]


@pytest.mark.parametrize(
    "shape",
    [(16, 16), (10, 7), (70, 45), (30, 20, 9)],
    ids=["one tile", "smaller than a tile", "many tiles", "3D"],
)
def test_tiled_prediction_equals_one_forward_pass_over_the_whole_image(random_weights, shape):
    store, name = random_weights(len(shape))
    run, _ = load_run(name, store)
    model = load_model(run, 0, store)
    tile = model.compute_output_shape(model.eval_input_shape)[1]
    context = (model.eval_input_shape[0] - tile[0]) // 2
    assert tile == (16, 16) if len(shape) == 2 else tile == (8, 8, 8)
    raw = blobs(shape)

    tiled = predict(name, 0, raw, store=store, **FP32)
    expected = forward_on_whole_image(model, raw.astype(np.float32) / 255, context)

    assert tiled.shape == (1, *shape)
    assert expected.std() > 0.1, "the reference must vary, or equality proves nothing"
    # Equal up to fp32 rounding: one pass over the whole image and batches of tiles sum
    # in other orders (other kernels), and random weights give values in the hundreds.
    atol = 1e-6 * np.abs(expected).max()
    np.testing.assert_allclose(tiled, expected, rtol=1e-5, atol=atol)
    if shape[0] > tile[0]:  # tiles misplaced by one voxel would not match
        assert not np.allclose(tiled[:, 1:], expected[:, :-1], rtol=1e-5, atol=atol)


def test_checkpoint_forms_and_the_run_object_is_left_untouched(trained):
    store, name = trained
    raw = blobs((40, 30))
    at_3, at_6 = (predict(name, i, raw, store=store, **FP32) for i in (3, 6))
    assert not np.array_equal(at_3, at_6)
    np.testing.assert_array_equal(predict(name, "3", raw, store=store, **FP32), at_3)
    np.testing.assert_array_equal(predict(name, "latest", raw, store=store, **FP32), at_6)
    best = store.retrieve_best(name, "blob__f1_score")
    # "f1_score" names the single channel's criterion "blob__f1_score".
    by_best = predict(name, "best:f1_score", raw, store=store, **FP32)
    np.testing.assert_array_equal(by_best, at_3 if best["iteration"] == 3 else at_6)

    run = Run(store.retrieve_run_config(name), store=store)  # resumed at 6, training mode
    weights = {k: v.clone() for k, v in run.model.state_dict().items()}
    run_files = {p: p.stat().st_mtime_ns for p in store.run_dir(name).rglob("*")}
    np.testing.assert_array_equal(predict(run, 3, raw, **FP32), at_3)
    assert run.model.training
    assert all(torch.equal(v, weights[k]) for k, v in run.model.state_dict().items())
    assert {p: p.stat().st_mtime_ns for p in store.run_dir(name).rglob("*")} == run_files


def test_unknown_run_checkpoint_or_criterion_are_named_with_the_fix(trained, upsampling):
    store, name = trained
    raw = blobs((20, 20))
    with pytest.raises(StoreError, match=f"stored runs: .*{name}"):
        predict("nope", "latest", raw, store=store)
    with pytest.raises(CheckpointError, match=r"stored iterations: \[3, 6\]"):
        predict(name, 4, raw, store=store)
    with pytest.raises(ValueError, match="scored by: .*blob__f1_score"):
        predict(name, "best:accuracy", raw, store=store)
    with pytest.raises(ValueError, match="'last' is not understood"):
        predict(name, "last", raw, store=store)
    with pytest.raises(CheckpointError, match="not been validated.*napari-dacapo validate"):
        predict(upsampling[1], "best:f1_score", raw, store=store)


def test_dask_zarr_and_channel_axis_inputs_predict_the_same(trained, tmp_path):
    store, name = trained
    raw = blobs((40, 30))
    expected = predict(name, 6, raw, store=store)
    container = zarr.open_group(str(tmp_path / "in.zarr"), mode="w")
    container.create_array("raw", data=raw, chunks=(16, 16))
    for other in (da.from_array(raw, chunks=(13, 11)), container["raw"], raw[None]):
        np.testing.assert_array_equal(predict(name, 6, other, store=store), expected)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (np.zeros((2, 20, 20), np.uint8), r"2 channel\(s\).*takes 2D images with 1 channel"),
        (np.zeros((1, 2, 20, 20), np.uint8), r"shape \(1, 2, 20, 20\).*2 spatial axes"),
        ([[1, 2], [3, 4]], "numpy, dask or zarr array"),
        (np.zeros((40, 30, 3), np.uint8), r"last axis looks like colour.*raw.mean\(axis=-1\)"),
        (np.zeros((0, 0), np.uint8), r"shape \(0, 0\): an empty axis"),
    ],
)
def test_input_that_does_not_fit_the_model_is_refused(trained, raw, message):
    store, name = trained
    with pytest.raises((ValueError, TypeError), match=message):
        predict(name, 6, raw, store=store)


@pytest.mark.filterwarnings("ignore::napari_dacapo.predict.VoxelSizeWarning")
def test_voxel_size_and_offset_place_the_tiles(trained):
    store, name = trained
    raw = blobs((40, 30))
    events = list(
        predict_tiles(name, 6, raw, store=store, voxel_size=(3, 2), offset=(30, -8), **FP32)
    )
    start, tiles = events[0], events[1:]
    assert isinstance(start, PredictionStarted) and start.iteration == 6
    assert start.roi == Roi((30, -8), (120, 60)) and start.voxel_size == (3, 2)
    assert start.shape == (1, 40, 30) and start.num_tiles == len(tiles) == 3 * 2
    assert all(isinstance(t, TilePredicted) and start.roi.contains(t.roi) for t in tiles)
    assert sum(t.data[0].size for t in tiles) == 40 * 30  # tiles cover the input once
    assert tiles[0].roi == Roi((30, -8), (48, 32))  # a 16x16 tile of 3x2 voxels
    with pytest.raises(ValueError, match="not on the voxel grid"):
        predict(name, 6, raw, store=store, voxel_size=(3, 2), offset=(1, 0))


def test_an_input_of_another_voxel_size_than_the_training_data_is_warned_of(trained, tmp_path):
    store, name = trained
    raw = blobs((40, 30))
    said = (r"The input's voxel size \(2, 2\) differs from the voxel size of the data run "
            r"'tiny_2d' was trained on, \(1, 1\): .* Resample the image to that voxel size; "
            r"or, if the image's voxel size is recorded wrongly, give the right one "
            r"\(voxel_size= for an array")
    with pytest.warns(VoxelSizeWarning, match=said):
        predict(name, 6, raw, store=store, voxel_size=(2, 2))
    write_zarr_array(tmp_path / "in.zarr", "raw", raw, voxel_size=(4, 4))
    zarr_input = ZarrArrayConfig(name="in", file_name=tmp_path / "in.zarr", dataset="raw")
    events = predict_tiles(name, 6, zarr_input, store=store)
    with pytest.warns(VoxelSizeWarning, match=r"voxel size \(4, 4\) differs"):
        assert isinstance(next(events), PredictionStarted)  # before any tile
    events.close()


def test_an_input_of_the_training_voxel_size_is_not_warned_of(trained, tmp_path):
    store, name = trained
    raw = blobs((40, 30))
    write_zarr_array(tmp_path / "in.zarr", "raw", raw, voxel_size=(1, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict(name, 6, raw, store=store, voxel_size=(1, 1))
        predict(name, 6, raw, store=store)  # the training data's voxel size, taken over
        predict(name, 6, ZarrArrayConfig(name="in", file_name=tmp_path / "in.zarr",
                                         dataset="raw"), store=store)
        with unchecked_voxel_size():  # where the caller compared it already
            predict(name, 6, raw, store=store, voxel_size=(2, 2))
    assert not [w for w in caught if issubclass(w.category, VoxelSizeWarning)]


def test_voxel_sizes_of_every_training_dataset_and_of_datasplits_without_raw_configs(
    trained, tmp_path
):
    store, _ = trained
    config = tiny_config(2, name="two_sizes")
    split = config.datasplit_config
    train = split.train_configs[0]
    coarse = train.replace(name="coarse", gt_config=None,
                           raw_config=train.raw_config.replace(voxel_size=Coordinate(2, 2)))
    two = config.replace(datasplit_config=split.replace(
        train_configs=[train, coarse, train.replace(name="again")]))
    assert training_voxel_sizes(two) == [(1, 1), (2, 2)]
    assert voxel_size_mismatch((2, 2), training_voxel_sizes(two), "r") == ""  # any one
    assert "differs from each voxel size of the data run 'r' was trained on, (1, 1), (2, 2):" in (
        voxel_size_mismatch((3, 3), training_voxel_sizes(two), "r"))
    # Training data that cannot be opened (a cluster node may not see it): nothing to say.
    gone = train.replace(raw_config=ZarrArrayConfig(name="gone", file_name=tmp_path / "gone.zarr",
                                                    dataset="raw"))
    assert training_voxel_sizes(config.replace(
        datasplit_config=split.replace(train_configs=[gone]))) == []
    # A datasplit that names no raw array config (DaCapo's DummyDataSplitConfig): the
    # voxel size of its training dataset's raw data, stored with the run.
    dummy = store_random_weights(store, config.replace(
        name="dummy_split", datasplit_config=DummyDataSplitConfig(name="one", train_config=coarse)))
    with pytest.warns(VoxelSizeWarning, match=r"\(1, 1\) differs from the voxel size of the "
                      r"data run 'dummy_split' was trained on, \(2, 2\)"):
        predict(dummy, 0, blobs((40, 30)), store=store, voxel_size=(1, 1))


def test_a_run_predicts_with_its_training_datas_facts_where_that_data_is_gone(tmp_path, caplog):
    """A run trained on a cluster's data, predicted on a desktop that does not see it:
    the voxel size and dtype recorded when it trained still place and check the input
    (before, a plain array failed with "cannot be opened to read the voxel size", and the
    checks were silently skipped)."""
    from napari_dacapo.predict import IntensityScaleWarning, training_raws
    from napari_dacapo.store.file_store import TRAINING_DATA_FILE, read_training_data

    raw, labels = synthetic_blobs((64, 64), seed=1)
    path = tmp_path / "cluster" / "data.zarr"
    write_zarr_array(path, "raw", raw.astype(np.uint16) * 257, voxel_size=(2, 2))
    write_zarr_array(path, "labels", labels.astype(np.uint32), voxel_size=(2, 2))
    dataset = RawGTDatasetConfig(
        name="cluster", raw_config=ZarrArrayConfig(name="raw", file_name=path, dataset="raw"),
        gt_config=ZarrArrayConfig(name="labels", file_name=path, dataset="labels"),
    )
    config = tiny_config(2, name="elsewhere", iterations=2, snapshot_interval=None)
    config = config.replace(datasplit_config=config.datasplit_config.replace(
        train_configs=[dataset], validate_configs=[]))
    store = FileStore(tmp_path / "runs")
    list(train_run(Run(config, store=store), store=store, validate=False))
    assert read_training_data(store.run_dir("elsewhere")) == {
        "raw": [{"voxel_size": [2, 2], "dtype": "<u2"}]}

    shutil.rmtree(tmp_path / "cluster")  # the desktop does not see the cluster's data
    run = load_run("elsewhere", store)[0]
    assert training_raws(run) == [training_raws(run)[0]]
    assert (training_raws(run)[0].voxel_size, training_raws(run)[0].dtype) == (
        (2, 2), np.dtype(np.uint16))
    image = raw.astype(np.uint16) * 257
    placed = prediction_input(run, image)
    assert placed.voxel_size == (2, 2)  # the training data's, as when it was there
    with pytest.warns(VoxelSizeWarning, match=r"\(1, 1\) differs from the voxel size"):
        prediction_input(run, image, voxel_size=(1, 1))
    with pytest.warns(IntensityScaleWarning, match=r"uint8, 0–255 .*\(uint16, divided by 65535"):
        prediction_input(run, raw)

    # A damaged record is ignored (logged); without the data nothing is known again.
    for damaged in ('{"raw": [{"dtype": 1}]}',
                    '{"raw": [{"voxel_size": [2], "dtype": "<u2"}]}'):  # not the network's
        caplog.clear()
        (store.run_dir("elsewhere") / TRAINING_DATA_FILE).write_text(damaged)
        assert training_raws(load_run("elsewhere", store)[0]) == []
        assert "Ignored the training data recorded for run elsewhere" in caplog.text
    with pytest.raises(ValueError, match="cannot be opened to read the voxel size"):
        prediction_input(load_run("elsewhere", store)[0], image)


def test_a_dummy_datasplit_rescales_prediction_input_as_it_trained(upsampling):
    """A DummyDataSplitConfig's one training dataset counts as the training data: its
    raw rescaling (here from [0, 100]) is repeated at prediction (it was skipped)."""
    store, name = upsampling
    run = load_run(name, store)[0]
    train = run.config.datasplit_config.train_configs[0]
    dummy = run.config.replace(datasplit_config=DummyDataSplitConfig(name="one",
                                                                     train_config=train))
    assert training_raw_configs(dummy) == [train.raw_config]
    dummy_name = store_random_weights(store, dummy.replace(name="dummy_rescaled"))
    dummy_run = load_run(dummy_name, store)[0]
    assert training_intensity_range(dummy_run) == (0.0, 100.0)


@pytest.mark.filterwarnings("always::napari_dacapo.predict.VoxelSizeWarning")
def test_cli_predict_warns_of_another_voxel_size_before_predicting(trained, tmp_path):
    store, name = trained
    write_zarr_array(tmp_path / "data.zarr", "raw", blobs((40, 30)), voxel_size=(2, 2))
    result = CliRunner().invoke(main, [
        "predict", "--run", name, "--store", str(store.root), str(tmp_path / "data.zarr/raw"),
        str(tmp_path / "data.zarr/pred")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    warned = [i for i, line in enumerate(lines) if line.startswith(
        "Warning: The input's voxel size (2, 2) differs from the voxel size of the data run "
        "'tiny_2d' was trained on, (1, 1)")]
    assert len(warned) == 1 and "Resample the image" in lines[warned[0]]
    assert warned[0] < next(i for i, line in enumerate(lines) if line.startswith("Predicting"))
    assert "VoxelSizeWarning" not in result.output and ".py:" not in result.output


def test_tile_groups_cut_each_tile_input_from_the_group_and_cover_the_roi_once(random_weights):
    store, name = random_weights(2)
    model = load_model(load_run(name, store)[0], 0, store)
    geometry = TileGeometry.for_model(model, Coordinate(4, 2))
    roi = Roi((8, -6), (4 * 70, 2 * 45))  # world units, offset on the voxel grid
    groups = geometry.tile_groups(roi, max_voxels=60 * 60)
    assert len(groups) > 2 and len(groups[0].cuts) > 1  # several groups of several tiles
    covered = np.zeros((70, 45), int)
    for group in groups:
        for cut, output, target in zip(group.cuts, group.outputs, group.targets, strict=True):
            # The cut is the tile's whole input (its output grown by the context), in the
            # group's voxels.
            first = Coordinate(c.start for c in cut) * geometry.input_voxel_size
            size = Coordinate(c.stop - c.start for c in cut) * geometry.input_voxel_size
            assert group.roi.begin + first == output.begin - geometry.context
            assert size == geometry.input_size
            assert group.roi.contains(Roi(group.roi.begin + first, size))
            assert target == voxel_slices(output, roi.begin, geometry.output_voxel_size)
            covered[target] += 1
    assert [out for _, out in geometry.tiles(roi)] == [  # one group: the same tiles
        out for group in geometry.tile_groups(roi) for out in group.outputs
    ]
    assert (covered == 1).all()


def test_tiles_predicted_in_runs_and_batches_equal_tiles_predicted_one_by_one(
    trained, monkeypatch
):
    store, name = trained
    model = load_run(name, store)[0].model
    assert predict_module.batch_size(int(np.prod(model.eval_input_shape))) > 1
    raw = blobs((70, 45))
    together = list(predict_tiles(name, 6, raw, store=store, **FP32))
    # predict() has the tiles written straight into its array (assemble answers
    # PredictionStarted with it); a consumer that only iterates gets copies: same values.
    written, _, _ = assemble(predict_tiles(name, 6, raw, store=store, **FP32))
    monkeypatch.setattr("napari_dacapo.predict.blocks.RUN_VOXELS", 1)  # where read
    monkeypatch.setattr("napari_dacapo.predict.blocks.BATCH_VOXELS", 1)
    one_by_one = list(predict_tiles(name, 6, raw, store=store, **FP32))

    tiles = [e for e in together if isinstance(e, TilePredicted)]
    assert len(tiles) == together[0].num_tiles > 2
    assert [t.index for t in tiles] == list(range(1, len(tiles) + 1))
    copied, _, _ = assemble(list(together))
    assert copied.std() > 0 and np.array_equal(written, copied)
    scale = max(np.abs(t.data).max() for t in tiles)
    for a, b in zip(tiles, one_by_one[1:], strict=True):
        assert a.roi == b.roi and a.data.shape[1:] == tuple(a.roi.shape)
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-6 * scale)
    assert not torch.is_inference_mode_enabled()


def test_predict_tiles_can_be_cancelled_and_leaves_no_inference_mode(trained):
    store, name = trained
    tiles = predict_tiles(name, 6, blobs((64, 64)), store=store)
    assert isinstance(next(tiles), PredictionStarted)
    assert isinstance(next(tiles), TilePredicted)
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()
    tiles.close()


def test_upsampling_output_is_finer_and_training_rescaling_is_repeated(upsampling):
    store, name = upsampling
    run, _ = load_run(name, store)
    assert training_intensity_range(run) == (0.0, 100.0)
    raw = blobs((20, 14))
    # The rescaling comes from the run's config: the training data need not be readable
    # (a cluster node predicting may not see it).
    with mock.patch.object(type(run), "datasplit", property(lambda _: 1 / 0)):
        assert training_intensity_range(run) == (0.0, 100.0)
    start, *tiles = predict_tiles(name, 0, raw, store=store, **FP32)
    # The training data's voxel size (2, 2) is the default; the output voxels are half.
    assert start.voxel_size == (1, 1) and start.roi == Roi((0, 0), (40, 28))
    prediction = predict(name, 0, raw, store=store, **FP32)
    assert prediction.shape == (1, 40, 28)
    by_hand = predict(name, 0, raw.astype(np.float32) / 100, store=store, rescale=False, **FP32)
    np.testing.assert_array_equal(prediction, by_hand)
    assert not np.array_equal(prediction, predict(name, 0, raw, store=store, rescale=False, **FP32))


def test_an_input_can_be_scaled_by_its_own_intensity_range(upsampling, trained):
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        intensity_range,
    )

    store, name = upsampling
    run, _ = load_run(name, store)
    raw = blobs((20, 14)).astype(np.float32) * 5 + 300  # brighter than 0-100
    own = intensity_range(raw)
    assert own.low > 100
    scaled = prediction_input(run, raw, rescale="image")
    np.testing.assert_array_equal(scaled.data, prediction_input(
        run, raw, rescale=(own.low, own.high)).data)
    np.testing.assert_array_equal(
        predict(name, 0, raw, store=store, rescale="image", **FP32),
        predict(name, 0, raw, store=store, rescale=(own.low, own.high), **FP32))
    with pytest.raises(ValueError, match="'own' is not understood"):
        prediction_input(run, raw, rescale="own")
    for bad in ((float("-inf"), 5), (1000, 4000, 1), (5, 1), (0, float("nan"))):
        with pytest.raises(ValueError, match=r"is not a range: give \(low, high\), two finite"):
            prediction_input(run, raw, rescale=bad)
    # By the stored run's name, as predict takes it.
    from napari_dacapo.predict import image_intensity_range

    with mock.patch.dict("os.environ", {"NAPARI_DACAPO_ROOT": str(store.root)}):
        assert image_intensity_range(name, raw) == own
    # Trained without a range on uint8 data (divided by 255: about 0-1): the image's own
    # range, scaled to 0-1, stands in for it. On uint16 data (a 12-bit camera's may have
    # reached the network as 0.005-0.06) it does not.
    as_stored, _ = load_run(trained[1], trained[0])
    np.testing.assert_array_equal(prediction_input(as_stored, raw, rescale="image").data,
                                  scaled.data)
    wide = store_random_weights(trained[0], uint16_config("wide_as_stored"))
    with pytest.raises(ValueError, match=r"trained on intensities as stored \(uint16, divided "
                       r"by 65535\), not on a range"):
        prediction_input(load_run(wide, trained[0])[0], raw, rescale="image")


def test_an_input_on_another_intensity_scale_than_the_training_data_is_warned_of(trained):
    """A run trained without a range on uint8 images learned intensities of 0-1 (divided
    by 255). A uint16 image (divided by 65535: 300-2850 become 0.005-0.04) or a float
    one of 0-255 (used as it is) reaches its network on another scale: warned of, naming
    both and the fix. The own range (rescale='image') is the fix, and is not warned of."""
    from napari_dacapo.predict import IntensityScaleWarning, unchecked_intensity_scale

    store, name = trained
    run = load_run(name, store)[0]
    raw = blobs((40, 30))
    wide = raw.astype(np.uint16) * 10 + 1000  # as the tester's image
    said = (r"The input's intensities \(uint16, divided by 65535\) reach the network on "
            r"another scale than those of the data run 'tiny_2d' was trained on \(uint8, "
            r"0–255 scaled to 0–1\).*rescale='image'; CLI: --intensities image.*or convert "
            r"it to uint8")
    with pytest.warns(IntensityScaleWarning, match=said):
        prediction_input(run, wide)
    with pytest.warns(IntensityScaleWarning, match="uint16, divided by 65535"):
        predict(name, 6, wide, store=store)
    with pytest.warns(IntensityScaleWarning, match=r"float32, used as they are: .* lie far "
                      r"outside 0 to 1, where those of the data run 'tiny_2d'"):
        prediction_input(run, raw.astype(np.float32))
    with pytest.warns(IntensityScaleWarning, match=r"int8, divided by 127"):
        prediction_input(run, (raw // 2).astype(np.int8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntensityScaleWarning)
        prediction_input(run, raw)  # as trained
        prediction_input(run, raw.astype(np.float32) / 255)  # 0-1, as uint8 became
        own = prediction_input(run, wide, rescale="image")
        assert 0 <= float(np.median(own.data)) <= 1
        prediction_input(run, wide, rescale=(1000, 3550))  # given: meant
        prediction_input(run, wide, rescale=False)  # none: meant
        with unchecked_intensity_scale():
            prediction_input(run, wide)
    # A lazy float input is judged from a bounded sample, never read whole (160 GB).
    huge = da.full((200_000, 200_000), 255, dtype=np.float32, chunks=(1000, 1000))
    with pytest.warns(IntensityScaleWarning, match="255 to 255"):
        prediction_input(run, huge)


def test_intensity_scales_are_compared_as_the_network_reads_them():
    """Qt-free: integers by the number their dtype divides by, floats by their values
    against what integer training data could become; unknown training data, float
    training data and floats without values are not judged."""
    from napari_dacapo.predict import intensity_scale_mismatch, needs_values, own_range_fits

    u8, u16 = np.dtype(np.uint8), np.dtype(np.uint16)
    assert intensity_scale_mismatch(u16, [u8], "r") and not intensity_scale_mismatch(u8, [u8], "r")
    assert intensity_scale_mismatch(np.bool_, [u8], "r")
    assert not intensity_scale_mismatch(u8, [u8, u16], "r")  # one of them
    assert not intensity_scale_mismatch(u16, [], "r")  # training data not readable
    assert not intensity_scale_mismatch(u16, [np.float32], "r")  # its values not known
    assert not intensity_scale_mismatch(np.float32, [np.float32], "r", values=(0, 900))
    assert needs_values(np.float32, [u8]) and not needs_values(u16, [u8])
    assert not intensity_scale_mismatch(np.float32, [u8], "r")  # values not read
    for values, differ in (((0, 1), False), ((-0.5, 1.8), False), ((0, 255), True),
                           ((300, 2850), True), ((-3, 0.5), True), ((0.001, 0.004), False)):
        assert bool(intensity_scale_mismatch(np.float32, [u8], "r", values=values)) is differ
    assert not intensity_scale_mismatch(np.float32, [np.int16], "r", values=(-1.5, 1))
    assert own_range_fits([u8]) and not own_range_fits([u16]) and not own_range_fits([])
    refused = intensity_scale_mismatch(u8, [u16], "r")
    assert "Give the intensities that become 0 and 1" in refused
    assert "e.g. (0, 65535)" in refused and "rescale='image'" not in refused


@pytest.mark.filterwarnings("always::napari_dacapo.predict.IntensityScaleWarning")
def test_cli_predict_warns_of_another_intensity_scale_and_takes_the_images_own(
    trained, tmp_path
):
    store, name = trained
    wide = blobs((40, 30)).astype(np.uint16) * 10 + 1000
    write_zarr_array(tmp_path / "data.zarr", "raw", wide, voxel_size=(1, 1))
    base = ["predict", "--run", name, "--store", str(store.root),
            str(tmp_path / "data.zarr/raw")]
    result = CliRunner().invoke(main, [*base, str(tmp_path / "out.zarr/pred")])
    assert result.exit_code == 0, result.output
    assert "Warning: The input's intensities (uint16, divided by 65535)" in result.output
    result = CliRunner().invoke(main, [*base, str(tmp_path / "own.zarr/pred"),
                                       "--intensities", "image"])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output and "are scaled to 0–1" in result.output


def test_a_prediction_with_nan_values_is_warned_of(trained):
    """NaN in the input (missing data) spread into the prediction: predict and apply warn,
    naming the cause and the fix; a finite prediction gives no warning."""
    from napari_dacapo.predict import NonFiniteWarning, non_finite

    store, name = trained
    raw = blobs((40, 30)).astype(np.float32) / 255
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteWarning)
        assert not non_finite(predict(name, 6, raw, store=store))
    raw[10:14, 10:14] = np.nan
    with pytest.warns(NonFiniteWarning, match="nan_to_num"):
        assert non_finite(predict(name, 6, raw, store=store))
    with pytest.warns(NonFiniteWarning, match="NaN or infinite"):
        apply(name, "best:f1_score", raw, store=store)
    big = np.full((4, 4), 3e38, np.float32)  # a sum that overflows, of finite values
    assert not non_finite(big) and non_finite(np.where(np.eye(4) > 0, np.inf, big))


def test_apply_post_processes_with_the_best_parameters(trained):
    store, name = trained
    run, _ = load_run(name, store)
    raw = blobs((40, 30))
    prediction = predict(name, "best:f1_score", raw, store=store)
    # The checkpoint's criterion is the default; an explicit criterion picks its own set.
    for criterion, stored_as in ((None, "blob__f1_score"), ("precision", "blob__precision")):
        best_id = store.retrieve_best(name, stored_as)["parameters_id"]
        parameters = next(p for p in run.task.parameters if p.id == best_id)
        labels = apply(name, "best:f1_score", raw, criterion=criterion, store=store)
        assert labels.dtype.kind in "iub" and labels.shape[-2:] == raw.shape
        np.testing.assert_array_equal(
            labels, run.task.post_processor.process(prediction, parameters)
        )
    with pytest.warns(UserWarning, match="first parameter set"):
        apply(name, 6, raw, store=store)


def test_export_round_trip(trained, tmp_path):
    store, name = trained
    exported = export_model(name, "best:f1_score", tmp_path / "export", store=store)
    loaded = torch.jit.load(str(exported.model))
    sample = torch.from_numpy(np.load(exported.sample_input))
    run, _ = load_run(name, store)
    model = load_model(run, exported.iteration, store).eval()
    with torch.no_grad():
        np.testing.assert_allclose(loaded(sample).numpy(), model(sample).numpy(), atol=1e-6)
        np.testing.assert_allclose(loaded(sample).numpy(), np.load(exported.sample_output))

    metadata = yaml.safe_load(exported.metadata.read_text())
    assert metadata["run"] == name and metadata["iteration"] == exported.iteration
    assert metadata["input"]["shape"] == [1, 1, 32, 32]
    assert metadata["input"]["voxel_size"] == [1, 1]
    assert metadata["input"]["normalisation"]["training_raw_dtype"] == "uint8"
    assert metadata["output"]["shape"] == [1, 1, 16, 16]
    assert metadata["output"]["context"] == [8, 8]
    assert metadata["output"]["channels"] == ["blob"]
    best = store.retrieve_best(name, "blob__f1_score")
    post = metadata["post_processing"]
    assert post["criterion"] == "blob__f1_score"
    assert post["parameters"]["id"] == best["parameters_id"]
    assert post["validated_iteration"] == best["iteration"]
    with pytest.warns(UserWarning, match="records no post-processing parameters"):
        latest = export_model(name, "latest", tmp_path / "latest", store=store)
    assert yaml.safe_load(latest.metadata.read_text())["post_processing"]["parameters"] is None


def test_export_gives_voxel_sizes_in_the_training_datas_units(tmp_path):
    """A run trained on layers at a scale of 0.5 µm (saved by the plugin's writer) computes
    in integer units of 0.1 µm (world factor 10); its export says 0.5 µm, as the layers
    did, and keeps the integer voxel size as run_voxel_size."""
    from napari_dacapo._writer import write_layers

    raw, labels = synthetic_blobs((64, 64), seed=1)
    placed = {"scale": (0.5, 0.5), "translate": (0.0, 0.0), "units": ("micrometer",) * 2}
    path = str(tmp_path / "layers.zarr")
    write_layers(path, [(raw, {"name": "raw", **placed}, "image"),
                        (labels.astype(np.uint32), {"name": "labels", **placed}, "labels")])
    dataset = RawGTDatasetConfig(
        name="layers", raw_config=ZarrArrayConfig(name="raw", file_name=path, dataset="raw"),
        gt_config=ZarrArrayConfig(name="labels", file_name=path, dataset="labels"),
    )
    config = tiny_config(2, name="fractional", iterations=2, snapshot_interval=None)
    config = config.replace(datasplit_config=config.datasplit_config.replace(
        train_configs=[dataset], validate_configs=[]))
    store = FileStore(tmp_path / "runs")
    list(train_run(Run(config, store=store), store=store))
    assert world_factor_of(store.run_dir("fractional")) == 10  # recorded from the data

    with pytest.warns(UserWarning, match="records no post-processing parameters"):
        exported = export_model("fractional", "latest", tmp_path / "export", store=store)
    metadata = yaml.safe_load(exported.metadata.read_text())
    assert metadata["world_factor"] == 10
    model_input, output = metadata["input"], metadata["output"]
    assert model_input["voxel_size"] == output["voxel_size"] == [0.5, 0.5]
    assert model_input["units"] == ["micrometer", "micrometer"]
    assert model_input["run_voxel_size"] == output["run_voxel_size"] == [5, 5]
    assert output["context"] == [8, 8]  # input voxels, whatever the units


@pytest.mark.filterwarnings("ignore::napari_dacapo.predict.VoxelSizeWarning")
def test_cli_validate_predict_and_export(trained, tmp_path):
    store, name = trained
    root = tmp_path / "runs"
    shutil.copytree(store.root, root)  # validation writes scores: keep the shared run as is
    runner = CliRunner()

    validate = ["validate", "--run", name, "--store", str(root), "--iteration"]
    result = runner.invoke(main, [*validate, "3"])
    assert result.exit_code == 0, result.output
    assert "iteration 3" in result.output and "blob__f1_score" in result.output
    stored = FileStore(root).retrieve_validation_iteration_scores(name)
    assert [s.iteration for s in stored] == [3, 6]  # re-scored 3, kept 6
    result = runner.invoke(main, [*validate, "5"])
    assert result.exit_code != 0 and "stored iterations: [3, 6]" in result.output

    raw = blobs((40, 30))
    write_zarr_array(tmp_path / "data.zarr", "volumes/raw", raw, voxel_size=(2, 2), offset=(4, 6))
    args = ["predict", "--run", name, "--checkpoint", "best:f1_score", "--store", str(root),
            str(tmp_path / "data.zarr/volumes/raw")]
    result = runner.invoke(main, [*args, str(tmp_path / "data.zarr/pred")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, [*args, str(tmp_path / "out.zarr/labels"), "--labels"])
    assert result.exit_code == 0, result.output
    # Without a criterion: the first parameter set, and a warning said plainly.
    first = [a if a != "best:f1_score" else "latest" for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)  # shown as by default, not an error
        result = runner.invoke(main, [*first, str(tmp_path / "out.zarr/first"), "--labels"])
    assert result.exit_code == 0, result.output
    assert "Warning: No criterion given: post-processing with the first" in result.output
    assert "UserWarning" not in result.output and ".py:" not in result.output
    result = runner.invoke(main, [*args, str(tmp_path / "data.zarr/pred")])
    assert result.exit_code != 0 and "--overwrite" in result.output
    holes = (raw / 255).astype(np.float32)
    holes[10:14, 10:14] = np.nan  # missing data
    write_zarr_array(tmp_path / "holes.zarr", "raw", holes, voxel_size=(2, 2))
    result = runner.invoke(main, [*args[:-1], str(tmp_path / "holes.zarr/raw"),
                                  str(tmp_path / "holes.zarr/pred")])
    assert result.exit_code == 0, result.output
    assert "Warning: The prediction holds NaN or infinite values" in result.output
    assert "nan_to_num" in result.output
    assert "NaN" not in runner.invoke(main, [*args, str(tmp_path / "data.zarr/p2")]).output

    out = zarr.open_group(str(tmp_path / "data.zarr"), mode="r")["pred"]
    assert out.attrs["voxel_size"] == [2, 2] and out.attrs["offset"] == [4, 6]
    assert out.attrs["axis_names"] == ["c^", "y", "x"]
    file_store = FileStore(root)
    expected = predict(name, "best:f1_score", raw, store=file_store, voxel_size=(2, 2))
    np.testing.assert_array_equal(out[:], expected)
    labels = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["labels"]
    np.testing.assert_array_equal(
        labels[:], apply(name, "best:f1_score", raw, store=file_store, voxel_size=(2, 2))
    )
    assert labels.attrs["offset"] == [4, 6]

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)  # shown as by default, not an error
        result = runner.invoke(
            main, ["export", "--run", name, "--checkpoint", "latest", "--store", str(root),
                   str(tmp_path / "exported")]
        )
    assert result.exit_code == 0, result.output
    assert "Warning: No criterion given: the export records no post-processing" in result.output
    assert (tmp_path / "exported" / "model.torchscript.pt").is_file()
    assert yaml.safe_load((tmp_path / "exported" / "model.yaml").read_text())["iteration"] == 6
    export = ["export", "--run", name, "--checkpoint", "3", "--store", str(root),
              str(tmp_path / "exported")]
    result = runner.invoke(main, export)  # an earlier export is kept unless told
    assert result.exit_code == 1 and "already holds an exported model" in result.output
    assert "--overwrite" in result.output
    assert yaml.safe_load((tmp_path / "exported" / "model.yaml").read_text())["iteration"] == 6
    result = runner.invoke(main, [*export, "--overwrite", "--criterion", "f1_score"])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    exported = yaml.safe_load((tmp_path / "exported" / "model.yaml").read_text())
    assert exported["iteration"] == 3
    assert exported["post_processing"]["criterion"] == "blob__f1_score"


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "int32", "uint32",
                                   "float32", "float64", "bool"])
def test_read_input_scales_every_dtype_as_training_does(dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    rng = np.random.default_rng(0)
    if info is not None and info.bits <= 16:  # every value of the small types
        data = np.arange(info.min, info.max + 1).astype(dtype)
        data = np.resize(data, (256, -(-data.size // 256)))
    elif info is not None:
        data = rng.integers(info.min, info.max, (64, 64), dtype=dtype, endpoint=True)
        data[0, :2] = info.min, info.max
    else:
        data = (rng.random((64, 64)) * 3 - 1).astype(dtype)
    raw = NumpyArrayConfig(name="raw", data=data, voxel_size=Coordinate(1, 1),
                           offset=Coordinate(0, 0)).array()
    roi = Roi((-3, -2), (data.shape[0] + 5, data.shape[1] + 4))  # padded on every side
    expected = np.pad(raw_as_float32(data), ((3, 2), (2, 2)))[None]
    for tensor_dtype in (torch.float32, torch.bfloat16):
        read = read_input(raw, roi, tensor_dtype)
        assert read.dtype == tensor_dtype
        assert torch.equal(read, torch.from_numpy(expected).to(tensor_dtype))


@pytest.mark.parametrize("dims", [2, 3])
def test_tiles_cast_to_bf16_before_the_model_give_what_autocast_gives(dims, store):
    model = Run(tiny_config(dims), store=store).model.eval()
    memory_format = torch.channels_last if dims == 2 else torch.channels_last_3d
    model = model.to(memory_format=memory_format)
    group = torch.rand(1, *(s + 3 for s in model.eval_input_shape))
    tile = group[(slice(None), *(slice(1, 1 + s) for s in model.eval_input_shape))]  # a view
    assert tile_dtype(CPU, torch.bfloat16) == torch.bfloat16
    cuda = torch.device("cuda")
    assert tile_dtype(CPU, None) == tile_dtype(cuda, torch.bfloat16) == torch.float32
    cast = model_input([tile.to(tile_dtype(CPU, torch.bfloat16))], CPU, memory_format)
    assert cast.dtype == torch.bfloat16 and cast.is_contiguous(memory_format=memory_format)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(model_input([tile], CPU, memory_format))
        assert torch.equal(model(cast), expected)
