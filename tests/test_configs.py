"""The config machinery: validation when made, tagged YAML round trips, DaCapo YAML."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner
from conftest import dacapo_yaml
from funlib.geometry import Coordinate, Roi

from napari_dacapo.experiments.configs import (
    DACAPO_ONLY_FIELDS,
    Config,
    ConfigError,
    config_class,
    from_dict,
    load_config,
    option,
    save_config,
    to_dict,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Part(Config):
    size: Coordinate = option(help="A shape.")
    factor: int = option(2, help="A factor.", min=1, max=8)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _OtherPart(_Part):
    aliases: ClassVar[tuple[str, ...]] = ("_DaCapoOtherPart",)
    field_aliases: ClassVar[dict[str, str]] = {"_mode": "mode"}
    mode: str = option("a", help="A mode.", choices=("a", "b"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Whole(Config):
    part: _Part = option(help="Polymorphic part.")
    parts: list[_Part] = option(factory=list, help="More parts.")
    roi: Roi | None = option(None, help="A region.")
    path: Path | None = option(None, help="A path.")


def test_values_are_coerced_and_bounds_refused_with_the_fix():
    part = _Part(name="p", size=[4, 5])
    assert part.size == Coordinate(4, 5)
    with pytest.raises(ConfigError, match=r"factor must be <= 8 \(got 9\).*at most 8"):
        _Part(name="p", size=(1,), factor=9)
    with pytest.raises(ConfigError, match="factor must be >= 1"):
        _Part(name="p", size=(1,), factor=0)
    with pytest.raises(ConfigError, match="Choose one of 'a', 'b'"):
        _OtherPart(name="p", size=(1,), mode="c")
    with pytest.raises(ConfigError, match="name must be a non-empty string"):
        _Part(name=" ", size=(1,))


def test_scalar_fields_name_a_value_of_the_wrong_type():
    with pytest.raises(ConfigError, match="_Part 'p': factor must be a whole number, not 'two'"):
        _Part(name="p", size=(1,), factor="two")
    with pytest.raises(ConfigError, match="factor must be a whole number, not True"):
        _Part(name="p", size=(1,), factor=True)
    with pytest.raises(ConfigError, match="mode must be a string, not 3"):
        _OtherPart(name="p", size=(1,), mode=3)
    # What YAML writers make of numbers: 1000.0 for an int, and YAML 1.1 reads 1e-4
    # (exponent, no dot) as a string.
    assert _Part(name="p", size=(1,), factor=4.0).factor == 4
    with pytest.raises(ConfigError, match="factor must be a whole number, not 2.5"):
        _Part(name="p", size=(1,), factor=2.5)
    from napari_dacapo.experiments.trainers.default_trainer_config import DefaultTrainerConfig

    assert DefaultTrainerConfig(name="t", learning_rate="1e-4").learning_rate == 1e-4
    with pytest.raises(ConfigError, match="learning_rate must be a number, not 'fast'"):
        DefaultTrainerConfig(name="t", learning_rate="fast")


def test_tagged_round_trip_keeps_subclasses(tmp_path):
    whole = _Whole(
        name="w",
        part=_OtherPart(name="o", size=(2, 3), mode="b"),
        parts=[_Part(name="q", size=(1, 1)), _OtherPart(name="r", size=(3,))],
        roi=Roi((0, 4), (10, 20)),
        path=Path("/data/x.zarr"),
    )
    data = to_dict(whole)
    assert data["part"]["__type__"] == "_OtherPart"
    assert data["roi"] == [[0, 4], [10, 20]]
    path = save_config(whole, tmp_path / "w.yaml")
    loaded = load_config(path)
    assert loaded == whole
    assert type(loaded.parts[1]) is _OtherPart
    assert not list(tmp_path.glob(".*tmp")), "atomic write left a temporary file"


def test_dacapo_yaml_loads_with_python_tags_aliases_and_reported_extras(
    tmp_path, caplog, monkeypatch
):
    monkeypatch.setitem(DACAPO_ONLY_FIELDS, "_DaCapoOtherPart", frozenset({"num_data_fetchers"}))
    (tmp_path / "run.yaml").write_text(
        """
__type__: _Whole
name: w
part:
  __type__: _DaCapoOtherPart
  name: o
  size: !!python/tuple [4, 4]
  _mode: b
  num_data_fetchers: 20
path: !!python/object/apply:pathlib.PosixPath ['/', data, x.zarr]
roi: !!python/tuple [!!python/tuple [0, 0], !!python/tuple [8, 8]]
"""
    )
    ignored: list[str] = []
    with caplog.at_level(logging.WARNING):
        whole = load_config(tmp_path / "run.yaml", ignored=ignored)
    assert isinstance(whole.part, _OtherPart) and whole.part.mode == "b"
    assert whole.part.size == Coordinate(4, 4)
    assert whole.path == Path("/data/x.zarr")
    assert whole.roi == Roi((0, 0), (8, 8))
    assert ignored == ["part.num_data_fetchers"]
    assert "num_data_fetchers" in caplog.text


def test_bad_files_and_data_are_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="missing required field.*size"):
        from_dict({"__type__": "_Part", "name": "p"})
    with pytest.raises(ConfigError, match="Unknown config type 'Nope'"):
        config_class("Nope")
    with pytest.raises(ConfigError, match="has no __type__ tag"):
        from_dict({"name": "x"})
    with pytest.raises(ConfigError, match="must be a _OtherPart, got _Part"):
        from_dict({"__type__": "_Part", "name": "p", "size": [1]}, _OtherPart)


def test_unknown_fields_are_refused_each_named_with_the_closest_field():
    data = {
        "__type__": "_Whole",
        "name": "w",
        "part": {"__type__": "_Part", "name": "p", "size": [1], "factr": 4},
        "parts": [{"__type__": "_OtherPart", "name": "q", "size": [1], "colour": "red"}],
        "paht": "/data/x.zarr",
    }
    with pytest.raises(ConfigError) as error:
        from_dict(data)
    assert str(error.value) == (
        "Unknown fields: part.factr (_Part has no such field; did you mean factor?); "
        "parts[0].colour (_OtherPart has no such field; its fields are name, size, factor, "
        "mode); paht (_Whole has no such field; did you mean path?). Correct or remove them."
    )
    # A misspelt required field is named as such, not as a missing one.
    with pytest.raises(ConfigError, match=r"^Unknown field: sise \(.*did you mean size\?\)"):
        from_dict({"__type__": "_Part", "name": "p", "sise": [1]})


def test_dacapo_fields_are_ignored_only_in_the_dacapo_class_that_has_them():
    dacapo = {"name": "t", "batch_size": 4, "num_data_fetchers": 8, "gt_min_reject": None}
    ignored: list[str] = []
    trainer = from_dict({"__type__": "GunpowderTrainerConfig", **dacapo}, ignored=ignored)
    assert trainer.batch_size == 4 and ignored == ["num_data_fetchers", "gt_min_reject"]
    # Our own class has no such fields: there they are unknown like any other.
    with pytest.raises(ConfigError, match="Unknown fields: num_data_fetchers .*gt_min_reject"):
        from_dict({"__type__": "DefaultTrainerConfig", **dacapo})


def test_dacapo_02_names_of_fields_load_as_ours():
    task = from_dict({"__type__": "AffinitiesTaskConfig", "name": "a", "lsds": True,
                      "neighborhood": [[1, 0], [0, 1]], "num_voxels": 20})
    assert task.num_lsd_voxels == 20


def test_dacapo_only_fields_name_dacapo_classes_and_fields_we_lack():
    for dacapo_name, names in DACAPO_ONLY_FIELDS.items():
        cls = config_class(dacapo_name)
        ours = {f.name for f in dataclasses.fields(cls)} | set(cls.field_aliases)
        assert names and not names & ours, (dacapo_name, names & ours)
        assert dacapo_name in (cls.__name__, *cls.__dict__.get("aliases", ()))


def test_dacapo_run_yamls_ignore_exactly_the_dacapo_only_fields(tmp_path):
    for name in ("run_distance_2d.yaml", "run_affinities_3d.yaml"):
        ignored: list[str] = []
        load_config(dacapo_yaml(tmp_path, name), ignored=ignored)
        assert ignored == ["trainer_config.gt_min_reject", "trainer_config.num_data_fetchers"]


def test_train_refuses_a_run_yaml_with_misspelt_fields_before_storing_anything(tmp_path):
    from napari_dacapo.cli import main

    path = dacapo_yaml(
        tmp_path, "run_distance_2d.yaml",
        {"  batch_size: 2": "  batch_sise: 4", "validation_interval: 5": "validation_intervall: 5"},
    )
    store = tmp_path / "runs"
    result = CliRunner().invoke(main, ["train", str(path), "--store", str(store)])
    assert result.exit_code == 1, result.output
    assert (
        "Unknown fields: trainer_config.batch_sise (DefaultTrainerConfig has no such field; "
        "did you mean batch_size?); validation_intervall (RunConfig has no such field; did you "
        "mean validation_interval?). Correct or remove them."
    ) in " ".join(result.output.split())
    assert not (store / "distance_2d").exists()
