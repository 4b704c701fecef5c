from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import Config

from .task import Task


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskConfig(Config):
    """Base of task configs; ``task_type(config)`` builds the task."""

    task_type: ClassVar[type[Task]]
