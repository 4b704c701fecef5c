"""Config of the one-hot (semantic segmentation) task."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import option

from .one_hot_task import OneHotTask
from .task import Task
from .task_config import TaskConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class OneHotTaskConfig(TaskConfig):
    """Semantic segmentation: every voxel gets one of ``classes``. The ground truth holds
    class indices, ``0`` meaning ``classes[0]`` (usually background); voxels of unknown
    class must be left out through the mask."""

    task_type: ClassVar[type[Task]] = OneHotTask

    classes: list[str] = option(
        help="Class names, in the order of the ids in the ground truth (id 0 first), "
        "e.g. [background, membrane, mitochondria]."
    )
    kernel_size: int | None = option(
        None,
        min=1,
        help="Size of the prediction head's convolution (odd); empty means 1.",
    )

    @property
    def head_kernel_size(self) -> int:
        """The head's kernel size, with the default filled in."""
        return 1 if self.kernel_size is None else self.kernel_size

    def validate(self) -> None:
        if len(self.classes) < 2:
            raise self.error(
                "classes", f"has {len(self.classes)} class(es)", "Give at least two classes."
            )
        if any(not isinstance(c, str) or not c.strip() for c in self.classes):
            raise self.error("classes", "holds an empty name", "Name every class.")
        if len(set(self.classes)) != len(self.classes):
            raise self.error("classes", "repeats a name", "Give every class a unique name.")
        if self.head_kernel_size % 2 == 0:
            raise self.error(
                "kernel_size", f"is even ({self.kernel_size})", "Use an odd size such as 1 or 3."
            )
