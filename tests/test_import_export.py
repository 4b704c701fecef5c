"""Importing DaCapo runs (``import-dacapo``: which iteration a checkpoint is of) and what
an export records of the training data (``model.yaml``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import FIXTURES, dacapo_yaml, store_random_weights, tiny_config

from napari_dacapo.checkpoints import load_run
from napari_dacapo.cli import main
from napari_dacapo.dacapo_import import import_dacapo_run
from napari_dacapo.experiments.starts.dacapo_weights import DaCapoWeightsError
from napari_dacapo.store.file_store import FileStore

#: DaCapo's checkpoint of its run_distance_2d.yaml (num_iterations 10), at iteration 1.
DACAPO_CHECKPOINT = FIXTURES / "weights" / "distance_2d" / "checkpoints" / "iterations" / "1"


def dacapo_run_at(tmp_path, iteration: int):
    """A DaCapo run folder as DaCapo's weights store lays it out, holding the fixture's
    checkpoint as ``checkpoints/iterations/<iteration>``."""
    folder = tmp_path / "dacapo_run" / "checkpoints" / "iterations"
    folder.mkdir(parents=True)
    shutil.copyfile(DACAPO_CHECKPOINT, folder / str(iteration))
    return folder.parent.parent


@pytest.mark.filterwarnings("always:The checkpoint is of iteration 300:UserWarning")
def test_a_checkpoint_beyond_num_iterations_is_imported_as_a_complete_run(tmp_path):
    """DaCapo trains a run while its iteration is below num_iterations: a checkpoint past
    it is of a finished run. It is stored with num_iterations raised to its iteration, so
    that runs, train --run and the training panel (which read num_iterations) agree."""
    store = FileStore(tmp_path / "runs")
    config = str(dacapo_yaml(tmp_path, "run_distance_2d.yaml"))  # num_iterations: 10
    weights = str(dacapo_run_at(tmp_path, 300))
    result = CliRunner().invoke(main, ["import-dacapo", config, weights,
                                       "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert "(checkpoint of iteration 300)" in result.output
    assert "beyond the config's num_iterations (10)" in result.output
    assert store.retrieve_run_config("distance_2d").num_iterations == 300
    assert store.checkpoint_iterations("distance_2d") == [300]

    runs = CliRunner().invoke(main, ["runs", "--store", str(store.root)])
    assert "distance_2d: 300/300 iterations" in runs.output, runs.output
    train = CliRunner().invoke(main, ["train", "--run", "distance_2d",
                                      "--store", str(store.root)])
    assert train.exit_code == 0, train.output
    assert "is complete at iteration 300" in train.output


def test_a_checkpoint_within_num_iterations_keeps_its_config(tmp_path):
    store = FileStore(tmp_path / "runs")
    config = dacapo_yaml(tmp_path, "run_distance_2d.yaml")
    assert import_dacapo_run(config, dacapo_run_at(tmp_path, 4), store=store) == (
        "distance_2d", 4)
    assert store.retrieve_run_config("distance_2d").num_iterations == 10


def long_config(tmp_path):
    """The fixture's DaCapo run YAML, to be trained for 500 iterations."""
    return dacapo_yaml(tmp_path, "run_distance_2d.yaml",
                       {"num_iterations: 10": "num_iterations: 500"})


def _own_checkpoint(tmp_path, iteration):
    """A checkpoint that napari-dacapo's store wrote (``checkpoints/<N>.pt``)."""
    own = FileStore(tmp_path / "own")
    import_dacapo_run(long_config(tmp_path), dacapo_run_at(tmp_path / "own_source", iteration),
                      store=own)
    return own.checkpoint_path("distance_2d", iteration)


def _named_pt(tmp_path):
    return _own_checkpoint(tmp_path, 300)


def _renamed_own(tmp_path):
    return shutil.copyfile(_own_checkpoint(tmp_path, 300), tmp_path / "model.pth")


def _best_link(tmp_path):
    """DaCapo's store_best: ``checkpoints/<dataset>/<criterion>`` links to the iteration."""
    run = dacapo_run_at(tmp_path, 300)
    best = run / "checkpoints" / "validate_ds" / "voi"
    best.parent.mkdir()
    best.symlink_to(run / "checkpoints" / "iterations" / "300")
    return best


def _best_copy(tmp_path):
    """DaCapo's best weights copied without their link: its ``<criterion>.json`` beside
    them records the iteration."""
    best = shutil.copyfile(DACAPO_CHECKPOINT, tmp_path / "voi")
    (tmp_path / "voi.json").write_text(json.dumps({"iteration": 300}))
    return best


@pytest.mark.parametrize("layout", [_named_pt, _renamed_own, _best_link, _best_copy])
def test_the_iteration_is_the_one_the_checkpoint_is_stored_as(tmp_path, layout):
    store = FileStore(tmp_path / "runs")
    weights = layout(tmp_path)
    name, iteration = import_dacapo_run(long_config(tmp_path), weights, name="imp", store=store)
    assert iteration == 300
    assert store.checkpoint_iterations("imp") == [300]


def test_an_iteration_no_store_records_is_given_or_stored_as_0_with_a_warning(tmp_path):
    store = FileStore(tmp_path / "runs")
    config = dacapo_yaml(tmp_path, "run_distance_2d.yaml")
    weights = shutil.copyfile(DACAPO_CHECKPOINT, tmp_path / "weights.bin")
    assert import_dacapo_run(config, weights, name="given", store=store, iteration=7) == (
        "given", 7)
    with pytest.warns(UserWarning, match="iteration of the checkpoint .* is unknown"):
        assert import_dacapo_run(config, weights, name="unknown", store=store)[1] == 0

    with pytest.raises(DaCapoWeightsError, match="is of iteration 300 .*, not 250"):
        import_dacapo_run(config, dacapo_run_at(tmp_path, 300), name="wrong", store=store,
                          iteration=250)
    assert not store.has_run("wrong")


def test_an_imported_run_records_its_training_data_for_prediction(tmp_path):
    """As a trained run does: an imported DaCapo run, predicted where its data is not
    reachable, still knows the voxel size and dtype to check inputs against."""
    from napari_dacapo.predict import training_raws
    from napari_dacapo.store.file_store import read_training_data

    store = FileStore(tmp_path / "runs")
    name, _ = import_dacapo_run(dacapo_yaml(tmp_path, "run_distance_2d.yaml"),
                                dacapo_run_at(tmp_path, 4), store=store)
    recorded = read_training_data(store.run_dir(name))["raw"]
    run = load_run(name, store)[0]
    assert [(list(r.voxel_size), r.dtype.str) for r in training_raws(run)] == [
        (r["voxel_size"], r["dtype"]) for r in recorded]


def test_the_command_line_gives_an_iteration_with_its_option(tmp_path):
    """The warning for an unknown iteration names --iteration: the option must exist."""
    store = FileStore(tmp_path / "runs")
    config = str(dacapo_yaml(tmp_path, "run_distance_2d.yaml"))
    weights = str(shutil.copyfile(DACAPO_CHECKPOINT, tmp_path / "weights.bin"))
    result = CliRunner().invoke(main, ["import-dacapo", config, weights, "--iteration", "7",
                                       "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert "(checkpoint of iteration 7)" in result.output
    assert store.checkpoint_iterations("distance_2d") == [7]


@pytest.mark.parametrize("cropped", [False, True], ids=["rescaled", "cropped"])
def test_export_gives_the_stored_dtype_of_raw_data_it_rescales(tmp_path, cropped):
    """uint8 raw data trained through an IntensitiesArrayConfig (0-255): the export says
    uint8 (the data to feed), and the range that maps it to [0, 1]; not the float32 of the
    rescaled array. Also when the rescaled array is cropped."""
    from funlib.geometry import Roi

    from napari_dacapo.experiments import IntensitiesArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.crop_array_config import (
        CropArrayConfig,
    )
    from napari_dacapo.export import export_model

    config = tiny_config(2, name="rescaled")
    split = config.datasplit_config
    train = split.train_configs[0]
    assert train.raw_config.data.dtype == np.uint8
    raw = IntensitiesArrayConfig(name="raw_0_255", source_array_config=train.raw_config,
                                 min=0, max=255)
    if cropped:
        raw = CropArrayConfig(name="raw_crop", source_array_config=raw,
                              roi=Roi((0, 0), (48, 48)))
    config = config.replace(datasplit_config=split.replace(
        train_configs=[train.replace(raw_config=raw)], validate_configs=[]))
    store = FileStore(tmp_path / "runs")
    name = store_random_weights(store, config)
    with pytest.warns(UserWarning, match="records no post-processing parameters"):
        exported = export_model(name, "latest", tmp_path / "export", store=store)
    normalisation = yaml.safe_load(exported.metadata.read_text())["input"]["normalisation"]
    assert normalisation["training_raw_dtype"] == "uint8"
    assert normalisation["intensity_range"] == [0.0, 255.0]
