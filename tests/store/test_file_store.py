"""FileStore: where a run lives on disk, how it refuses conflicting writes, and its lock."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import subprocess
import sys

import numpy as np
import platformdirs
import pytest
import torch

from napari_dacapo.experiments.configs import Config, option
from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import (
    ArrayConfig,
    NumpyArrayConfig,
)
from napari_dacapo.experiments.tasks.evaluators.evaluation_scores import EvaluationScores
from napari_dacapo.experiments.tasks.post_processors.post_processor_parameters import (
    PostProcessorParameters,
)
from napari_dacapo.experiments.training_iteration_stats import TrainingIterationStats
from napari_dacapo.experiments.training_stats import TrainingStats
from napari_dacapo.experiments.validation_iteration_scores import ValidationIterationScores
from napari_dacapo.experiments.validation_scores import ValidationScores
from napari_dacapo.store import (
    CheckpointError,
    FileStore,
    LocalArrayIdentifier,
    RunLockedError,
    StoreError,
)
from napari_dacapo.store.file_store import ROOT_ENV


@dataclasses.dataclass(frozen=True, kw_only=True)
class StoreTestRunConfig(Config):
    """A run-shaped config: num_iterations plus nested array configs."""

    num_iterations: int = option(help="Iterations to train.", min=1)
    learning_rate: float = option(1e-3, help="Step size.")
    arrays: list[ArrayConfig] = option(factory=list, help="Arrays at any depth.")


def _config(**changes) -> StoreTestRunConfig:
    return StoreTestRunConfig(**{"name": "run", "num_iterations": 10, **changes})


# -- root --------------------------------------------------------------------------------------


def test_root_is_read_from_the_environment_when_the_store_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "a"))
    assert FileStore().root == tmp_path / "a"
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "b"))
    assert FileStore().root == tmp_path / "b"
    assert FileStore(tmp_path / "c").root == tmp_path / "c"  # an argument wins
    monkeypatch.delenv(ROOT_ENV)
    assert FileStore().root == platformdirs.user_data_path("napari-dacapo") / "runs"


def test_unwritable_root_names_the_path_and_the_fix(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    store = FileStore(tmp_path / "file" / "runs")
    with pytest.raises(StoreError, match=rf"{ROOT_ENV}.*--store") as error:
        store.store_run_config(_config())
    assert str(tmp_path / "file" / "runs") in str(error.value)
    with pytest.raises(StoreError, match=ROOT_ENV):
        store.store_training_stats("run", TrainingStats())


@pytest.mark.parametrize("name", ["", " run", "a/b", "..", ".hidden"])
def test_run_names_must_be_folder_names(store, name):
    with pytest.raises(StoreError, match="cannot be a run name"):
        store.run_dir(name)


def test_a_run_name_too_long_for_a_folder_is_refused_naming_the_limit(store):
    store.run_dir("x" * 255)  # the longest folder name most file systems take
    with pytest.raises(StoreError, match=r"too long \(266 characters\).*at most 255"):
        store.has_run("cells_" + "x" * 260)  # an OSError from the file system before
    with pytest.raises(StoreError, match=r"too long \(256 bytes in UTF-8\)"):
        store.run_dir("é" * 128)


# -- configs -------------------------------------------------------------------------------------


def test_config_round_trip_and_listing(store):
    assert store.list_runs() == [] and not store.has_run("run")
    stored = store.store_run_config(_config())
    assert stored == _config()
    assert (store.root / "run" / "config.yaml").is_file()
    assert store.retrieve_run_config("run") == _config()
    assert store.list_runs() == ["run"] and store.has_run("run")
    store.store_run_config(_config())  # the same config again is fine
    with pytest.raises(StoreError, match=r"No run named 'other'.*stored runs: run"):
        store.retrieve_run_config("other")


def test_a_different_config_under_a_stored_name_is_refused(store):
    store.store_run_config(_config())
    with pytest.raises(StoreError) as error:
        store.store_run_config(_config(learning_rate=0.1))
    message = str(error.value)
    assert "Run 'run'" in message and "learning_rate" in message
    assert "another run name" in message
    assert store.retrieve_run_config("run") == _config()  # untouched


def test_only_a_larger_num_iterations_continues_a_stored_run(store):
    store.store_run_config(_config())
    assert store.store_run_config(_config(num_iterations=20)).num_iterations == 20
    assert store.retrieve_run_config("run").num_iterations == 20
    with pytest.raises(StoreError, match=r"num_iterations \(stored 20, new 5\).*larger"):
        store.store_run_config(_config(num_iterations=5))
    with pytest.raises(StoreError, match="num_iterations"):
        store.store_run_config(_config(num_iterations=30), allow_longer=False)
    with pytest.raises(StoreError, match="num_iterations.*learning_rate"):
        store.check_run_config(_config(num_iterations=30, learning_rate=1.0))


def test_a_refusal_names_the_nested_fields_that_differ_and_the_rule_only_when_broken(store):
    from napari_dacapo.experiments import ZarrArrayConfig

    stored = _config(arrays=[ZarrArrayConfig(name="raw", file_name="a.zarr", dataset="raw")])
    store.store_run_config(stored)
    changed = stored.replace(num_iterations=40, arrays=[
        stored.arrays[0].replace(dataset="s0")])
    with pytest.raises(StoreError) as error:
        store.check_run_config(changed)
    message = str(error.value)
    assert "arrays[0].dataset (stored 'raw', new 's0')" in message
    assert "num_iterations (stored 10, new 40)" in message  # named, but larger is allowed
    assert "larger num_iterations" not in message
    with pytest.raises(StoreError, match=r"num_iterations \(stored 10, new 5\)\. A stored "
                       r"run can only be continued with a larger num_iterations"):
        store.check_run_config(stored.replace(num_iterations=5))


def test_in_memory_arrays_are_written_into_the_run(store):
    raw = NumpyArrayConfig(
        name="raw", data=np.arange(48, dtype=np.float32).reshape(6, 8), voxel_size=(2, 2)
    )
    other = NumpyArrayConfig(name="raw", data=np.ones((6, 8), dtype=np.uint8))
    stored = store.store_run_config(_config(arrays=[raw, raw, other]))

    assert not any(isinstance(a, NumpyArrayConfig) for a in stored.arrays)
    assert stored.arrays[0] == stored.arrays[1]  # one array used twice is written once
    assert {p.name for p in (store.root / "run" / "data").iterdir()} == {
        "raw.zarr",
        "raw_1.zarr",
    }
    assert store.retrieve_run_config("run") == stored
    array = stored.arrays[0].array()
    assert tuple(array.voxel_size) == (2, 2)
    np.testing.assert_array_equal(array[array.roi], raw.data)
    other_array = stored.arrays[2].array()
    np.testing.assert_array_equal(other_array[other_array.roi], other.data)

    # Storing the run again from a session (e.g. after painting) replaces the data.
    painted = dataclasses.replace(raw, data=raw.data + 1)
    again = store.store_run_config(_config(arrays=[painted, painted, other], num_iterations=20))
    assert again.arrays[0] == stored.arrays[0]
    np.testing.assert_array_equal(again.arrays[0].array()[array.roi], painted.data)
    assert not [p for p in (store.root / "run" / "data").iterdir() if p.name.startswith(".")]
    with pytest.raises(StoreError, match="learning_rate"):
        store.check_run_config(_config(arrays=[painted, painted, other], learning_rate=1.0))


def test_a_run_folder_copied_to_another_store_reads_its_own_data(store, tmp_path):
    import shutil

    raw = NumpyArrayConfig(name="raw", data=np.arange(48, dtype=np.float32).reshape(6, 8))
    store.store_run_config(_config(arrays=[raw]))
    elsewhere = FileStore(tmp_path / "laptop")
    shutil.copytree(store.root / "run", elsewhere.root / "run")
    shutil.rmtree(store.root)  # e.g. the cluster's store is not mounted here
    copied = elsewhere.retrieve_run_config("run")
    assert copied.arrays[0].file_name == elsewhere.root / "run" / "data" / "raw.zarr"
    array = copied.arrays[0].array()
    np.testing.assert_array_equal(array[array.roi], raw.data)
    # The same run: painting more and storing it again is no different config.
    elsewhere.check_run_config(_config(arrays=[raw], num_iterations=20))


# -- checkpoints ---------------------------------------------------------------------------------


def _trained():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def test_checkpoint_round_trip_and_latest(store):
    model, optimizer, scheduler = _trained()
    assert store.checkpoint_iterations("run") == [] and store.latest_iteration("run") is None
    store.store_checkpoint("run", 3, model, optimizer, scheduler, extra={"loss": 0.25})
    store.store_checkpoint("run", 12, model, optimizer)
    assert store.checkpoint_iterations("run") == [3, 12]
    assert store.latest_iteration("run") == 12

    latest = store.retrieve_checkpoint("run")
    assert latest["iteration"] == 12 and latest["scheduler"] is None
    checkpoint = store.retrieve_checkpoint("run", 3)
    assert checkpoint["iteration"] == 3 and checkpoint["loss"] == 0.25
    fresh = torch.nn.Linear(3, 2)
    fresh.load_state_dict(checkpoint["model"])
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.1)
    fresh_optimizer.load_state_dict(checkpoint["optimizer"])
    fresh_scheduler = torch.optim.lr_scheduler.StepLR(fresh_optimizer, step_size=1)
    fresh_scheduler.load_state_dict(checkpoint["scheduler"])
    assert torch.equal(fresh.weight, model.weight)
    assert torch.equal(
        fresh_optimizer.state_dict()["state"][0]["exp_avg"],
        optimizer.state_dict()["state"][0]["exp_avg"],
    )
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert store.retrieve_checkpoint("run", "3")["iteration"] == 3  # as typed on a CLI

    with pytest.raises(ValueError, match="reserved"):
        store.store_checkpoint("run", 4, model, optimizer, extra={"model": 1})


def test_weights_alone_are_read_without_the_training_state_and_old_checkpoints_still_load(
    store,
):
    model, optimizer, scheduler = _trained()
    store.store_checkpoint("run", 3, model, optimizer, scheduler)
    weights = store.retrieve_checkpoint("run", 3, training_state=False)
    assert "optimizer" not in weights and "scheduler" not in weights
    assert torch.equal(weights["model"]["weight"], model.weight)
    whole = store.retrieve_checkpoint("run", 3)
    assert whole["optimizer"]["state"][0]["exp_avg"].shape == model.weight.shape
    assert whole["scheduler"]["last_epoch"] == scheduler.state_dict()["last_epoch"]

    # Checkpoints written before the training state was nested: plain state dicts.
    torch.save(
        {"iteration": 4, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
         "scheduler": None},
        store.checkpoint_path("run", 4),
    )
    old = store.retrieve_checkpoint("run", 4)
    assert torch.equal(old["optimizer"]["state"][0]["exp_avg"],
                       optimizer.state_dict()["state"][0]["exp_avg"])
    assert "optimizer" not in store.retrieve_checkpoint("run", 4, training_state=False)

    # Nested training state that cannot be read is reported, not half returned.
    torch.save({"iteration": 5, "model": model.state_dict(), "optimizer": b"garbage",
                "scheduler": None}, store.checkpoint_path("run", 5))
    with pytest.raises(CheckpointError, match="Delete that file"):
        store.retrieve_checkpoint("run", 5)
    assert store.retrieve_checkpoint("run", 5, training_state=False)["iteration"] == 5


def test_checkpoint_writes_are_atomic(store, monkeypatch):
    model, optimizer, _ = _trained()
    store.store_checkpoint("run", 5, model, optimizer)

    real_save = torch.save

    def crash_midway(obj, fh, *args, **kwargs):
        if isinstance(fh, io.BytesIO):  # the training state, nested as bytes
            return real_save(obj, fh, *args, **kwargs)
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        store.store_checkpoint("run", 5, model, optimizer)
    monkeypatch.undo()
    assert store.retrieve_checkpoint("run", 5)["iteration"] == 5  # the old file is intact
    assert [p.name for p in (store.root / "run" / "checkpoints").iterdir()] == ["5.pt"]


def test_missing_and_corrupt_checkpoints_are_explained(store):
    with pytest.raises(CheckpointError, match="Run 'run' has no checkpoints"):
        store.retrieve_checkpoint("run")
    model, optimizer, _ = _trained()
    for iteration in (1, 3):
        store.store_checkpoint("run", iteration, model, optimizer)
    with pytest.raises(CheckpointError, match=r"no checkpoint at iteration 2.*\[1, 3\]"):
        store.retrieve_checkpoint("run", 2)
    corrupt = store.checkpoint_path("run", 7)
    corrupt.write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(CheckpointError, match="Delete that file") as error:
        store.retrieve_checkpoint("run")
    assert str(corrupt) in str(error.value)
    with pytest.raises(ValueError, match="'latest' or a number"):
        store.retrieve_checkpoint("run", "best")
    # Found without reading the tensors: a file that is not a checkpoint, or cut short.
    assert store.checkpoint_problem("run", 1) == ""
    assert "cannot be read" in store.checkpoint_problem("run", 7)
    whole = store.checkpoint_path("run", 3).read_bytes()
    store.checkpoint_path("run", 3).write_bytes(whole[: len(whole) // 2])
    assert "or use another iteration ([1, 7])" in store.checkpoint_problem("run", 3)
    assert "does not exist" in store.checkpoint_problem("run", 2)


def test_why_a_run_cannot_resume_is_found_before_reading_its_checkpoints(store):
    assert store.resume_problem("run") == ""  # never trained: nothing to continue
    store.store_training_stats("run", TrainingStats())
    store.store_best("run", None, "dice", 4, None, 0.5)  # validated: it had a checkpoint
    problem = store.resume_problem("run")
    assert "no checkpoint left" in problem and "pruned or deleted" in problem
    assert "starts over from iteration 0" in problem
    model, optimizer, _ = _trained()
    store.store_checkpoint("run", 4, model, optimizer)
    assert store.resume_problem("run") == ""
    path = store.checkpoint_path("run", 4)
    path.write_bytes(path.read_bytes()[:100])  # cut short
    problem = store.resume_problem("run")
    assert str(path) in problem and "to train the run again from iteration 0" in problem
    store.store_checkpoint("run", 2, model, optimizer)
    assert "Delete that file to continue from the previous checkpoint (iteration 2)" in (
        store.resume_problem("run"))


def test_a_run_killed_before_its_first_checkpoint_is_not_said_to_have_lost_one(store):
    """Stats are written while training, checkpoints at validation intervals: a trainer
    killed before the first one leaves stats alone, and nothing was pruned or deleted."""
    from conftest import tiny_config

    store.store_run_config(tiny_config(2, name="run", iterations=10, validation_interval=4))
    stats = TrainingStats()
    for iteration in range(3):
        stats.add_iteration_stats(TrainingIterationStats(iteration, 1.0))
    store.store_training_stats("run", stats)
    problem = store.resume_problem("run")
    assert ("its training ended at iteration 3, before the first checkpoint (due at "
            "iteration 4), e.g. the trainer was killed") in problem
    assert "starts over from iteration 0" in problem
    assert "pruned" not in problem and "deleted" not in problem
    # Stats past iteration 4 were written after its checkpoint: that one was deleted.
    stats.add_iteration_stats(TrainingIterationStats(3, 1.0))
    store.store_training_stats("run", stats)
    problem = store.resume_problem("run")
    assert "no checkpoint left" in problem and "(pruned or deleted)" in problem


def test_a_run_without_checkpoints_says_to_train_it_not_to_pick_one(store):
    store.store_training_stats("run", TrainingStats())
    with pytest.raises(CheckpointError) as error:
        store.stored_iteration("run", 3, " (the best for 'dice')")
    message = str(error.value)
    assert "no checkpoint at iteration 3 (the best for 'dice')" in message
    assert "Train the run again" in message and "Pick one" not in message


def test_prune_keeps_the_requested_and_the_latest(store):
    model, optimizer, _ = _trained()
    for iteration in (1, 2, 3, 4):
        store.store_checkpoint("run", iteration, model, optimizer)
    assert store.prune_checkpoints("run", keep={2}) == [1, 3]
    assert store.checkpoint_iterations("run") == [2, 4]


# -- stats, scores, bests --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ThresholdParameters(PostProcessorParameters):
    threshold: float


def test_training_stats_round_trip(store):
    assert store.retrieve_training_stats("run").trained_until() == 0
    stats = TrainingStats(
        [TrainingIterationStats(0, 0.5, 0.1), TrainingIterationStats(1, math.nan)]
    )
    store.store_training_stats("run", stats)
    again = store.retrieve_training_stats("run")
    assert again.iteration_stats[0] == stats.iteration_stats[0]
    assert math.isnan(again.iteration_stats[1].loss)
    (store.root / "run" / "training_stats.json").write_text("{broken")
    with pytest.raises(StoreError, match="training_stats.json cannot be read.*Delete it"):
        store.retrieve_training_stats("run")


def test_validation_scores_round_trip(store):
    assert store.retrieve_validation_iteration_scores("run") == []
    scores = ValidationScores(
        [ThresholdParameters(0, 0.5)],
        ["a"],
        EvaluationScores(directions={"f1": True, "voi": False}),
        [
            ValidationIterationScores(10, [[[0.5, math.nan]]]),
            ValidationIterationScores(20, [[[0.75, 0.25]]]),
        ],
    )
    store.store_validation_iteration_scores("run", scores)
    again = store.retrieve_validation_iteration_scores("run")
    assert [s.iteration for s in again] == [10, 20]
    assert again[1].scores == [[[0.75, 0.25]]]
    assert math.isnan(again[0].scores[0][0][1])
    assert scores.subscores(again).best("f1") == (20, ThresholdParameters(0, 0.5), 0.75)


def test_bests_per_dataset_and_over_all(store):
    assert store.retrieve_best("run", "f1") is None
    store.store_best("run", "a", "f1", 200, 1, 0.9)
    store.store_best("run", "a", "voi", 100, 0, 0.1)
    assert store.retrieve_best("run", "f1", "a") == {
        "dataset": "a", "criterion": "f1", "iteration": 200, "parameters_id": 1, "value": 0.9
    }
    assert store.retrieve_best("run", "voi")["iteration"] == 100  # the only dataset
    store.store_best("run", "b", "f1", 300, 0, 0.8)
    assert store.retrieve_best("run", "f1") is None  # two datasets, no overall best yet
    store.store_best("run", None, "f1", 300, 0, 0.85)
    assert store.retrieve_best("run", "f1")["dataset"] is None
    assert store.retrieve_best("run", "f1")["iteration"] == 300
    assert store.retrieve_best("run", "f1", "a")["iteration"] == 200


def test_containers(store):
    snapshots = store.snapshot_container("run")
    assert snapshots.container == store.root / "run" / "snapshots.zarr"
    assert snapshots.array_identifier("100/raw") == LocalArrayIdentifier(
        snapshots.container, "100/raw"
    )
    assert store.validation_container("run").container == store.root / "run" / "validation.zarr"


# -- lock ------------------------------------------------------------------------------------------

_HOLD_LOCK = """
import sys, time
from napari_dacapo.store import FileStore
with FileStore(sys.argv[1]).lock("run"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_lock_refuses_a_second_trainer_in_this_process(store):
    with store.lock("run"):
        with pytest.raises(RunLockedError, match="Run 'run'.*another run name") as refused:
            with FileStore(store.root).lock("run", to_train=True):
                pass
    # Not 'another process': e.g. a run still stopping after its panel was closed.
    assert f"is being trained in this process (e.g. a run still stopping after its training " \
           f"panel was closed) (pid {os.getpid()})" in str(refused.value)
    with store.lock("run"):  # released on leaving the block
        pass


def test_a_refused_reader_is_told_to_wait_for_the_training_not_to_rename_the_run(store):
    with store.lock("run", to_train=True):
        with pytest.raises(RunLockedError) as refused:
            with FileStore(store.root).lock("run"):  # as validation takes it
                pass
    assert "Wait for the training to finish, or stop it, then try again." in str(refused.value)
    assert "another run name" not in str(refused.value)


def test_lock_names_the_holder_and_dies_with_it(store):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(store.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid}\)"):
            with store.lock("run"):
                pass
        holder.kill()  # SIGKILL: no cleanup code runs in the holder
        holder.wait(timeout=10)
        with store.lock("run"):
            assert (store.root / "run" / "lock").read_text().split() == [str(os.getpid())]
    finally:
        holder.kill()
        holder.wait(timeout=10)
        holder.stdout.close()
        holder.stderr.close()


def test_a_forked_child_does_not_keep_the_run_lock(tmp_path):
    """Batch workers are forked while the trainer holds the lock; killing the trainer must
    free the run even while such a child still lives."""
    import os
    import signal
    import time

    from napari_dacapo.store.file_store import FileStore

    store = FileStore(tmp_path)
    read, write = os.pipe()
    holder = os.fork()
    if holder == 0:  # the "trainer": takes the lock, forks a long-lived "worker", waits
        try:
            with store.lock("run"):
                if os.fork() == 0:
                    time.sleep(5)
                    os._exit(0)
                os.write(write, b"x")
                time.sleep(5)
        finally:
            os._exit(0)
    try:
        os.read(read, 1)
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
        with store.lock("run"):  # the orphaned worker must not hold it
            pass
    finally:
        os.close(read)
        os.close(write)


# -- files ------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="Windows files have no permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=oct)
def test_files_get_the_mode_of_the_umask_as_open_gives_them(store, mask):
    """A store on a shared disk (trained on a cluster node, opened by colleagues) is read
    by others as the umask allows, not only by its owner (the temporary file's 0o600)."""
    import stat

    from napari_dacapo.store.atomic import umask

    previous = os.umask(mask)
    try:
        assert umask() == mask and umask() == mask  # read, not changed
        store.store_run_config(_config())
        model, optimizer, _ = _trained()
        store.store_checkpoint("run", 1, model, optimizer)
        store.store_training_stats("run", TrainingStats([]))
        store.store_best("run", None, "dice", 1, None, 0.5)
    finally:
        os.umask(previous)
    files = {p.relative_to(store.run_dir("run")).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in store.run_dir("run").rglob("*") if p.is_file()}
    assert files == dict.fromkeys(
        ["config.yaml", "checkpoints/1.pt", "training_stats.json", "best.json"],
        0o666 & ~mask)


def test_a_run_folder_deleted_while_its_run_is_stored_is_not_made_anew(store):
    """Writing on would leave a folder without a config: a run no list shows."""
    import shutil

    from napari_dacapo.store import RunDeletedError

    store.store_run_config(_config())
    model, optimizer, _ = _trained()
    store.store_checkpoint("run", 1, model, optimizer)
    shutil.rmtree(store.run_dir("run"))
    writes = [
        lambda: store.store_checkpoint("run", 2, model, optimizer),
        lambda: store.store_training_stats("run", TrainingStats([])),
        lambda: store.store_validation_iteration_scores(
            "run", ValidationScores([], [], EvaluationScores(directions={}))),
        lambda: store.store_best("run", None, "dice", 1, None, 0.5),
        lambda: store.store_display("run", {"world_factor": 10}),
    ]
    for write in writes:
        with pytest.raises(RunDeletedError) as deleted:
            write()
        assert str(deleted.value) == (
            f"The run folder {store.run_dir('run')} was deleted while run 'run' was being "
            f"trained or stored (its config.yaml is gone), so nothing more is stored for it. "
            f"Train it again to start a new run.")
    assert not store.run_dir("run").exists()
    # Another store (another process) never saw the run: it writes as before; so does
    # this one once the run is stored anew.
    FileStore(store.root).store_training_stats("other", TrainingStats([]))
    store.store_run_config(_config())
    store.store_checkpoint("run", 2, model, optimizer)


def test_display_record_round_trips_and_a_bad_one_is_ignored(tmp_path):
    from napari_dacapo.store.file_store import DISPLAY_FILE, read_display

    store = FileStore(tmp_path / "runs")
    run_dir = store.run_dir("run")
    assert read_display(run_dir) == {}  # nothing recorded: nothing created either
    assert not run_dir.exists()
    store.store_display("run", {"world_factor": 10})
    assert read_display(run_dir) == {"world_factor": 10}
    (run_dir / DISPLAY_FILE).write_text("{not json")
    assert read_display(run_dir) == {}
