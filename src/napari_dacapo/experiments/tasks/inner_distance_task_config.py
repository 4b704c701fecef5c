"""Config of the inner distance task."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import option

from .distance_task_config import (
    CHANNELS_HELP,
    CLIP_DISTANCE_HELP,
    SCALE_FACTOR_HELP,
    TOL_DISTANCE_HELP,
    check_distance_config,
)
from .inner_distance_task import InnerDistanceTask
from .task import Task
from .task_config import TaskConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class InnerDistanceTaskConfig(TaskConfig):
    """The network learns ``tanh(distance / scale_factor)`` from each object voxel to its own
    object's boundary, and 0 outside objects; objects are the connected components of the
    prediction above a threshold, scored as masks and as instances."""

    task_type: ClassVar[type[Task]] = InnerDistanceTask

    channels: list[str] = option(help=CHANNELS_HELP)
    clip_distance: float = option(help=CLIP_DISTANCE_HELP, world=True)
    tol_distance: float = option(help=TOL_DISTANCE_HELP, world=True)
    scale_factor: float = option(1.0, help=SCALE_FACTOR_HELP, world=True)

    def validate(self) -> None:
        check_distance_config(
            self, channels=self.channels, scale_factor=self.scale_factor,
            clip_distance=self.clip_distance, tol_distance=self.tol_distance,
        )
