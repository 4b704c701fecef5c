"""Config of the hot-distance task."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import option

from .distance_task_config import (
    CHANNELS_HELP,
    CLIP_DISTANCE_HELP,
    MASK_DISTANCES_HELP,
    SCALE_FACTOR_HELP,
    TOL_DISTANCE_HELP,
    check_distance_config,
)
from .hot_distance_task import HotDistanceTask
from .task import Task
from .task_config import TaskConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class HotDistanceTaskConfig(TaskConfig):
    """The network learns, per class, a binary ("hot") map and the signed distance to the
    class's boundaries (``2 * len(channels)`` outputs); the distances are an auxiliary
    target that sharpens the binary maps, which are thresholded and scored."""

    task_type: ClassVar[type[Task]] = HotDistanceTask

    channels: list[str] = option(help=CHANNELS_HELP)
    clip_distance: float = option(help=CLIP_DISTANCE_HELP, world=True)
    tol_distance: float = option(help=TOL_DISTANCE_HELP, world=True)
    scale_factor: float = option(1.0, help=SCALE_FACTOR_HELP, world=True)
    mask_distances: bool = option(False, help=MASK_DISTANCES_HELP)

    def validate(self) -> None:
        check_distance_config(
            self, channels=self.channels, scale_factor=self.scale_factor,
            clip_distance=self.clip_distance, tol_distance=self.tol_distance,
        )
