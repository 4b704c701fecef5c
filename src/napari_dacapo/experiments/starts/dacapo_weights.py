"""Weights of DaCapo runs: found in DaCapo's run folders, read without DaCapo, and renamed
to this package's UNet, so that a model trained with DaCapo can be fine-tuned here.

DaCapo's weights store keeps ``<runs_base_dir>/<run>/checkpoints/iterations/<N>``: a
pickled ``dacapo.store.weights_store.Weights`` holding the model's and the optimizer's
state dicts. It is read with torch's safe loader, with a stand-in allowed for that one class
(nothing in the file is executed, and DaCapo need not be installed). DaCapo's
``CNNectomeUNet`` and ours have the same layers in the same order
(``tests/fixtures/dacapo``: DaCapo's own output for an input is reproduced); only the module
names differ, which :func:`rename_dacapo_state` maps.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

__all__ = [
    "dacapo_checkpoint", "dacapo_state", "read_dacapo_weights", "rename_dacapo_state",
    "DaCapoWeightsError",
]

#: Where DaCapo's weights store keeps a run's checkpoints, below the run's folder.
ITERATIONS_DIR = Path("checkpoints") / "iterations"

#: DaCapo's UNet module names -> ours (one prediction head: DaCapo's head index 0).
_BODY = r"^(architecture|chain\.0)\.unet\."
_RENAMES = [
    (re.compile(_BODY + r"l_conv\.(\d+)\.conv_pass\."), r"\1.down_convs.\2."),
    (re.compile(_BODY + r"r_up\.0\.(\d+)\.up\."), r"\1.ups.\2."),
    (re.compile(_BODY + r"r_conv\.0\.(\d+)\.conv_pass\."), r"\1.up_convs.\2."),
]


class DaCapoWeightsError(ValueError):
    """A DaCapo run folder or checkpoint that cannot be used; the message says why."""


class _DaCapoWeights:
    """Stands in for ``dacapo.store.weights_store.Weights`` while unpickling (its state,
    ``model`` and ``optimizer``, is set as attributes; no code of DaCapo's runs)."""

    model: dict[str, torch.Tensor]
    optimizer: dict


def dacapo_checkpoint(path: str | Path, criterion: str = "latest") -> tuple[Path, int | None]:
    """The checkpoint file that ``path`` and ``criterion`` name, and its iteration.

    ``path`` is a DaCapo run folder (holding ``checkpoints/iterations/<N>``), its
    ``iterations`` folder, or one checkpoint file (iteration None when its name is not a
    number); ``criterion`` is ``"latest"`` or an iteration number.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path, int(path.name) if path.name.isdigit() else None
    folder = path / ITERATIONS_DIR if (path / ITERATIONS_DIR).is_dir() else path
    stored = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) \
        if folder.is_dir() else []
    if not stored:
        raise DaCapoWeightsError(
            f"{path} is neither a DaCapo run folder with checkpoints ({ITERATIONS_DIR}/<N> "
            f"in it) nor a checkpoint file. Give the run's folder under DaCapo's "
            f"runs_base_dir, or one of its checkpoint files."
        )
    if criterion == "latest":
        iteration = stored[-1]
    elif str(criterion).isdigit():
        iteration = int(criterion)
    else:
        raise DaCapoWeightsError(
            f"Starting from the DaCapo run {path} takes 'latest' or an iteration number, not "
            f"{criterion!r}: its best iterations live in DaCapo's stats store, which "
            f"napari-dacapo does not read. Stored iterations: {stored}."
        )
    if iteration not in stored:
        raise DaCapoWeightsError(
            f"The DaCapo run {path} has no checkpoint at iteration {iteration}; stored "
            f"iterations: {stored}."
        )
    return folder / str(iteration), iteration


def dacapo_state(
    path: str | Path, criterion: str = "latest"
) -> tuple[dict[str, torch.Tensor], Path, int | None]:
    """The model weights of the DaCapo checkpoint that ``path`` and ``criterion`` name
    (:func:`dacapo_checkpoint`), renamed to our UNet, with the file and its iteration."""
    file, iteration = dacapo_checkpoint(path, criterion)
    return rename_dacapo_state(read_dacapo_weights(file)), file, iteration


def read_dacapo_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a DaCapo checkpoint file, with DaCapo's module names."""
    try:
        with torch.serialization.safe_globals(
            [(_DaCapoWeights, "dacapo.store.weights_store.Weights")]
        ):
            weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign or truncated files
        raise DaCapoWeightsError(
            f"{path} cannot be read as a DaCapo checkpoint ({type(e).__name__}: {e})."
        ) from e
    state = weights.model if isinstance(weights, _DaCapoWeights) else (
        weights.get("model") if isinstance(weights, dict) else None
    )
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise DaCapoWeightsError(f"{path} holds no model weights (not a DaCapo checkpoint).")
    return dict(state)


def rename_dacapo_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with DaCapo's UNet module names replaced by ours (other names kept, so
    that a layer without a counterpart shows as missing when the weights are loaded)."""
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in _RENAMES:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed
