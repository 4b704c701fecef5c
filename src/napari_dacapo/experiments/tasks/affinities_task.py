"""The affinities task: learn which neighbouring voxels belong to the same object, then
segment instances by mutex watershed (or seeded watershed) and score them as instances."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .evaluators.instance_evaluator import InstanceEvaluator
from .losses.affinities_loss import AffinitiesLoss
from .post_processors.affinities_post_processor import AffinitiesPostProcessor
from .post_processors.mutex_watershed_post_processor import MutexWatershedPostProcessor
from .post_processors.watershed_post_processor import WatershedPostProcessor
from .predictors.affinities_predictor import AffinitiesPredictor
from .task import Task

if TYPE_CHECKING:
    from .affinities_task_config import AffinitiesTaskConfig

#: ``AffinitiesTaskConfig.agglomeration`` -> the post-processor it names.
AGGLOMERATIONS: dict[str, type[AffinitiesPostProcessor]] = {
    "mutex_watershed": MutexWatershedPostProcessor,
    "watershed": WatershedPostProcessor,
}


class AffinitiesTask(Task):
    """:class:`AffinitiesPredictor` targets (plus optional LSDs), :class:`AffinitiesLoss`,
    a bias sweep of the configured agglomeration (:data:`AGGLOMERATIONS`; by default
    :class:`MutexWatershedPostProcessor`) and the :class:`InstanceEvaluator`.

    Parameters
    ----------
    task_config
        The :class:`AffinitiesTaskConfig` to build from.
    """

    def __init__(self, task_config: AffinitiesTaskConfig) -> None:
        self.predictor = AffinitiesPredictor(
            neighborhood=task_config.neighborhood,
            lsds=task_config.lsds,
            num_lsd_voxels=task_config.num_lsd_voxels,
            downsample_lsds=task_config.downsample_lsds,
            grow_boundary_iterations=task_config.grow_boundary_iterations,
            affs_weight_clipmin=task_config.affs_weight_clipmin,
            affs_weight_clipmax=task_config.affs_weight_clipmax,
            lsd_weight_clipmin=task_config.lsd_weight_clipmin,
            lsd_weight_clipmax=task_config.lsd_weight_clipmax,
            background_as_object=task_config.background_as_object,
        )
        self.loss = AffinitiesLoss(
            len(task_config.neighborhood), task_config.lsds_to_affs_weight_ratio
        )
        agglomeration = AGGLOMERATIONS[task_config.agglomeration]
        self.post_processor = agglomeration(offsets=task_config.neighborhood)
        self.evaluator = InstanceEvaluator()
