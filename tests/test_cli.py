"""The CLI: one smoke test per command, and DaCapo's own run YAML trained as it is."""

from __future__ import annotations

import os
import re

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, dacapo_yaml

from napari_dacapo.cli import main
from napari_dacapo.experiments import RunConfig, load_config


def test_example_under_a_new_name_when_an_older_example_is_stored(tmp_path):
    from napari_dacapo.examples import example_run_config
    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    older = example_run_config(2, iterations=2, levels=1)  # as another version made it
    store.store_run_config(older)
    result = CliRunner().invoke(main, ["example", "--iterations", "2", "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert "training this one as 'example_2d_2'" in result.output
    assert store.retrieve_run_config("example_2d").architecture_config == (
        older.architecture_config  # the older run is left as it was
    )
    assert store.latest_iteration("example_2d_2") == 2


def test_example_runs_and_continue(tmp_path):
    runner = CliRunner()
    store = str(tmp_path / "runs")
    result = runner.invoke(main, ["example", "--iterations", "2", "--store", store])
    assert result.exit_code == 0, result.output
    assert "Run 'example_2d' stored in" in result.output
    assert "validated iteration 2" in result.output

    result = runner.invoke(main, ["runs", "--store", store])
    assert result.exit_code == 0, result.output
    # Progress, and the best of the first criterion validated (headless users see it).
    assert re.search(r"example_2d: 2/2 iterations, best \w+ [0-9.e-]+ at iteration [12]\n",
                     result.output), result.output
    from napari_dacapo.store.file_store import FileStore

    with FileStore(store).lock("example_2d"):  # as a trainer holds it
        result = runner.invoke(main, ["runs", "--store", store])
    assert f", training now (pid {os.getpid()})" in result.output
    assert "missing" not in result.output
    for path in (tmp_path / "runs" / "example_2d" / "checkpoints").glob("*.pt"):
        path.rename(path.with_suffix(".moved"))
    result = runner.invoke(main, ["runs", "--store", store])
    assert "(its checkpoint is missing: pruned or deleted)" in result.output
    for path in (tmp_path / "runs" / "example_2d" / "checkpoints").glob("*.moved"):
        path.rename(path.with_suffix(".pt"))

    result = runner.invoke(
        main, ["train", "--run", "example_2d", "--iterations", "3", "--store", store,
               "--no-validate"]
    )
    assert result.exit_code == 0, result.output
    assert "from iteration 2 to 3" in result.output

    result = runner.invoke(main, ["train", "--run", "nope", "--store", store])
    assert result.exit_code != 0 and "no stored run 'nope'" in result.output


def test_dacapo_run_yaml_loads_reports_extras_and_trains(tmp_path):
    # Same run as DaCapo wrote it, with an input shape that fits the 64x64 fixture data.
    path = dacapo_yaml(
        tmp_path, "run_distance_2d.yaml",
        {"input_shape: !!python/tuple\n  - 92\n  - 92":
         "input_shape: !!python/tuple\n  - 44\n  - 44"},
    )
    ignored: list[str] = []
    config = load_config(path, ignored=ignored)
    assert isinstance(config, RunConfig)
    assert type(config.trainer_config).__name__ == "DefaultTrainerConfig"
    assert config.architecture_config.eval_shape_increase == (32, 32)
    assert "trainer_config.num_data_fetchers" in ignored

    result = CliRunner().invoke(main, ["train", str(path), "--store", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "num_data_fetchers" in result.output  # reported, not a crash
    assert "validated iteration 10" in result.output


def test_dacapo_3d_affinities_yaml_loads(tmp_path):
    config = load_config(dacapo_yaml(tmp_path, "run_affinities_3d.yaml"))
    assert config.task_config.neighborhood[3] == (2, 0, 0)
    assert config.start_config.run == "pretrained_affs_3d"
    assert config.datasplit_config.train_configs[0].weight == 2


def test_input_shape_larger_than_the_data_is_refused_before_any_work(tmp_path):
    store = tmp_path / "runs"
    path = dacapo_yaml(tmp_path, "run_distance_2d.yaml")  # 92x92 input on 64x64 data
    result = CliRunner().invoke(main, ["train", str(path), "--store", str(store)])
    assert result.exit_code != 0
    assert "input_shape" in result.output or "input shape" in result.output
    assert not (store / "distance_2d").exists(), "a refused run must leave the store untouched"


@pytest.mark.parametrize("args", [[], ["x.yaml", "--run", "y"]])
def test_train_needs_exactly_one_source(args):
    result = CliRunner().invoke(main, ["train", *args])
    assert result.exit_code != 0 and "either a CONFIG file or --run NAME" in result.output


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("__type__: RunConfig\nname: x\n", "missing required field"),
        ("a: [1, 2\n", "not valid YAML"),
        ("", "must hold a mapping"),
    ],
)
def test_a_config_that_does_not_load_is_a_message_not_a_traceback(tmp_path, yaml_text, message):
    path = tmp_path / "run.yaml"
    path.write_text(yaml_text)
    result = CliRunner().invoke(main, ["train", str(path), "--store", str(tmp_path / "runs")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert result.exc_info[0] is SystemExit  # click's message, no exception escaped
    assert not (tmp_path / "runs").exists()  # nothing stored


def test_an_unknown_device_is_refused_before_training(tmp_path):
    store = tmp_path / "runs"
    result = CliRunner().invoke(
        main, ["example", "--iterations", "2", "--device", "banana", "--store", str(store)]
    )
    assert result.exit_code == 1 and result.exc_info[0] is SystemExit
    assert "Error: 'banana' is not a device name. Use 'cpu'" in result.output
    assert not (store / "example_2d").exists()  # refused before the run was stored


def test_a_run_name_stored_with_another_config_is_a_message_not_a_traceback(tmp_path):
    runner = CliRunner()
    store = str(tmp_path / "runs")
    assert runner.invoke(main, ["example", "--iterations", "1", "--store", store]).exit_code == 0
    result = runner.invoke(main, ["example", "--iterations", "1", "--dims", "3", "--name",
                                  "example_2d", "--store", store])
    assert result.exit_code == 1
    assert "Error: Run 'example_2d' is already stored" in result.output
    assert "Traceback" not in result.output


def test_a_run_trained_with_dacapo_is_imported_and_predicts_as_in_dacapo(tmp_path):
    import numpy as np
    import torch
    import zarr

    from napari_dacapo.checkpoints import load_model, load_run
    from napari_dacapo.predict import predict
    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    config = str(dacapo_yaml(tmp_path, "run_distance_2d.yaml"))
    weights = str(FIXTURES / "weights" / "distance_2d")
    command = ["import-dacapo", config, weights, "--store", str(store.root)]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    assert "as 'distance_2d' (checkpoint of iteration 1)" in result.output

    run, _ = load_run("distance_2d", store)
    model = load_model(run, 1, store).eval()
    reference = np.load(FIXTURES / "weights" / "distance_2d_forward.npz")
    with torch.no_grad():
        output = model(torch.from_numpy(reference["input"])).numpy()
    np.testing.assert_allclose(output, reference["output"], rtol=1e-5, atol=1e-6)
    raw = zarr.open_array(str(FIXTURES / "data.zarr" / "2d" / "raw"), mode="r")
    prediction = predict("distance_2d", "latest", raw, store=store, precision="fp32")
    assert prediction.shape == (1, 64, 64) and np.isfinite(prediction).all()

    again = CliRunner().invoke(main, command)  # the name is taken now
    assert again.exit_code != 0 and "stored already" in again.output
    renamed = CliRunner().invoke(main, [*command, "--name", "from_dacapo", "--checkpoint", "2"])
    assert renamed.exit_code != 0 and "no checkpoint at iteration 2" in renamed.output
    assert not store.has_run("from_dacapo")


def test_iterations_continue_a_stopped_run_exactly_that_far(tmp_path):
    import threading

    from conftest import tiny_config

    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore
    from napari_dacapo.train import IterationDone, train_run

    store = FileStore(tmp_path / "runs")
    config = tiny_config(2, iterations=50, validation_interval=100)
    stop = threading.Event()
    for event in train_run(Run(config, store=store), store=store, stop=stop):
        if isinstance(event, IterationDone) and event.iteration == 1:
            stop.set()  # stopped at 2 of 50
    args = ["train", "--run", config.name, "--store", str(store.root), "--no-validate"]
    result = CliRunner().invoke(main, [*args, "--iterations", "2"])
    assert result.exit_code == 2 and "has trained 2 iterations already" in result.output
    result = CliRunner().invoke(main, [*args, "--iterations", "4"])
    assert result.exit_code == 0, result.output
    assert "from iteration 2 to 4" in result.output
    assert store.latest_iteration(config.name) == 4
    assert store.retrieve_run_config(config.name).num_iterations == 50  # kept


@pytest.mark.filterwarnings(
    "always::napari_dacapo.experiments.datasplits.datasets.checks.DataWarning")
def test_train_warns_of_a_class_without_labels_before_training(tmp_path):
    """A one-hot class that no training label holds is never learned (its scores are NaN,
    its best checkpoints missing): said before training, as the training panel says it."""
    from conftest import tiny_config

    from napari_dacapo.experiments import NumpyArrayConfig, OneHotTaskConfig
    from napari_dacapo.store.file_store import FileStore

    config = tiny_config(2, name="two_of_three", iterations=1)
    split = config.datasplit_config

    def binary(dataset):  # labels 0/1: class 'b' is never painted
        gt = dataset.gt_config
        return dataset.replace(gt_config=NumpyArrayConfig(
            name=gt.name, data=(gt.data > 0).astype("uint8"), voxel_size=gt.voxel_size))

    config = config.replace(
        task_config=OneHotTaskConfig(name="classes", classes=["background", "a", "b"]),
        datasplit_config=split.replace(train_configs=[binary(d) for d in split.train_configs],
                                       validate_configs=[]),
    )
    store = FileStore(tmp_path / "runs")
    store.store_run_config(config)
    result = CliRunner().invoke(main, ["train", "--run", "two_of_three", "--store",
                                       str(store.root), "--no-validate"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    warned = [i for i, line in enumerate(lines) if line.startswith(
        "Warning: Class 'b' has no labelled voxel in the training labels")]
    assert len(warned) == 1, result.output
    assert warned[0] < next(i for i, line in enumerate(lines) if line.startswith("Training"))
    # The API warns alike, before training; a caller that showed the warning already (the
    # training panel) turns it off.
    import warnings

    from napari_dacapo.experiments.datasplits.datasets.checks import DataWarning
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.train import train_run

    other = config.replace(name="api")
    with pytest.warns(DataWarning, match="Class 'b' has no labelled voxel"):
        events = train_run(Run(other, store=store), store=store, validate=False)
        next(events)
        events.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        list(train_run(Run(other.replace(name="quiet"), store=store), store=store,
                       validate=False, warn=False))


def test_example_with_other_iterations_names_the_command_that_continues_it(tmp_path):
    """The example's validation interval follows its iterations, so its config differs;
    train --run continues the stored run."""
    from napari_dacapo.examples import example_run_config
    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    # As `example --name ex2 --iterations 2` stored it.
    store.store_run_config(example_run_config(2, name="ex2", iterations=2, validation_interval=1))
    result = CliRunner().invoke(main, ["example", "--name", "ex2", "--iterations", "4",
                                       "--store", str(store.root)])
    assert result.exit_code == 1, result.output
    assert "To train it further, run: napari-dacapo train --run ex2 --iterations 4" in (
        result.output)
    assert store.latest_iteration("ex2") is None  # nothing trained


def test_validate_help_names_every_checkpoint_it_takes():
    result = CliRunner().invoke(main, ["validate", "--help"])
    assert result.exit_code == 0 and "'best:<criterion>'" in result.output


def test_segment_refuses_an_incomplete_prediction_before_saying_it_starts(tmp_path):
    """Its missing blocks hold zeros: the refusal is the first thing said, no
    'Post-processing ...' line as if work had started."""
    import numpy as np
    from conftest import tiny_config

    from napari_dacapo.blockwise.scheduler import fresh_stamp
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )
    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    store.store_run_config(tiny_config(2, name="tiny"))
    unfinished = "the predict command writing it was interrupted; predict it again"
    write_zarr_array(tmp_path / "pred.zarr", "pred", np.zeros((1, 16, 16), np.float32),
                     voxel_size=(1, 1), axis_names=["c^", "y", "x"],
                     attributes=fresh_stamp(unfinished))  # as an interrupted predict leaves it
    result = CliRunner().invoke(main, [
        "segment", "--run", "tiny", f"{tmp_path}/pred.zarr/pred", f"{tmp_path}/seg.zarr/labels",
        "--workers", "1", "--store", str(store.root)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: The prediction {tmp_path}/pred.zarr/pred is "
                                    f"incomplete: {unfinished}."), result.output
    assert "Post-processing" not in result.output
    assert not (tmp_path / "seg.zarr").exists()


def test_export_of_a_cut_short_checkpoint_says_so_first(tmp_path):
    """An unusable checkpoint is the error, said before any warning about the criterion
    (there is nothing to record post-processing parameters for)."""
    import warnings

    from conftest import store_random_weights, tiny_config

    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    name = store_random_weights(store, tiny_config(2, name="tiny"), iteration=3)
    checkpoint = store.checkpoint_path(name, 3)
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[:200])  # a copy stopped halfway
    args = ["export", "--run", name, "--store", str(store.root), str(tmp_path / "exported")]
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)  # shown as by default, not an error
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: Checkpoint {checkpoint} cannot be read"), (
        result.output)
    assert "Warning" not in result.output and not (tmp_path / "exported").exists()
    assert "another iteration" not in result.output  # there is none

    checkpoint.write_bytes(whole)
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Warning: No criterion given"), result.output
