"""End-to-end training: events, checkpoints, stop, resume (also after SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch
from conftest import sparse_config, tiny_config

from napari_dacapo.experiments.run import Run
from napari_dacapo.train import (
    CheckpointSaved,
    IterationDone,
    RunFinished,
    RunStarted,
    RunStopped,
    SnapshotTaken,
    ValidationDone,
    train_run,
)


@pytest.mark.parametrize("dims", [2, 3])
def test_train_run_yields_events_and_stores_the_run(store, dims):
    config = tiny_config(dims)
    run = Run(config, store=store)
    events = list(train_run(run, store=store))

    assert isinstance(events[0], RunStarted) and events[0].start_iteration == 0
    assert isinstance(events[-1], RunFinished) and events[-1].iteration == 6
    iterations = [e.iteration for e in events if isinstance(e, IterationDone)]
    assert iterations == list(range(6))
    assert all(np.isfinite(e.loss) for e in events if isinstance(e, IterationDone))
    assert [e.iteration for e in events if isinstance(e, CheckpointSaved)] == [3, 6]
    validations = [e for e in events if isinstance(e, ValidationDone)]
    assert [v.iteration for v in validations] == [3, 6]
    assert validations[-1].criteria and validations[-1].best
    snapshots = [e for e in events if isinstance(e, SnapshotTaken)]
    assert [s.iteration for s in snapshots] == [0, 2, 4]
    raw = snapshots[0].arrays["raw"]
    assert raw.data.ndim == dims + 1  # channel + spatial: 2D trains as true 2D

    # Retention: the latest checkpoint and every current best are kept, the rest pruned.
    bests = store.best_iterations(config.name)
    assert bests and bests <= {3, 6}
    assert store.checkpoint_iterations(config.name) == sorted(bests | {6})
    outputs = store.validation_container(config.name).container
    assert sorted(int(p.name) for p in outputs.iterdir() if p.name.isdigit()) == sorted(bests | {6})
    assert store.retrieve_training_stats(config.name).trained_until() == 6
    assert [s.iteration for s in store.retrieve_validation_iteration_scores(config.name)] == [3, 6]
    stored = store.retrieve_run_config(config.name)
    assert stored.num_iterations == 6
    # In-memory (napari layer) arrays were written into the run's folder.
    raw_config = stored.datasplit_config.train_configs[0].raw_config
    assert type(raw_config).__name__ == "ZarrArrayConfig"
    assert str(store.run_dir(config.name)) in str(raw_config.file_name)


def test_stop_checkpoints_and_a_new_run_resumes_exactly(store):
    config = tiny_config(2, iterations=8, validation_interval=100)
    run = Run(config, store=store)
    stop = threading.Event()
    events = []
    for event in train_run(run, store=store, stop=stop):
        events.append(event)
        if isinstance(event, IterationDone) and event.iteration == 2:
            stop.set()
    assert isinstance(events[-1], RunStopped) and events[-1].iteration == 3
    assert store.latest_iteration(config.name) == 3
    saved_optimizer = run.optimizer.state_dict()

    resumed = Run(config, store=store)
    assert resumed.resumed_from == 3 and resumed.trainer.iteration == 3
    assert resumed.training_stats.trained_until() == 3
    _assert_same_optimizer_state(resumed.optimizer.state_dict(), saved_optimizer)
    for a, b in zip(resumed.model.parameters(), run.model.parameters()):
        assert torch.equal(a.cpu(), b.cpu())

    events = list(train_run(resumed, store=store))
    assert [e.iteration for e in events if isinstance(e, IterationDone)] == [3, 4, 5, 6, 7]
    stats = store.retrieve_training_stats(config.name)
    assert [s.iteration for s in stats.iteration_stats] == list(range(8))


def test_stopping_again_and_again_keeps_only_the_latest_stop_checkpoint(store):
    config = tiny_config(2, iterations=20, validation_interval=100)  # no validation
    for stop_at in (1, 3):  # stop, continue, stop again (as preempted cluster jobs do)
        stop = threading.Event()
        for event in train_run(Run(config, store=store), store=store, stop=stop):
            if isinstance(event, IterationDone) and event.iteration == stop_at:
                stop.set()
    assert store.checkpoint_iterations(config.name) == [4]  # the stop at 2 is pruned


def test_training_longer_continues_a_finished_run(store):
    config = tiny_config(2, iterations=3, validation_interval=3)
    list(train_run(Run(config, store=store), store=store))
    longer = config.replace(num_iterations=5)
    run = Run(longer, store=store)
    assert run.trainer.iteration == 3
    # DaCapo drops the last validation entry on resume; it is kept here.
    assert [s.iteration for s in run.validation_scores.scores] == [3]
    events = list(train_run(run, store=store))
    assert [e.iteration for e in events if isinstance(e, IterationDone)] == [3, 4]
    assert store.retrieve_run_config(config.name).num_iterations == 5


def test_kill_during_training_then_resume(store, tmp_path):
    """A trainer killed with SIGKILL leaves a consistent run that resumes where the last
    checkpoint was: stats continue without gaps or duplicates, the optimizer is restored."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from conftest import tiny_config
        from napari_dacapo.experiments.run import Run
        from napari_dacapo.store.file_store import FileStore
        from napari_dacapo.train import train_run, IterationDone
        store = FileStore({str(store.root)!r})
        config = tiny_config(2, name="killed", iterations=100000, validation_interval=4)
        for event in train_run(Run(config, store=store), store=store):
            if isinstance(event, IterationDone):
                print(event.iteration, flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while (store.latest_iteration("killed") or 0) < 8:
            assert proc.poll() is None, "the training process died on its own"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    latest = store.latest_iteration("killed")
    checkpoint = store.retrieve_checkpoint("killed", latest)
    run = Run(store.retrieve_run_config("killed"), store=store)
    assert run.resumed_from == latest
    assert [s.iteration for s in run.training_stats.iteration_stats] == list(range(latest))
    assert run.optimizer.state_dict()["state"], "optimizer state was not restored"
    _assert_same_optimizer_state(run.optimizer.state_dict(), checkpoint["optimizer"])
    stored = [s.iteration for s in store.retrieve_validation_iteration_scores("killed")]
    kept = [s.iteration for s in run.validation_scores.scores]
    assert kept and kept == [i for i in stored if i <= latest]

    run.train_until = latest + 2
    events = list(train_run(run, store=store, validate=False))
    assert [e.iteration for e in events if isinstance(e, IterationDone)] == [latest, latest + 1]


def _assert_same_optimizer_state(a: dict, b: dict) -> None:
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        for name, value in a["state"][key].items():
            other = b["state"][key][name]
            if torch.is_tensor(value):
                assert torch.equal(value.cpu(), other.cpu()), name
            else:
                assert value == other, name


def test_retention_prunes_all_but_latest_and_best_unless_told_to_keep(tmp_path):
    from napari_dacapo.store.file_store import FileStore

    config = tiny_config(2, iterations=8, validation_interval=2, snapshot_interval=None)
    pruned, kept = FileStore(tmp_path / "pruned"), FileStore(tmp_path / "all", keep_all=True)
    for store in (pruned, kept):
        list(train_run(Run(config, store=store), store=store))
    assert kept.checkpoint_iterations(config.name) == [2, 4, 6, 8]
    bests = pruned.best_iterations(config.name)
    assert pruned.checkpoint_iterations(config.name) == sorted(bests | {8})
    for iteration in pruned.checkpoint_iterations(config.name):  # what is kept still loads
        assert pruned.retrieve_checkpoint(config.name, iteration)["iteration"] == iteration


def test_a_run_trained_headless_on_data_saved_from_napari_opens_over_that_data(store, tmp_path):
    """Layers at scale 0.5 saved with the napari writer hold voxel size 5 and world factor
    10; the run trained on them (CLI, no viewer) records the factor for its outputs."""
    import dataclasses

    import zarr

    from napari_dacapo._reader import read_run, read_zarr
    from napari_dacapo.examples import synthetic_blobs
    from napari_dacapo.experiments import RawGTDatasetConfig, ZarrArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    raw, labels = synthetic_blobs((64, 64), seed=2)
    data = tmp_path / "saved.zarr"
    for name, array in (("raw", raw), ("labels", labels)):
        write_zarr_array(data, name, array, voxel_size=(5, 5), offset=(10, 20))
        zarr.open_array(str(data), path=name, mode="r+").attrs["napari_dacapo"] = {
            "world_factor": 10}
    config = tiny_config(2, validation_interval=100)
    dataset = RawGTDatasetConfig(
        name="saved", raw_config=ZarrArrayConfig(name="raw", file_name=data, dataset="raw"),
        gt_config=ZarrArrayConfig(name="labels", file_name=data, dataset="labels"),
    )
    config = dataclasses.replace(config, datasplit_config=dataclasses.replace(
        config.datasplit_config, train_configs=[dataset], validate_configs=[]))
    list(train_run(Run(config, store=store), store=store, validate=False))

    (_, source, _), = read_zarr(data, "raw")
    snapshot = {meta["name"]: meta for _, meta, _ in read_run(store.run_dir(config.name))}
    raw_snapshot = next(meta for name, meta in snapshot.items() if name.endswith("raw"))
    np.testing.assert_allclose(raw_snapshot["scale"], source["scale"])  # 0.5, not 5
    steps = (np.asarray(raw_snapshot["translate"]) - source["translate"]) / 0.5
    np.testing.assert_allclose(steps, np.round(steps))


def test_stop_while_no_batch_comes_stops_the_run_with_a_checkpoint(tmp_path, monkeypatch):
    """A batch source that stalls (data on a network disk that stops answering) must not
    make Stop hang: the run stops, with a checkpoint of the iterations trained."""
    import threading
    import time

    from conftest import tiny_config

    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.trainers.batch_provider import BatchProvider
    from napari_dacapo.store.file_store import FileStore
    from napari_dacapo.train import IterationDone, RunStopped, train_run

    made = {"count": 0}
    release = threading.Event()
    batch = BatchProvider.batch

    def stalling(self):
        made["count"] += 1
        if made["count"] > 4:
            release.wait(30)  # the disk stops answering
        return batch(self)

    monkeypatch.setattr(BatchProvider, "batch", stalling)
    config = tiny_config(2, name="stalls", iterations=1000, validation_interval=1000)
    config = config.replace(trainer_config=config.trainer_config.replace(
        prefetch_worker="thread", prefetch=1))
    store = FileStore(tmp_path / "runs")
    stop = threading.Event()
    events = []

    def train():
        for event in train_run(Run(config, store=store), store=store, stop=stop):
            events.append(event)

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not any(isinstance(e, IterationDone) for e in events) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the batches made are used up: training waits for the stalled one
    stop.set()
    thread.join(10)
    release.set()
    assert not thread.is_alive(), "Stop hung while the batch source stalled"
    assert isinstance(events[-1], RunStopped)
    done = events[-1].iteration
    assert 0 < done < 1000 and store.latest_iteration("stalls") == done


# -- a NaN or infinite loss -----------------------------------------------------------------


def _in_the_training_thread(config):
    """Batches made one per iteration in the training thread, so a test knows which."""
    return config.replace(trainer_config=config.trainer_config.replace(
        prefetch_worker="thread", prefetch=0))


def _train_until_diverged(store, config, match):
    from napari_dacapo.experiments.trainers import TrainingDiverged

    events = []
    with pytest.raises(TrainingDiverged, match=match):
        for event in train_run(Run(config, store=store), store=store):
            events.append(event)
    return [e.iteration for e in events if isinstance(e, IterationDone)]


def _stored_weights_are_finite(store, name, iteration):
    weights = store.retrieve_checkpoint(name, iteration, training_state=False)["model"]
    return all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_nan_in_a_batch_stops_training_before_its_model_is_stored(store, monkeypatch):
    """NaN in raw data that the checks before training did not read (they sample large
    lazily read data) gave a NaN loss from then on, and checkpoints of NaN weights."""
    from napari_dacapo.experiments.trainers.batch_provider import BatchProvider

    made = {"count": 0}
    batch = BatchProvider.batch

    def with_nan(self):
        made["count"] += 1
        out = batch(self)
        if made["count"] > 4:  # the trial batch, then those of iterations 0 to 2
            out.raw[..., :5] = np.nan
        return out

    monkeypatch.setattr(BatchProvider, "batch", with_nan)
    config = _in_the_training_thread(tiny_config(2, iterations=6, validation_interval=3))
    trained = _train_until_diverged(
        store, config, r"iteration 3: its loss is nan\. The raw input of that batch holds "
        r"\d+ NaN or infinite values.*nan_to_num.*latest checkpoint, if any, is from before")
    assert trained == [0, 1, 2]
    assert store.latest_iteration(config.name) == 3
    assert _stored_weights_are_finite(store, config.name, 3)


def _loss_turns(monkeypatch, value: float, last: bool) -> None:
    """The loss of iteration 4 (the 5th computed) becomes ``value``, and with ``last``
    every loss after it too."""
    from napari_dacapo.experiments.tasks.losses.mse_loss import MSELoss

    calls = {"count": 0}
    compute = MSELoss.compute

    def diverging(self, prediction, target, weight=None):
        calls["count"] += 1
        loss = compute(self, prediction, target, weight)
        hit = calls["count"] >= 5 if last else calls["count"] == 5
        return loss * value if hit else loss

    monkeypatch.setattr(MSELoss, "compute", diverging)


def test_a_diverging_model_stops_training_naming_the_learning_rate(store, monkeypatch):
    _loss_turns(monkeypatch, np.inf, last=False)
    config = _in_the_training_thread(tiny_config(2, iterations=6, validation_interval=2))
    trained = _train_until_diverged(
        store, config, r"iteration 4: its loss is inf\. .*finite, so the model diverged: the "
        r"learning rate \(.+\) is likely too high.*lower learning_rate")
    assert trained == [0, 1, 2, 3]
    assert store.latest_iteration(config.name) == 4


def test_a_nan_loss_read_in_a_window_of_iterations_names_both_causes(store, monkeypatch):
    """On accelerators losses are read every few iterations, and their batches are not
    kept (memory): the error names both likely causes."""
    from napari_dacapo.experiments.trainers import default_trainer

    _loss_turns(monkeypatch, np.nan, last=True)
    monkeypatch.setattr(default_trainer, "_sync_interval", lambda device, every: 2)
    config = _in_the_training_thread(tiny_config(2, iterations=8, validation_interval=2))
    trained = _train_until_diverged(
        store, config, r"iteration 4: its loss is nan\. Likely causes: NaN or infinity in the "
        r"raw data.*or a learning rate \(.+\) too high.*nan_to_num.*lower learning_rate")
    assert trained == [0, 1, 2, 3]
    assert store.latest_iteration(config.name) == 4


def test_weights_spoiled_by_a_step_with_a_finite_loss_are_not_stored(store, monkeypatch):
    from napari_dacapo.experiments.trainers import DefaultTrainer

    step = DefaultTrainer._step

    def spoiling(self, model, *args):
        out = step(self, model, *args)
        if self.iteration == 3:  # the step of iteration 3, whose own loss is finite
            with torch.no_grad():
                next(model.parameters()).fill_(np.nan)
        return out

    monkeypatch.setattr(DefaultTrainer, "_step", spoiling)
    config = _in_the_training_thread(tiny_config(2, iterations=6, validation_interval=2))
    trained = _train_until_diverged(
        store, config, r"iteration 4: the model's weights hold NaN.*learning rate")
    assert trained == [0, 1, 2, 3]
    assert store.checkpoint_iterations(config.name)[-1] == 2
    assert _stored_weights_are_finite(store, config.name, 2)


@pytest.mark.parametrize("float_labels", ["validation", "training"])
def test_labels_stored_as_whole_floats_train_and_validate_as_label_ids(store, float_labels):
    """The checks accept such labels as label ids; validation refused them only after
    training had stored a checkpoint (and training refused them as training labels)."""
    from napari_dacapo.examples import synthetic_blobs
    from napari_dacapo.experiments import (
        NumpyArrayConfig,
        RawGTDatasetConfig,
        TrainValidateDataSplitConfig,
    )

    raw, labels = synthetic_blobs((64, 64), seed=3)

    def data(name, floats):
        gt = labels.astype(np.float32) if floats else labels
        return RawGTDatasetConfig(name=name, raw_config=NumpyArrayConfig(name="raw", data=raw),
                                  gt_config=NumpyArrayConfig(name="gt", data=gt))

    split = TrainValidateDataSplitConfig(
        name="split", train_configs=[data("train", float_labels == "training")],
        validate_configs=[data("val", float_labels == "validation")])
    config = tiny_config(2, iterations=2, validation_interval=2).replace(
        datasplit_config=split)
    events = list(train_run(Run(config, store=store), store=store))
    assert isinstance(events[-1], RunFinished)
    validation = next(e for e in events if isinstance(e, ValidationDone))
    assert np.isfinite(validation.scores.scores[0][0]).any()


def test_a_run_folder_deleted_while_training_stops_it_at_the_next_write(store):
    """The trainer must not make the folder anew without its config (a run that no list
    of runs shows, and that says it was stored)."""
    import shutil

    from napari_dacapo.store import RunDeletedError

    config = tiny_config(2, snapshot_interval=None)
    events = train_run(Run(config, store=store), store=store)
    for event in events:
        if isinstance(event, IterationDone):
            shutil.rmtree(store.run_dir(config.name))
            break
    with pytest.raises(RunDeletedError, match=r"The run folder .* was deleted while run "
                       r"'tiny_2d' was being trained or stored .* Train it again"):
        list(events)
    assert not store.run_dir(config.name).exists()


@pytest.mark.filterwarnings(
    "always::napari_dacapo.experiments.datasplits.datasets.checks.DataWarning")
def test_a_sparse_annotation_is_one_warning_line_of_the_cli(store):
    """No sample reaching min_masked was logged where batches are made (a worker process
    or thread): the CLI showed no 'Warning:' line for it (and napari no notification).
    The training loop warns once per training."""
    from click.testing import CliRunner

    from napari_dacapo.cli import main

    config = sparse_config("sparse", 3)
    store.store_run_config(config)
    result = CliRunner().invoke(main, ["train", "--run", "sparse", "--store", str(store.root),
                                       "--no-validate"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines()
              if line.startswith("Warning: No location among 50 tries had 50% of its output")]
    assert len(warned) == 1, result.output
    assert warned[0].endswith("Annotate more densely or lower min_masked.")
