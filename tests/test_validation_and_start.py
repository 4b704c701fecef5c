"""Validation over a real run, and fine-tuning from a stored run (Start)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import FIXTURES, dacapo_yaml, tiny_config

from napari_dacapo.examples import example_run_config
from napari_dacapo.experiments import StartConfig, load_config
from napari_dacapo.experiments.run import Run
from napari_dacapo.experiments.starts.dacapo_weights import DaCapoWeightsError
from napari_dacapo.experiments.starts.start import StartError, load_matching_weights
from napari_dacapo.store.file_store import FileStore
from napari_dacapo.train import ValidationDone, ValidationSkipped, train_run


def test_validation_scores_improve_during_training(store):
    torch.manual_seed(0)
    config = example_run_config(
        2, name="improves", iterations=300, validation_interval=100, snapshot_interval=None,
        levels=1, input_shape=(48, 48),
    )
    done = [e for e in train_run(Run(config, store=store), store=store)
            if isinstance(e, ValidationDone)]
    assert [v.iteration for v in done] == [100, 200, 300]
    criteria = done[0].criteria

    def best(event: ValidationDone, criterion: str) -> float:
        values = [row[criteria.index(criterion)] for row in event.scores.scores[0]]
        return max(values) if "hausdorff" not in criterion else min(values)

    for criterion in ("blob__dice", "blob__object_f1"):  # higher is better
        assert best(done[-1], criterion) > best(done[0], criterion) + 0.1, criterion
    assert best(done[-1], "blob__hausdorff") < best(done[0], "blob__hausdorff")  # lower
    # The stored best for a lower-is-better criterion is its minimum, not its maximum.
    record = store.retrieve_best("improves", "blob__hausdorff")
    assert record["value"] == min(best(v, "blob__hausdorff") for v in done)
    assert "prediction" in done[-1].arrays and "segmentation" in done[-1].arrays


def test_a_run_without_validation_data_trains_and_says_why(store):
    config = tiny_config(2, iterations=2, validation_interval=1)
    split = config.datasplit_config.replace(validate_configs=[])
    events = list(train_run(Run(config.replace(datasplit_config=split), store=store),
                            store=store))
    skipped = [e for e in events if isinstance(e, ValidationSkipped)]
    assert [e.iteration for e in skipped] == [1, 2]
    assert "no validation data" in skipped[0].reason
    assert store.latest_iteration(config.name) == 2


def test_fine_tuning_starts_from_the_best_checkpoint_of_another_run(store):
    base = tiny_config(2, name="base", iterations=4, validation_interval=2)
    base_run = Run(base, store=store)
    list(train_run(base_run, store=store))
    best = store.retrieve_best("base", "blob__dice")["iteration"]
    stored = store.retrieve_checkpoint("base", best)["model"]

    tuned = tiny_config(2, name="tuned").replace(
        start_config=StartConfig(run="base", criterion="best:blob__dice")
    )
    run = Run(tuned, store=store)
    for key, value in run.model.state_dict().items():
        assert torch.equal(value, stored[key]), key
    assert run.trainer.iteration == 0  # a new run: weights only, its own optimizer


def test_a_new_head_keeps_the_rows_of_channels_it_shares():
    old = Run(tiny_config(2, name="old"), resume=False).model
    new = Run(tiny_config(2, name="new"), resume=False).model
    state = {k: v.clone() for k, v in old.state_dict().items()}
    weight_key = "prediction_head.weight"
    # Pretend the stored head had channels ["other", "blob"] (two rows).
    state[weight_key] = torch.stack([torch.full_like(state[weight_key][0], 7.0),
                                     state[weight_key][0]])
    state["chain.1.weight"] = state[weight_key]
    bias = state["prediction_head.bias"]
    state["prediction_head.bias"] = state["chain.1.bias"] = torch.stack([bias[0] + 7, bias[0]])
    load_matching_weights(new, state, ["other", "blob"], ["blob"])
    assert torch.equal(new.prediction_head.weight[0], old.prediction_head.weight[0])
    assert torch.equal(new.prediction_head.bias[0], old.prediction_head.bias[0])
    body = [k for k in state if not k.startswith(("prediction_head", "chain.1"))]
    assert all(torch.equal(new.state_dict()[k], state[k]) for k in body)


def test_a_different_architecture_is_refused_naming_the_layers(store):
    base = tiny_config(2, name="small", iterations=2, validation_interval=2)
    list(train_run(Run(base, store=store), store=store))
    wider = tiny_config(2, name="wider", num_fmaps=4).replace(
        start_config=StartConfig(run="small", criterion="latest")
    )
    with pytest.raises(StartError, match=r"(?s)layers that differ.*weight.*same architecture"):
        Run(wider, store=store)


# -- starting from a network trained with DaCapo -------------------------------------------


def dacapo_start_config(tmp_path, criterion="latest", **replace):
    """DaCapo's own 2D run YAML, started from the DaCapo checkpoint of the fixtures."""
    config = load_config(dacapo_yaml(tmp_path, "run_distance_2d.yaml", replace))
    start = StartConfig(run=str(FIXTURES / "weights" / "distance_2d"), criterion=criterion)
    return dataclasses.replace(config, start_config=start)


def test_a_dacapo_trained_network_predicts_here_what_it_predicted_in_dacapo(tmp_path):
    run = Run(dacapo_start_config(tmp_path), store=FileStore(tmp_path / "runs"))
    reference = np.load(FIXTURES / "weights" / "distance_2d_forward.npz")
    model = run.model.eval()
    with torch.no_grad():
        output = model(torch.from_numpy(reference["input"])).numpy()
    assert reference["output"].std() > 0.01, "the reference must vary, or equality proves nothing"
    np.testing.assert_allclose(output, reference["output"], rtol=1e-5, atol=1e-6)


def test_a_dacapo_start_that_cannot_be_used_says_why(tmp_path):
    store = FileStore(tmp_path / "runs")
    with pytest.raises(DaCapoWeightsError, match="'latest' or an iteration number"):
        Run(dacapo_start_config(tmp_path, "best:voi"), store=store)
    with pytest.raises(DaCapoWeightsError, match="no checkpoint at iteration 7.*\\[1\\]"):
        Run(dacapo_start_config(tmp_path, "7"), store=store)
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    config = dataclasses.replace(
        dacapo_start_config(tmp_path), start_config=StartConfig(run=str(empty))
    )
    with pytest.raises(DaCapoWeightsError, match="neither a DaCapo run folder"):
        Run(config, store=store)
    corrupt = tmp_path / "3"
    corrupt.write_bytes(b"not a checkpoint")
    config = dataclasses.replace(config, start_config=StartConfig(run=str(corrupt)))
    with pytest.raises(DaCapoWeightsError, match="cannot be read as a DaCapo checkpoint"):
        Run(config, store=store)
    # Another network (8 feature maps instead of 4): the layers that differ are named.
    wider = dacapo_start_config(tmp_path, **{"num_fmaps: 4": "num_fmaps: 8"})
    with pytest.raises(StartError, match="down_convs.0.0.weight"):
        Run(wider, store=store)


# -- resuming a run whose checkpoints were deleted or damaged ---------------------------------


def _trained_keeping_all(tmp_path):
    """tiny_2d trained 6 iterations, with its checkpoints at 3 and 6 both kept."""
    store = FileStore(tmp_path / "runs", keep_all=True)
    config = tiny_config(2, iterations=6, validation_interval=3)
    list(train_run(Run(config, store=store), store=store, validate=False))
    assert store.checkpoint_iterations(config.name) == [3, 6]
    return store, config


@pytest.mark.filterwarnings("always::UserWarning")
def test_resuming_without_the_latest_checkpoint_warns_of_the_iterations_lost(tmp_path):
    from click.testing import CliRunner

    from napari_dacapo.cli import main

    store, config = _trained_keeping_all(tmp_path)
    store.checkpoint_path(config.name, 6).unlink()
    said = (r"Run 'tiny_2d' resumes from iteration 3, its latest checkpoint, though it was "
            r"trained to iteration 6: checkpoint 6 \(.*6\.pt\) is missing \(pruned or "
            r"deleted\)\. The 3 iterations after 3 are trained again\.")
    with pytest.warns(UserWarning, match=said):
        run = Run(config.replace(num_iterations=9), store=store)
    assert run.resumed_from == 3 and run.training_stats.trained_until() == 3

    # The CLI says it as a Warning: line.
    result = CliRunner().invoke(main, ["train", "--run", "tiny_2d", "--iterations", "9",
                                       "--store", str(store.root), "--no-validate"])
    assert result.exit_code == 0, result.output
    assert "Warning: Run 'tiny_2d' resumes from iteration 3" in result.output


def test_a_cut_short_latest_checkpoint_says_how_to_continue_from_the_one_before(tmp_path):
    from napari_dacapo.store.file_store import CheckpointError

    store, config = _trained_keeping_all(tmp_path)
    path = store.checkpoint_path(config.name, 6)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError) as error:
        Run(config, store=store)
    message = str(error.value)
    assert str(path) in message and "load another iteration" not in message
    assert "Delete that file to continue from the previous checkpoint (iteration 3)" in message


@pytest.mark.filterwarnings("always::UserWarning")
def test_a_run_trained_without_checkpoints_left_warns_that_it_starts_over(tmp_path):
    store, config = _trained_keeping_all(tmp_path)
    for iteration in (3, 6):
        store.checkpoint_path(config.name, iteration).unlink()
    with pytest.warns(UserWarning, match=r"no checkpoint left .* \(pruned or deleted\).*"
                      r"starts over from iteration 0"):
        run = Run(config, store=store)
    assert run.trainer.iteration == 0


def test_a_deleted_best_checkpoint_is_called_missing_not_pruned(tmp_path):
    from napari_dacapo.checkpoints import resolve_checkpoint
    from napari_dacapo.store.file_store import CheckpointError

    store = FileStore(tmp_path / "runs")
    config = tiny_config(2, iterations=6, validation_interval=3)
    list(train_run(Run(config, store=store), store=store))
    best = store.retrieve_best(config.name, "blob__dice")["iteration"]
    for iteration in store.checkpoint_iterations(config.name):
        store.checkpoint_path(config.name, iteration).unlink()
    run = Run(config, store=store, resume=False)
    with pytest.raises(CheckpointError) as error:
        resolve_checkpoint(run, "best:dice", store)
    message = str(error.value)
    assert f"no checkpoint at iteration {best} (the best for 'blob__dice'; that checkpoint " \
           f"is missing: pruned or deleted)" in message
    assert "Train the run again" in message and "Pick one" not in message
