"""Export a trained model for use outside napari: a TorchScript file and a YAML file that
says how to feed it (input shape, voxel size, normalisation) and how to read its output
(shape, voxel size, channels, eval activation, best post-processing parameters).

Voxel sizes are in the units of the data the run was trained on: a run trained on napari
layers at a fractional scale (0.5 µm) computes in integer units of 1/``world_factor``
(see ``gui/layer_arrays.py``) and records that factor with the run; the YAML divides by
it, and also gives the integer ``run_voxel_size`` that the run's config and arrays use.

The TorchScript model is traced on the CPU in fp32 and eval mode, so it includes the task's
eval activation and needs neither napari-dacapo nor its Python code to run. It takes
exactly the input shape written in the YAML; predict larger images tile by tile, stepping
by the output shape and growing each tile by ``context`` input voxels on every side (that is
what :mod:`napari_dacapo.predict` does).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml
from funlib.geometry import Coordinate

from napari_dacapo import __version__

if TYPE_CHECKING:
    from napari_dacapo.checkpoints import Checkpoint
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore

__all__ = ["ExportedModel", "export_model", "MODEL_FILE", "METADATA_FILE"]

MODEL_FILE = "model.torchscript.pt"
METADATA_FILE = "model.yaml"
SAMPLE_INPUT_FILE = "sample_input.npy"
SAMPLE_OUTPUT_FILE = "sample_output.npy"
#: Version of the layout of :data:`METADATA_FILE`; raised when a field changes meaning.
#: 2: ``voxel_size`` in the training data's units (divided by ``world_factor``), and
#: ``run_voxel_size`` in the run's integer units.
FORMAT_VERSION = 2

_RESTORE_DATA = (
    "The export records the training data's voxel size and normalisation: restore that "
    "data (its paths are in the run's config.yaml)."
)


@dataclass(frozen=True)
class ExportedModel:
    """The files an export wrote.

    Attributes
    ----------
    directory
        The output folder.
    model
        The TorchScript file (load it with ``torch.jit.load``).
    metadata
        The YAML file describing input, output, normalisation and post-processing.
    sample_input, sample_output
        A test input of the traced shape and the model's output for it (``.npy``), to
        check the model where it is used.
    iteration
        The checkpoint's iteration.
    """

    directory: Path
    model: Path
    metadata: Path
    sample_input: Path
    sample_output: Path
    iteration: int


def export_model(
    run: Run | str,
    checkpoint: Checkpoint,
    output_dir: str | Path,
    *,
    criterion: str | None = None,
    store: FileStore | None = None,
    overwrite: bool = False,
) -> ExportedModel:
    """Write a run's model at ``checkpoint`` as TorchScript plus ``model.yaml``.

    Parameters
    ----------
    run
        A Run or the name of a stored run.
    checkpoint
        An iteration, ``"latest"`` or ``"best:<criterion>"``.
    output_dir
        Folder for the files (created if missing).
    criterion
        Whose best post-processing parameters to record (default: the criterion of a
        ``"best:<criterion>"`` checkpoint; without either, none are recorded).
    store
        The store holding the run.
    overwrite
        Replace the files of an earlier export in ``output_dir``; without it they are a
        ``FileExistsError``, raised before any work.

    Returns
    -------
    ExportedModel
        The written paths.
    """
    from napari_dacapo.checkpoints import (
        best_parameters,
        load_model,
        load_run,
        resolve_checkpoint,
        resolve_criterion,
    )
    from napari_dacapo.predict import TileGeometry, training_intensity_range, training_raw
    from napari_dacapo.store.file_store import world_factor_of

    directory = Path(output_dir)
    if not overwrite and (directory / METADATA_FILE).exists():
        raise FileExistsError(
            f"{directory} already holds an exported model ({METADATA_FILE}). Pass "
            f"overwrite=True (--overwrite) to replace it, or choose another folder."
        )
    run, store = load_run(run, store)
    iteration, implied = resolve_checkpoint(run, checkpoint, store)
    # Recorded by its full name (f1_score: the channel's <channel>__f1_score).
    criterion = resolve_criterion(run, criterion or implied) if criterion or implied else None
    parameters = best_parameters(run, criterion, store) if criterion else None
    # Read before any warning about the criterion: a checkpoint cut short is the problem
    # to fix, and no parameters are recorded for a model that cannot be exported.
    model = load_model(run, iteration, store).float().eval()
    if parameters is None and len(list(run.task.parameters)) > 1:
        warnings.warn(
            f"No criterion given: the export records no post-processing parameters (run "
            f"'{run.name}' has several). Pass criterion= (--criterion), or a "
            f"'best:<criterion>' checkpoint, to record the best ones.",
            stacklevel=2,
        )
    raw = training_raw(run, "its voxel size", _RESTORE_DATA)
    intensity_range = training_intensity_range(run)
    factor = world_factor_of(store.run_dir(run.name)) if store is not None else 1.0

    input_shape = Coordinate(model.eval_input_shape)
    channels_out, output_shape = model.compute_output_shape(input_shape)
    geometry = TileGeometry.for_model(model, raw.voxel_size)
    example = torch.rand(
        (1, model.num_in_channels, *input_shape), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad(), warnings.catch_warnings():
        # The trace fixes the shape checks and crops of the network to the traced input
        # shape, which is what torch warns about; the YAML states that fixed shape.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example)
        output = traced(example)

    directory.mkdir(parents=True, exist_ok=True)
    exported = ExportedModel(
        directory, directory / MODEL_FILE, directory / METADATA_FILE,
        directory / SAMPLE_INPUT_FILE, directory / SAMPLE_OUTPUT_FILE, iteration,
    )
    traced.save(str(exported.model))
    np.save(exported.sample_input, example.numpy())
    np.save(exported.sample_output, output.numpy())

    spatial_axes = raw.axis_names[raw.channel_dims :]  # the channel axis comes first
    metadata = {
        "format_version": FORMAT_VERSION,
        "napari_dacapo_version": __version__,
        "run": run.name,
        "iteration": iteration,
        "checkpoint": str(checkpoint),
        "world_factor": _number(factor),
        "files": {
            "torchscript": MODEL_FILE,
            "sample_input": SAMPLE_INPUT_FILE,
            "sample_output": SAMPLE_OUTPUT_FILE,
        },
        "input": {
            "axes": ["batch", "channel", *spatial_axes],
            "shape": [1, model.num_in_channels, *input_shape],
            "train_shape": list(model.input_shape),
            "dtype": "float32",
            "voxel_size": _in_data_units(raw.voxel_size, factor),
            "units": _units(run, raw, store),
            "run_voxel_size": list(raw.voxel_size),
            "normalisation": _normalisation(_stored_dtype(raw), intensity_range),
        },
        "output": {
            "axes": ["batch", "channel", *spatial_axes],
            "shape": [1, channels_out, *output_shape],
            "channels": list(run.task.predictor.channels),
            "voxel_size": _in_data_units(geometry.output_voxel_size, factor),
            "run_voxel_size": list(geometry.output_voxel_size),
            "activation": (
                type(model.eval_activation).__name__ if model.eval_activation else None
            ),
            "context": list(geometry.context / raw.voxel_size),
        },
        "post_processing": {
            "post_processor": type(run.task.post_processor).__name__,
            "criterion": criterion,
            "parameters": None if parameters is None else _plain(
                {f.name: getattr(parameters, f.name) for f in dataclasses.fields(parameters)}
            ),
            # The parameters are the best over all validated iterations (as apply uses
            # them), which need not be the exported iteration: said, not hidden.
            "validated_iteration": (
                int(best["iteration"])
                if criterion and (best := store.retrieve_best(run.name, criterion)) else None
            ),
        },
    }
    exported.metadata.write_text(
        "# napari-dacapo model export: how to feed the TorchScript model and read its output.\n"
        + yaml.safe_dump(_plain(metadata), sort_keys=False)
    )
    return exported


def _in_data_units(values: Any, factor: float) -> list:
    """Integer run units (``values``) in the units of the training data."""
    return [_number(v / factor) for v in values]


def _number(value: float) -> int | float:
    """``value``, an int when it is whole (YAML ``10``, not ``10.0``)."""
    return int(value) if float(value).is_integer() else float(value)


def _units(run: Run, raw: Any, store: Any) -> list[str]:
    """The training data's units per spatial axis (``''``: unknown): those its array
    records, else the napari units the plugin's writer recorded with it (the array holds
    ``''`` where its geometry was multiplied by a world factor), else those of the layers
    a run made in the training panel was trained on (its display record)."""
    from napari_dacapo._reader import NO_UNIT, recorded_display_of
    from napari_dacapo.predict import training_raw_configs
    from napari_dacapo.store.file_store import read_display

    units = [str(u) for u in raw.units]
    if any(units):
        return units
    configs = training_raw_configs(run)
    recorded = recorded_display_of(configs[0] if configs else None).get("units") or []
    if len(recorded) < len(units) and store is not None:
        recorded = read_display(store.run_dir(run.name)).get("units") or []
    if len(recorded) < len(units):
        return units
    return ["" if u == NO_UNIT else str(u) for u in recorded[len(recorded) - len(units):]]


def _stored_dtype(raw: Any) -> np.dtype:
    """The dtype of the data the run's training raw array reads, before the rescaling of
    an IntensitiesArrayConfig in its chain (whose array is float32): what the
    normalisation's rule is applied to."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import WrappedArray
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_array import (
        IntensitiesArray,
    )

    array = raw
    while isinstance(array, WrappedArray):  # through crops to the rescaled array
        if isinstance(array, IntensitiesArray):
            return np.dtype(array.source.dtype)
        array = array.source
    return np.dtype(raw.dtype)


def _normalisation(dtype: np.dtype, intensity_range: tuple[float, float] | None) -> dict:
    """How raw data of ``dtype`` (as stored) becomes the network's float32 input (as in
    training)."""
    if intensity_range is not None:
        lo, hi = intensity_range
        return {
            "rule": f"x -> (x - {lo}) / ({hi} - {lo}) as float32 (min maps to 0, max to 1)",
            "intensity_range": [lo, hi],
            "training_raw_dtype": str(dtype),
        }
    return {
        "rule": "integer data: x -> x / (maximum of its dtype), e.g. 255 for uint8, 65535 for "
        "uint16; float data: used as it is",
        "intensity_range": None,
        "training_raw_dtype": str(dtype),
    }


def _plain(value: Any) -> Any:
    """``value`` as plain YAML-safe data (tuples and Coordinates as lists, numpy scalars as
    numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
