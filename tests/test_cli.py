"""The CLI: one smoke test per command, and DaCapo's own run YAML trained as it is."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import dacapo_yaml

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
    assert result.exit_code == 0 and "example_2d: 2/2 iterations" in result.output

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
        {"input_shape: !!python/tuple\n  - 92\n  - 92": "input_shape: !!python/tuple\n  - 44\n  - 44"},
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


def test_a_run_name_stored_with_another_config_is_a_message_not_a_traceback(tmp_path):
    runner = CliRunner()
    store = str(tmp_path / "runs")
    assert runner.invoke(main, ["example", "--iterations", "1", "--store", store]).exit_code == 0
    result = runner.invoke(main, ["example", "--iterations", "1", "--dims", "3", "--name",
                                  "example_2d", "--store", store])
    assert result.exit_code == 1
    assert "Error: Run 'example_2d' is already stored" in result.output
    assert "Traceback" not in result.output
