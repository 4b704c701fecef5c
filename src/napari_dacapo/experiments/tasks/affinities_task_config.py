"""Config of the affinities task."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from funlib.geometry import Coordinate

from ..configs import option

from .affinities_task import AGGLOMERATIONS, AffinitiesTask
from .post_processors.affinities_post_processor import is_nearest
from .task import Task
from .task_config import TaskConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class AffinitiesTaskConfig(TaskConfig):
    """Instance segmentation through affinities: for every offset of the neighborhood, the
    network predicts whether a voxel and its neighbour at that offset belong to the same
    object; a mutex watershed (or a seeded watershed) turns the affinities into objects.

    Example: ``neighborhood=[[1, 0, 0], [0, 1, 0], [0, 0, 1]]`` for 3D, ``[[1, 0], [0, 1]]``
    for 2D; add longer offsets such as ``[0, 0, 3]`` to teach the network more context.
    """

    task_type: ClassVar[type[Task]] = AffinitiesTask
    # DaCapo 0.2's name of num_lsd_voxels.
    field_aliases: ClassVar[dict[str, str]] = {"num_voxels": "num_lsd_voxels"}

    neighborhood: list[Coordinate] = option(
        help="Offsets (in voxels, one entry per spatial axis) to predict affinities for; "
        "include the one-step offsets of every axis, e.g. [[1,0,0],[0,1,0],[0,0,1]]."
    )
    lsds: bool = option(
        False,
        help="Also learn local shape descriptors (an auxiliary task that improves the "
        "affinities; 10 extra channels in 3D, 6 in 2D).",
    )
    num_lsd_voxels: int = option(
        10, min=1, help="Sigma of the local shape descriptors, in voxels of the largest axis."
    )
    downsample_lsds: int = option(
        1,
        min=1,
        help="Compute the descriptors on every n-th voxel per axis (faster training).",
    )
    lsds_to_affs_weight_ratio: float = option(
        1.0, min=0.0, help="Weight of the descriptor loss relative to the affinity loss."
    )
    grow_boundary_iterations: int = option(
        0,
        min=0,
        help="Turn voxels within this many voxels of a border between two objects into "
        "background, so that touching objects are learned with a gap between them.",
    )
    affs_weight_clipmin: float = option(
        0.05,
        min=0.0,
        max=1.0,
        help="Lower bound on the class fraction used to balance the affinity weights.",
    )
    affs_weight_clipmax: float = option(
        0.95,
        min=0.0,
        max=1.0,
        help="Upper bound on the class fraction used to balance the affinity weights.",
    )
    lsd_weight_clipmin: float = option(
        0.05,
        min=0.0,
        max=1.0,
        help="Lower bound on the foreground fraction used to balance the descriptor weights.",
    )
    lsd_weight_clipmax: float = option(
        0.95,
        min=0.0,
        max=1.0,
        help="Upper bound on the foreground fraction used to balance the descriptor weights.",
    )
    agglomeration: str = option(
        "mutex_watershed",
        choices=tuple(AGGLOMERATIONS),
        help="How validation turns affinities into objects: 'mutex_watershed' (joins voxels "
        "along affinities above the bias, keeps them apart along those below it, long "
        "offsets only repel) or 'watershed' (seeded watershed of the one-step affinities).",
    )
    background_as_object: bool = option(
        False,
        help="Treat the background as one more object: background voxels get high affinity "
        "to each other instead of 0.",
    )

    def validate(self) -> None:
        offsets = self.neighborhood
        if not offsets:
            raise self.error(
                "neighborhood", "is empty", "Give at least one offset, e.g. [[0, 0, 1]]."
            )
        dims = {len(o) for o in offsets}
        if len(dims) != 1:
            raise self.error(
                "neighborhood",
                f"mixes offsets with {sorted(dims)} axes",
                "Give every offset one entry per spatial axis.",
            )
        (n,) = dims
        for o in offsets:
            if not any(o):
                raise self.error("neighborhood", "holds a zero offset", "Remove it.")
        if len({tuple(o) for o in offsets}) != len(offsets):
            raise self.error("neighborhood", "repeats an offset", "List every offset once.")
        if not any(is_nearest(o) for o in offsets):
            raise self.error(
                "neighborhood",
                "has no one-step offset, which the agglomeration needs to join voxels",
                f"Add e.g. {[0] * (n - 1) + [1]}.",
            )
        if self.lsds and n not in (2, 3):
            raise self.error("lsds", f"need 2 or 3 spatial axes, not {n}", "Set lsds to False.")
        for kind in ("affs", "lsd"):
            lo = getattr(self, f"{kind}_weight_clipmin")
            hi = getattr(self, f"{kind}_weight_clipmax")
            if lo > hi:
                raise self.error(
                    f"{kind}_weight_clipmin",
                    f"({lo}) is above {kind}_weight_clipmax ({hi})",
                    "Make the minimum at most the maximum.",
                )
