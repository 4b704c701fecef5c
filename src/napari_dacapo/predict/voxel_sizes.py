"""An input's voxel size compared with the training data's: a prediction at another voxel
size than the network learned may be meaningless (:class:`VoxelSizeWarning`)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate

from .training_data import training_raws

if TYPE_CHECKING:
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.experiments.run_config import RunConfig

__all__ = [
    "VoxelSizeWarning",
    "VOXEL_SIZE_FIX",
    "VOXEL_SIZE_FIX_COMMAND",
    "training_voxel_sizes",
    "voxel_size_mismatch",
    "voxel_size_text",
    "unchecked_voxel_size",
]


class VoxelSizeWarning(UserWarning):
    """The input of a prediction has a voxel size that the run's training data has not
    (see :func:`voxel_size_mismatch`)."""


#: What to do about an input whose voxel size is not the training data's.
VOXEL_SIZE_FIX = (
    "Resample the image to that voxel size; or, if the image's voxel size is recorded "
    "wrongly, give the right one (voxel_size= for an array; for a zarr array the "
    "voxel_size of its ZarrArrayConfig, or of its attributes)."
)

#: VOXEL_SIZE_FIX in the words of the predict command.
VOXEL_SIZE_FIX_COMMAND = (
    "Resample the image to that voxel size; or, if the image's voxel size is recorded "
    "wrongly (or not at all), give the right one with --voxel-size (one whole number per "
    "spatial axis, comma-separated, in the units of the training data's voxel size)."
)

#: False where prediction_input leaves the voxel size unchecked (unchecked_voxel_size).
_CHECK_VOXEL_SIZE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "napari_dacapo_check_voxel_size", default=True
)


def training_voxel_sizes(run: Run | RunConfig) -> list[Coordinate]:
    """The distinct voxel sizes of the raw data that the run (or run config) trains on, in
    dataset order (see :func:`~.training_data.training_raws`)."""
    return list(dict.fromkeys(raw.voxel_size for raw in training_raws(run)))


def voxel_size_mismatch(
    voxel_size: Sequence[float],
    training: Sequence[Sequence[float]],
    run_name: str,
    *,
    what: str = "The input's voxel size",
    fix: str = VOXEL_SIZE_FIX,
) -> str:
    """Why a prediction of an input of ``voxel_size`` may be meaningless: the voxel sizes
    of run ``run_name``'s training data, ``training``, do not include it ('' when they do,
    or are unknown). Sizes are equal to a relative 1e-6 (napari's scales are floats)."""
    if not training or any(
        len(size) == len(voxel_size) and np.allclose(voxel_size, size, rtol=1e-6, atol=0)
        for size in training
    ):
        return ""
    which = "the voxel size" if len(training) == 1 else "each voxel size"
    return (
        f"{what} {voxel_size_text(voxel_size)} differs from {which} of the data run "
        f"'{run_name}' was trained on, {', '.join(map(voxel_size_text, training))}: the "
        f"network sees "
        f"structures at another size than it learned, and its prediction may be "
        f"meaningless. {fix}"
    )


def voxel_size_text(size: Sequence[float]) -> str:
    """A voxel size as messages show it, e.g. ``(0.5, 0.5)``."""
    return f"({', '.join(f'{float(v):g}' for v in size)})"


@contextlib.contextmanager
def unchecked_voxel_size() -> Iterator[None]:
    """Within it (in this thread), :func:`prediction_input` does not compare the input's
    voxel size with the training data's: for callers that compared it already (blockwise
    workers: their job did, once) or compare it in units of their own (the predict panel,
    in the layers' units)."""
    token = _CHECK_VOXEL_SIZE.set(False)
    try:
        yield
    finally:
        _CHECK_VOXEL_SIZE.reset(token)
