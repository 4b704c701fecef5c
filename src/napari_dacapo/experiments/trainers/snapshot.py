"""Snapshots: what the network saw, learned towards and predicted for one training sample."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate

__all__ = ["Snapshot", "SnapshotArray", "snapshot_writer", "write_snapshot"]


@dataclass(frozen=True)
class SnapshotArray:
    """One array of a snapshot.

    Attributes
    ----------
    data
        ``(*channels, *spatial)`` voxels.
    offset
        World position of the first voxel.
    voxel_size
        World size of a voxel.
    """

    data: np.ndarray
    offset: Coordinate
    voxel_size: Coordinate


@dataclass(frozen=True)
class Snapshot:
    """The arrays of the first sample of the batch of one iteration.

    Attributes
    ----------
    iteration
        The iteration whose batch this is.
    arrays
        ``raw``, ``gt``, ``mask``, ``target``, ``weight`` and ``prediction`` (after the
        task's evaluation activation, if any).
    """

    iteration: int
    arrays: dict[str, SnapshotArray]


def snapshot_writer() -> Callable[..., Any]:
    """The function snapshots are written with (``write_zarr_array``); raises an
    ``ImportError`` that names the fix when it is missing."""
    try:
        from ..datasplits.datasets.arrays.zarr_array import (
            write_zarr_array,
        )
    except ImportError as error:
        raise ImportError(
            "Storing snapshots needs napari_dacapo.experiments.datasplits.datasets.arrays."
            f"zarr_array.write_zarr_array, which could not be imported ({error}). Reinstall "
            "napari-dacapo, or set snapshot_interval to empty to train without snapshots."
        ) from error
    return write_zarr_array


def write_snapshot(
    snapshot: Snapshot,
    container: Path,
    spatial_axis_names: Sequence[str],
    units: Sequence[str],
) -> None:
    """Write every array of ``snapshot`` to ``<container>/<iteration>/<name>`` (zarr)."""
    write = snapshot_writer()
    dims = len(spatial_axis_names)
    for name, array in snapshot.arrays.items():
        channels = array.data.ndim - dims
        write(
            container,
            f"{snapshot.iteration}/{name}",
            array.data,
            array.voxel_size,
            array.offset,
            ["c^"] * channels + list(spatial_axis_names),
            list(units),
        )
