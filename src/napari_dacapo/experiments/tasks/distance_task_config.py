"""Config of the distance task, and the checks the whole distance family shares."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..configs import Config, option

from .distance_task import DistanceTask
from .predictors.distance_predictor import distance_parameter_problems
from .task import Task
from .task_config import TaskConfig

CHANNELS_HELP = (
    "One name per class to segment; the network predicts one channel per name. With one "
    "name, every non-zero label is foreground (distinct ids stay apart). With several, the "
    "label image holds class ids 1..N in this order, or the ground truth has one binary "
    "channel per name."
)
CLIP_DISTANCE_HELP = (
    "Distances are clipped at this value (world units, e.g. nm; in napari the layers' scale "
    "units), and the evaluator clips mean_false_distance_clipped at it."
)
TOL_DISTANCE_HELP = (
    "Tolerance (world units) of the evaluator's *_with_tolerance scores: a predicted voxel this "
    "close to the truth counts as correct."
)
SCALE_FACTOR_HELP = (
    "Distances are divided by this (world units) before the tanh: the target reaches 0.76 at "
    "this distance from the boundary. Larger values give a gentler slope."
)
MASK_DISTANCES_HELP = (
    "Give no loss weight where the distance cannot be known: voxels closer to unlabelled or "
    "out-of-crop regions than to the boundary they see (within the clip distance)."
)


def check_distance_config(config: Config, **values: Any) -> None:
    """Raise ``config.error`` for the first problem with the distance-family ``values``."""
    for field, problem, fix in distance_parameter_problems(**values):
        raise config.error(field, problem, fix)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistanceTaskConfig(TaskConfig):
    """Signed distance transforms as a way to segment: the network learns
    ``tanh(distance / scale_factor)`` to the nearest object boundary, positive inside and
    negative outside. Objects are the connected components of the prediction above a
    threshold around 0, scored as masks and as instances.

    Distances give a dense signal: unlike affinities, one wrong voxel cannot merge two
    well-separated objects.
    """

    task_type: ClassVar[type[Task]] = DistanceTask

    channels: list[str] = option(help=CHANNELS_HELP)
    clip_distance: float = option(help=CLIP_DISTANCE_HELP, world=True)
    tol_distance: float = option(help=TOL_DISTANCE_HELP, world=True)
    scale_factor: float = option(1.0, help=SCALE_FACTOR_HELP, world=True)
    mask_distances: bool = option(False, help=MASK_DISTANCES_HELP)
    clipmin: float = option(
        0.05, min=0.0, max=1.0, advanced=True,
        help="Lower bound on the foreground (and background) fraction when balancing the "
        "loss weights, which caps the weight of a rare class.",
    )
    clipmax: float = option(
        0.95, min=0.0, max=1.0, advanced=True,
        help="Upper bound on the foreground (and background) fraction when balancing the "
        "loss weights.",
    )

    def validate(self) -> None:
        check_distance_config(
            self, channels=self.channels, scale_factor=self.scale_factor,
            clip_distance=self.clip_distance, tol_distance=self.tol_distance,
            clipmin=self.clipmin, clipmax=self.clipmax,
        )
