"""Run settings as YAML files: what the training panel saves and loads.

The panel's data are the picked layers, so a saved file holds a RunConfig *without* its
datasplit: task, architecture, trainer and the run fields. Loading also accepts complete
run configs (napari-dacapo's or DaCapo's own YAML), whose data are then ignored.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from napari_dacapo.experiments.architectures.architecture_config import ArchitectureConfig
from napari_dacapo.experiments.configs import (
    ConfigError,
    from_dict,
    load_config,
    scale_world_lengths,
    to_dict,
    unknown_field_hint,
)
from napari_dacapo.experiments.run_config import RunConfig
from napari_dacapo.experiments.starts.start_config import StartConfig
from napari_dacapo.experiments.tasks.task_config import TaskConfig
from napari_dacapo.experiments.trainers.trainer_config import TrainerConfig
from napari_dacapo.store.atomic import atomic_write_text
from napari_dacapo.store.file_store import world_factor_of

__all__ = ["load_settings", "save_settings"]

PARTS = {
    "task_config": TaskConfig,
    "architecture_config": ArchitectureConfig,
    "trainer_config": TrainerConfig,
}
RUN_FIELDS = ("name", "num_iterations", "validation_interval", "start_config")
HEADER = (
    "# napari-dacapo run settings: a RunConfig without its datasplit (the data are the\n"
    "# layers picked in the training panel).\n"
)


def save_settings(path: str | Path, settings: dict[str, Any]) -> Path:
    """Write ``settings`` (the :data:`PARTS` configs and run fields) atomically."""
    path = Path(path)
    data = {"__type__": "RunConfig", **{k: to_dict(v) for k, v in settings.items()}}
    atomic_write_text(path, HEADER + yaml.safe_dump(data, sort_keys=False))
    return path


def load_settings(path: str | Path) -> dict[str, Any]:
    """The :data:`PARTS` configs and the run fields of a settings file or a run config.

    Raises
    ------
    ConfigError
        If the file holds neither, naming the problem.
    """
    try:
        config = load_config(path)
    except ConfigError as error:
        # Saved settings have no datasplit, which a complete RunConfig needs.
        try:
            data = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError:
            raise error from None
        if not isinstance(data, dict) or not set(PARTS) & set(data):
            raise error from None
        # A misspelt run field is refused here too, as load_config refuses it: dropped, the
        # run would train with its default.
        known = [f.name for f in dataclasses.fields(RunConfig)]
        unknown = [f"{key} ({unknown_field_hint(RunConfig, key, known)})" for key in data
                   if key != "__type__" and RunConfig.field_aliases.get(key, key) not in known]
        missing = [key for key in PARTS if key not in data]
        if missing or unknown:
            # Settings, by their parts, but not whole: say what to add and what to correct
            # (load_config's own error speaks of a complete run config's type tag).
            raise ConfigError(" ".join(filter(None, (
                f"{path} lacks {', '.join(missing)}: run settings need "
                f"{', '.join(PARTS)} (save settings from the panel to see the format)."
                if missing else "",
                f"Unknown field(s): {'; '.join(unknown)}. Correct or remove them."
                if unknown else "",
            ))))
        settings = {key: from_dict(data[key], cls, _path=key) for key, cls in PARTS.items()}
        for key in RUN_FIELDS:
            if isinstance(data.get(key), dict):
                settings[key] = from_dict(data[key], StartConfig, _path=key)
            elif key in data:
                settings[key] = data[key]
        return settings
    settings = {key: getattr(config, key) for key in (*PARTS, *RUN_FIELDS) if hasattr(config, key)}
    # A stored run's config is in its integer world units; the forms show the layers'.
    factor = world_factor_of(Path(path).parent)
    if "task_config" in settings:
        settings["task_config"] = scale_world_lengths(settings["task_config"], 1 / factor)
    return settings
