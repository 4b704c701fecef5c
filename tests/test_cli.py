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
    assert result.exit_code != 0 and "No run named 'nope' in the store" in result.output


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


# -- stopping, finished runs, messages ---------------------------------------------------------


def test_sigterm_stops_training_after_an_iteration_with_a_checkpoint_and_exit_143(tmp_path):
    """Batch systems (SLURM, LSF) end a job at its time limit with SIGTERM, sent to all its
    processes (a forked batch worker too, which the trainer stops): training stops like
    with Ctrl-C, and the exit code tells a job script that the run did not finish."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    # The example's data are in memory, so its batch worker (one torch thread leaves a
    # core for it) is forked from the trainer, with the trainer's signal handlers.
    process = subprocess.Popen(
        [sys.executable, "-m", "napari_dacapo.cli", "example", "--iterations", "100000",
         "--name", "ex", "--store", str(store.root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    errors: list[str] = []  # the progress bar, read as it comes
    reader = threading.Thread(target=lambda: errors.extend(iter(
        lambda: process.stderr.read(1), "")), daemon=True)
    reader.start()
    try:
        assert process.stdout.readline().startswith("Training 'ex' on cpu"), "".join(errors)
        deadline = time.monotonic() + 60
        while not re.search(r"\| [1-9]\d*/100000", "".join(errors)):  # an iteration is done
            assert process.poll() is None and time.monotonic() < deadline, "".join(errors)
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGTERM)  # every process of the job, as SLURM does
        output = process.stdout.read()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        reader.join(timeout=10)
    errors_text = "".join(errors)
    assert process.returncode == 128 + signal.SIGTERM, output + errors_text
    assert errors_text.count("SIGTERM received: stopping after this iteration") == 1
    stopped = store.latest_iteration("ex")
    assert stopped and f"checkpoint saved at iteration {stopped}\n" in output
    assert output.endswith(
        f"Run 'ex' stopped at iteration {stopped} of 100000 (SIGTERM); stored in "
        f"{store.run_dir('ex')}. To continue it, run: napari-dacapo train --run ex "
        f"--store {store.root}\n"), output
    assert "Run 'ex' stored in" not in output  # as a finished run says


@pytest.mark.parametrize("number", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("twice", [False, True])
def test_a_stop_signal_exits_with_128_plus_its_number_and_a_second_aborts(
    tmp_path, monkeypatch, number, twice
):
    """A stopped run is no finished run to a job script; a user who insists is obeyed at
    once, told how to continue from the latest checkpoint."""
    import signal

    from conftest import tiny_config

    from napari_dacapo import cli, train
    from napari_dacapo.store.file_store import FileStore

    number = getattr(signal, number)

    def stopped_by_signals(run, store, stop, device, validate):
        yield train.RunStarted(run.name, 0, 6, "cpu")
        # Without a handler SIGTERM would end pytest itself.
        assert signal.getsignal(number) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        signal.raise_signal(number)
        assert stop.is_set()
        yield train.IterationDone(0, 0.5, 0.1, 1.0)
        if twice:
            signal.raise_signal(number)
            pytest.fail("a second signal must abort at once")
        yield train.CheckpointSaved(1)
        yield train.RunStopped(1)

    monkeypatch.setattr(train, "train_run", stopped_by_signals)
    monkeypatch.setattr(cli, "_SAME_SIGTERM_S", 0.0)  # the second comes at once here
    store = FileStore(tmp_path / "runs")
    store.store_run_config(tiny_config(2, name="tiny"))
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    result = CliRunner().invoke(main, ["train", "--run", "tiny", "--store", str(store.root)])
    assert result.exit_code == 128 + number, result.output
    name = "Ctrl-C" if number == signal.SIGINT else "SIGTERM"
    command = f"napari-dacapo train --run tiny --store {store.root}"
    if twice:
        assert f"Aborted by a second signal ({name}). To train the run on from iteration 0, " \
               f"run: {command}\n" in result.output
    else:
        assert (f"\nRun 'tiny' stopped at iteration 1 of 6 ({name}); stored in "
                f"{store.run_dir('tiny')}. To continue it, run: {command}\n") in result.output
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers


def test_a_sigterm_that_arrives_twice_at_once_stops_the_run_once(tmp_path, monkeypatch):
    """SLURM signals every process of a job and srun forwards what it gets: one time limit
    must not abort the run it asks to stop."""
    import signal

    from conftest import tiny_config

    from napari_dacapo import train
    from napari_dacapo.store.file_store import FileStore

    def stopped_twice_at_once(run, store, stop, device, validate):
        yield train.RunStarted(run.name, 0, 6, "cpu")
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        yield train.IterationDone(0, 0.5, 0.1, 1.0)
        yield train.CheckpointSaved(1)
        yield train.RunStopped(1)

    monkeypatch.setattr(train, "train_run", stopped_twice_at_once)
    store = FileStore(tmp_path / "runs")
    store.store_run_config(tiny_config(2, name="tiny"))
    result = CliRunner().invoke(main, ["train", "--run", "tiny", "--store", str(store.root)])
    assert result.exit_code == 143, result.output
    assert "stopped at iteration 1 of 6 (SIGTERM)" in result.output
    assert result.output.count("SIGTERM received") == 1 and "Aborted" not in result.output


def test_a_complete_run_says_so_and_how_to_train_it_further_touching_nothing(tmp_path):
    from conftest import store_random_weights, tiny_config

    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    name = store_random_weights(store, tiny_config(2, name="tiny", iterations=6), iteration=6)
    before = {p: p.stat().st_mtime_ns for p in store.run_dir(name).rglob("*")}
    result = CliRunner().invoke(main, ["train", "--run", name, "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Run 'tiny' is complete at iteration 6 (stored in {store.run_dir(name)}). To train "
        f"it further, run: napari-dacapo train --run tiny --store {store.root} --iterations "
        f"M, with M above 6.\n")
    assert {p: p.stat().st_mtime_ns for p in store.run_dir(name).rglob("*")} == before


def test_train_of_an_unknown_run_names_the_store_and_how_to_point_at_another(tmp_path):
    from conftest import tiny_config

    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    store.store_run_config(tiny_config(2, name="tiny"))
    result = CliRunner().invoke(main, ["train", "--run", "nope", "--store", str(store.root)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: No run named 'nope' in the store {store.root} (stored runs: tiny). Check the "
        f"name, or point NAPARI_DACAPO_ROOT (or --store) at the store that holds it.\n")
    missing = tmp_path / "mistyped"
    result = CliRunner().invoke(main, ["train", "--run", "tiny", "--store", str(missing)])
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: No run named 'tiny': the store {missing} does not exist. Check that path")
    assert not missing.exists()


def test_runs_of_a_store_that_does_not_exist_says_so(tmp_path, monkeypatch):
    import platformdirs

    missing = tmp_path / "mistyped"
    result = CliRunner().invoke(main, ["runs", "--store", str(missing)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: The store {missing} does not exist. Check the path given by --store (or "
        f"NAPARI_DACAPO_ROOT); runs are stored there when one is first trained.\n")
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(main, ["runs", "--store", str(tmp_path / "file")])
    assert result.exit_code == 2 and "is a file" in result.output
    # The default store is missing until a run is trained: nothing wrong.
    monkeypatch.delenv("NAPARI_DACAPO_ROOT", raising=False)
    monkeypatch.setattr(platformdirs, "user_data_path", lambda app: tmp_path / "data")
    result = CliRunner().invoke(main, ["runs"])
    assert result.exit_code == 0
    assert result.output == f"No runs stored in {tmp_path / 'data' / 'runs'}.\n"


def test_validate_while_the_run_trains_says_to_wait_not_to_rename(tmp_path):
    from conftest import store_random_weights, tiny_config

    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    name = store_random_weights(store, tiny_config(2, name="tiny"), iteration=3)
    with store.lock(name, to_train=True):  # as a trainer holds it
        result = CliRunner().invoke(main, ["validate", "--run", name, "--iteration", "3",
                                           "--store", str(store.root)])
    assert result.exit_code == 1
    # Held here, as by this process's own training panel.
    assert (f"Error: Run 'tiny' is being trained in this process (e.g. a run still stopping "
            f"after its training panel was closed) (pid {os.getpid()}). Wait for the training "
            f"to finish, or stop it, then try again.") in result.output
    assert "another run name" not in result.output


def _never_validated_run(tmp_path) -> tuple[str, str]:
    """A stored run with a checkpoint but no validation, and its store's root."""
    from conftest import store_random_weights, tiny_config

    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path / "runs")
    return store_random_weights(store, tiny_config(2, name="tiny"), iteration=3), str(store.root)


def test_an_unknown_criterion_is_explained_in_the_form_its_option_takes(tmp_path):
    """--criterion takes a criterion; a checkpoint takes best:<criterion>."""
    import numpy as np

    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    name, root = _never_validated_run(tmp_path)
    write_zarr_array(tmp_path / "in.zarr", "raw", np.zeros((32, 32), np.float32),
                     voxel_size=(1, 1), axis_names=["y", "x"])
    result = CliRunner().invoke(main, ["predict", "--store", root, "--run", name, "--criterion",
                                       "nope", f"{tmp_path}/in.zarr/raw",
                                       f"{tmp_path}/out.zarr/labels"])
    assert result.exit_code == 1, result.output
    assert "'nope' is not a criterion of its task" in result.output
    assert re.search(r"Name one of those, e.g. '\w+'\.\n$", result.output), result.output
    assert "best:" not in result.output
    result = CliRunner().invoke(main, ["predict", "--store", root, "--run", name,
                                       "--checkpoint", "best:nope", f"{tmp_path}/in.zarr/raw",
                                       f"{tmp_path}/out.zarr/pred"])
    assert result.exit_code == 1, result.output
    assert re.search(r"Name one of those, e.g. 'best:\w+'\.\n$", result.output), result.output


def test_segment_with_a_criterion_never_validated_says_to_validate_the_run(tmp_path):
    """Only validation finds a criterion's best parameters, and segment takes no checkpoint:
    no 'or use latest or an iteration'."""
    import numpy as np

    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    name, root = _never_validated_run(tmp_path)
    write_zarr_array(tmp_path / "pred.zarr", "pred", np.zeros((1, 32, 32), np.float32),
                     voxel_size=(1, 1), axis_names=["c^", "y", "x"])
    result = CliRunner().invoke(main, ["segment", "--store", root, "--run", name, "--criterion",
                                       "dice", f"{tmp_path}/pred.zarr/pred",
                                       f"{tmp_path}/seg.zarr/labels", "--workers", "1"])
    assert result.exit_code == 1, result.output
    assert re.search(
        rf"has no best post-processing parameters for '\w*dice' yet: it has not been "
        rf"validated. Validate it first: napari-dacapo validate --run {name} --iteration "
        rf"latest.\n$", result.output), result.output
    assert "'latest' or an iteration" not in result.output  # segment takes no checkpoint


@pytest.mark.filterwarnings("always::napari_dacapo.predict.VoxelSizeWarning")
def test_predict_takes_the_voxel_size_of_an_input_without_one_and_says_it_once(
    tmp_path, caplog
):
    """An input without geometry attributes: that it has none is said once (the input is
    opened more than once), with the option that gives them; --voxel-size and --offset
    place it, and the warning of a voxel size other than the training data's names the
    option."""
    import logging

    import numpy as np
    import zarr

    name, root = _never_validated_run(tmp_path)
    zarr.open_array(str(tmp_path / "bare.zarr"), path="raw", mode="w", shape=(32, 32),
                    dtype="float32", zarr_format=2)[:] = np.random.default_rng(0).random((32, 32))
    args = ["predict", "--store", root, "--run", name, "--checkpoint", "3",
            f"{tmp_path}/bare.zarr/raw"]
    caplog.set_level(logging.INFO)
    result = CliRunner().invoke(main, [*args, f"{tmp_path}/out.zarr/pred"])
    assert result.exit_code == 0, result.output
    said = [r.getMessage() for r in caplog.records if "geometry attributes" in r.getMessage()]
    assert len(said) == 1 and "give --voxel-size and --offset if that is wrong" in said[0]

    caplog.clear()
    result = CliRunner().invoke(main, [*args, f"{tmp_path}/out.zarr/placed", "--voxel-size",
                                       "2,2", "--offset", "4,6"])
    assert result.exit_code == 0, result.output
    placed = zarr.open_array(str(tmp_path / "out.zarr"), path="placed", mode="r")
    assert placed.attrs["voxel_size"] == [2, 2] and placed.attrs["offset"] == [4, 6]
    assert "Warning: The input's voxel size (2, 2) differs" in result.output
    assert "give the right one with --voxel-size" in result.output
    assert "ZarrArrayConfig" not in result.output
    assert not [r for r in caplog.records if "geometry attributes" in r.getMessage()]

    result = CliRunner().invoke(main, [*args, f"{tmp_path}/out.zarr/x", "--voxel-size", "2"])
    assert result.exit_code == 2
    assert "--voxel-size: 1 value(s) given, but INPUT has 2 spatial axes (y, x)" in (
        result.output), result.output
    result = CliRunner().invoke(main, [*args, f"{tmp_path}/out.zarr/x", "--offset", "a,b"])
    assert result.exit_code == 2 and "--offset" in result.output
