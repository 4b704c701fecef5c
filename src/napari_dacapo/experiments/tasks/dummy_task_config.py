"""Config of the dummy task."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import option

from .dummy_task import DummyTask
from .task import Task
from .task_config import TaskConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class DummyTaskConfig(TaskConfig):
    """A small real task for tests and quick pipeline checks: regress the foreground
    (``gt != 0``) and score its thresholded prediction."""

    task_type: ClassVar[type[Task]] = DummyTask

    embedding_dims: int = option(
        1, min=1, help="Number of output channels (each learns the foreground)."
    )
    detection_threshold: float = option(
        0.5, help="Mean output above which a voxel counts as foreground."
    )
