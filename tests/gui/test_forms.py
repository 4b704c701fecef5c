"""Config <-> form round trips, field widgets (limits, tooltips, optional values), and the
settings YAML the training panel saves and loads."""

from __future__ import annotations

import dataclasses

import numpy as np

import pytest
import yaml
from conftest import tiny_config

from napari_dacapo.experiments import (
    AffinitiesTaskConfig,
    CNNectomeUNetConfig,
    DefaultTrainerConfig,
    ElasticAugmentConfig,
    NoiseAugmentConfig,
    RunConfig,
    SimpleAugmentConfig,
    StartConfig,
    save_config,
)
from napari_dacapo.experiments.configs import ConfigError
from napari_dacapo.experiments.tasks.task_config import TaskConfig
from napari_dacapo.gui.config_files import load_settings, save_settings
from napari_dacapo.gui.forms import ConfigChoiceForm, ConfigForm, FormError, concrete_subclasses
from napari_dacapo.gui.presets import PRESETS, task_defaults

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("dims", [2, 3])
def test_run_parts_round_trip_through_forms(qtbot, dims):
    config = tiny_config(dims)
    trainer = config.trainer_config.replace(
        augments=[
            SimpleAugmentConfig(name="mirror", mirror_only=[0, 1]),
            ElasticAugmentConfig(name="elastic", control_point_spacing=[10] * dims,
                                 control_point_displacement_sigma=[2.0] * dims,
                                 rotation_interval=(0.0, 1.5)),
            NoiseAugmentConfig(name="noise", kwargs={"var": 0.02}),
        ],
        seed=7, device="cpu", learning_rate=3e-5,
    )
    for part in (config.architecture_config, trainer, config.task_config,
                 PRESETS["3D large"].architecture()):
        form = ConfigForm(type(part), part)
        assert form.value() == part
    run_form = ConfigForm(RunConfig, fields=("name", "num_iterations", "start_config"), hidden=())
    run_form.set_value(config.replace(start_config=StartConfig(run="other", criterion="latest")))
    assert run_form.values() == {
        "name": config.name, "num_iterations": config.num_iterations,
        "start_config": StartConfig(run="other", criterion="latest"),
    }


@pytest.mark.parametrize("dims", [2, 3])
def test_every_offered_task_round_trips(qtbot, dims):
    choice = ConfigChoiceForm(TaskConfig, task_defaults(dims))
    for cls, default in task_defaults(dims).items():
        choice.kind.value = cls  # switching the type shows that task's defaults
        assert choice.value() == default()
        task = default()
        choice.set_value(task)
        assert choice.value() == task


def test_field_widgets_take_limits_tooltips_and_optional_values(qtbot):
    form = ConfigForm(DefaultTrainerConfig)
    fields = {f.name: f for f in dataclasses.fields(DefaultTrainerConfig)}
    batch = form.widget["batch_size"]
    assert (batch.min, batch.max) == (1, 1024)
    assert batch.tooltip.startswith(fields["batch_size"].metadata["help"])
    assert form.widget["optimizer"].choices == ("radam", "adamw")
    # snapshot_interval is optional (min 1): the lowest spin box value reads "none".
    assert form.values()["snapshot_interval"] is None
    form.set_value({"snapshot_interval": 5, "learning_rate": 2.5e-6})
    values = form.values()
    assert values["snapshot_interval"] == 5 and values["learning_rate"] == 2.5e-6
    # Advanced fields exist but are hidden until asked for.
    unet = ConfigForm(CNNectomeUNetConfig, tiny_config(2).architecture_config)
    assert "kernel_size_down" in unet.values() and not unet.advanced.visible


def test_unreadable_text_and_refused_values_name_the_field(qtbot):
    form = ConfigForm(CNNectomeUNetConfig, tiny_config(2).architecture_config)
    form.widget["input_shape"].value = "32, x"
    with pytest.raises(FormError, match="input shape.*e.g. '64, 64'"):
        form.value()
    form.widget["input_shape"].value = "33, 33"  # does not fit the downsampling
    with pytest.raises(ConfigError, match=r"input_shape.*nearest valid shapes: \(32, 32\)"):
        form.value()


def test_concrete_subclasses_leave_out_abstract_bases():
    tasks = concrete_subclasses(TaskConfig)
    assert AffinitiesTaskConfig in tasks and TaskConfig not in tasks


def test_settings_yaml_round_trip_and_full_run_configs(tmp_path):
    config = tiny_config(3)
    settings = {"task_config": config.task_config,
                "architecture_config": config.architecture_config,
                "trainer_config": config.trainer_config, "name": "saved",
                "num_iterations": 40, "validation_interval": 20,
                "start_config": StartConfig(run="base", criterion="best:dice")}
    path = save_settings(tmp_path / "settings.yaml", settings)
    assert load_settings(path) == settings
    # A complete run config (here with in-memory arrays, saved without their data).
    full = save_config(config, tmp_path / "run.yaml")
    loaded = load_settings(full)
    assert loaded["architecture_config"] == config.architecture_config
    assert loaded["num_iterations"] == config.num_iterations
    (tmp_path / "bad.yaml").write_text("just: text\n")
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "bad.yaml")


def test_settings_with_a_misspelt_field_are_refused_not_trained_with_defaults(tmp_path):
    """A settings file has no datasplit, so it is read part by part: a misspelt run field
    was dropped there (and the run trained with its default), and a part's error did not
    say which part."""
    config = tiny_config(2)
    settings = {"task_config": config.task_config,
                "architecture_config": config.architecture_config,
                "trainer_config": config.trainer_config, "name": "saved",
                "num_iterations": 40, "validation_interval": 20}
    path = save_settings(tmp_path / "settings.yaml", settings)
    text = path.read_text()
    path.write_text(text.replace("validation_interval:", "validation_intervall:"))
    with pytest.raises(ConfigError, match=r"validation_intervall \(RunConfig has no such "
                       r"field; did you mean validation_interval\?\)"):
        load_settings(path)
    path.write_text(text.replace("batch_size:", "batch_sise:"))
    with pytest.raises(ConfigError, match=r"trainer_config\.batch_sise .*did you mean "
                       r"batch_size\?"):
        load_settings(path)


def test_settings_panel_presets_files_and_images(make_napari_viewer, tmp_path):
    from napari_dacapo.gui.settings_panel import SettingsPanel
    from napari_dacapo.store.file_store import FileStore

    panel = SettingsPanel(FileStore(tmp_path / "runs"))
    panel.task_form.set_value(task_defaults(2)[AffinitiesTaskConfig]())
    panel.apply_preset("3D small")
    settings = panel.settings()
    assert settings["architecture_config"] == PRESETS["3D small"].architecture()
    assert settings["task_config"].neighborhood == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert settings["name"] == "run"
    assert panel.save(str(tmp_path / "s.yaml"))
    panel.presets.setCurrentText("2D small")
    assert panel.load(str(tmp_path / "s.yaml")) and panel.settings() == settings
    # Loaded settings are no preset: picking the one shown before applies it again.
    assert panel.presets.currentText() == "(loaded settings)"
    panel.presets.setCurrentText("2D small")
    assert panel.settings()["architecture_config"] == PRESETS["2D small"].architecture()
    # A 2D image with 3 channels keeps the 3D preset off: fmaps_in follows the channels.
    viewer = make_napari_viewer()
    panel.apply_preset("2D small")
    panel.match_image(viewer.add_image(np.zeros((3, 64, 64), np.uint8)))
    assert panel.settings()["architecture_config"].fmaps_in == 3
    panel.match_image(viewer.add_image(np.zeros((40, 64, 64), np.uint8)))  # a volume
    assert len(panel.settings()["architecture_config"].input_shape) == 3


def test_settings_missing_a_part_name_it_and_any_unknown_field(tmp_path):
    """A file with only a task (and a stray field) was refused for lacking a complete run
    config's type tag, which named neither what was missing nor the stray field."""
    config = tiny_config(2)
    settings = {"task_config": config.task_config, "architecture_config":
                config.architecture_config, "trainer_config": config.trainer_config}
    text = save_settings(tmp_path / "whole.yaml", settings).read_text()
    partial = yaml.safe_load(text)
    del partial["architecture_config"], partial["trainer_config"]
    partial["foo"] = 1
    path = tmp_path / "partial.yaml"
    path.write_text(yaml.safe_dump(partial))
    with pytest.raises(ConfigError, match=r"partial.yaml lacks architecture_config, "
                       r"trainer_config: run settings need task_config, architecture_config, "
                       r"trainer_config .* Unknown field\(s\): foo \(RunConfig has no such"):
        load_settings(path)
