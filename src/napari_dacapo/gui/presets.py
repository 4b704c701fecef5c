"""Starting points for the training panel: network and trainer presets, and the default
config of each task a user can pick (some depend on the number of spatial axes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from napari_dacapo.experiments import (
    AffinitiesTaskConfig,
    CNNectomeUNetConfig,
    Config,
    DefaultTrainerConfig,
    DistanceTaskConfig,
    HotDistanceTaskConfig,
    InnerDistanceTaskConfig,
    IntensityAugmentConfig,
    OneHotTaskConfig,
    SimpleAugmentConfig,
)
from napari_dacapo.experiments.tasks.task_config import TaskConfig

__all__ = ["PRESETS", "Preset", "task_defaults", "task_for_dims"]


@dataclass(frozen=True)
class Preset:
    """A network and trainer sized for one kind of data and machine.

    Attributes
    ----------
    dims
        Spatial axes of the data it suits (2 or 3).
    input_shape, levels, num_fmaps, fmap_inc_factor, eval_shape_increase
        The UNet (``levels`` = number of 2x downsamplings; every shape fits them).
    batch_size, num_iterations, validation_interval, snapshot_interval
        The training schedule.
    """

    dims: int
    input_shape: tuple[int, ...]
    levels: int
    num_fmaps: int
    fmap_inc_factor: int
    eval_shape_increase: tuple[int, ...]
    batch_size: int
    num_iterations: int
    validation_interval: int
    snapshot_interval: int

    def architecture(self, fmaps_in: int = 1) -> CNNectomeUNetConfig:
        return CNNectomeUNetConfig(
            name=f"unet_{self.dims}d",
            input_shape=self.input_shape,
            eval_shape_increase=self.eval_shape_increase,
            fmaps_in=fmaps_in,
            fmaps_out=self.num_fmaps,
            num_fmaps=self.num_fmaps,
            fmap_inc_factor=self.fmap_inc_factor,
            downsample_factors=[(2,) * self.dims] * self.levels,
        )

    def trainer(self) -> DefaultTrainerConfig:
        return DefaultTrainerConfig(
            name="default",
            batch_size=self.batch_size,
            # 1e-4 learned nothing visible on the 2D sample in 200 iterations; 1e-3 does
            # within a few hundred, which is what interactive training needs.
            learning_rate=1e-3,
            augments=[
                SimpleAugmentConfig(name="mirror_transpose"),
                IntensityAugmentConfig(name="intensity", scale=(0.9, 1.1), shift=(-0.1, 0.1)),
            ],
            snapshot_interval=self.snapshot_interval,
        )


PRESETS: dict[str, Preset] = {
    "2D small": Preset(2, (92, 92), 2, 12, 2, (64, 64), 4, 2000, 500, 100),
    "3D small": Preset(3, (60, 60, 60), 2, 8, 2, (32, 32, 32), 2, 3000, 500, 100),
    "3D large": Preset(3, (132, 132, 132), 3, 12, 3, (64, 64, 64), 1, 20000, 1000, 500),
}


def task_defaults(dims: int) -> dict[type[Config], Callable[[], TaskConfig]]:
    """The tasks offered in the panel, each with its default config for ``dims`` axes,
    in the order shown (distances are in world units)."""
    distance = {"channels": ["foreground"], "clip_distance": 10.0, "tol_distance": 2.0,
                "scale_factor": 4.0}
    one_steps = [tuple(int(i == axis) for i in range(dims)) for axis in range(dims)]
    return {
        DistanceTaskConfig: lambda: DistanceTaskConfig(name="distance", **distance),
        AffinitiesTaskConfig: lambda: AffinitiesTaskConfig(
            name="affinities", neighborhood=one_steps
        ),
        OneHotTaskConfig: lambda: OneHotTaskConfig(
            name="one_hot", classes=["background", "foreground"]
        ),
        InnerDistanceTaskConfig: lambda: InnerDistanceTaskConfig(
            name="inner_distance", **distance
        ),
        HotDistanceTaskConfig: lambda: HotDistanceTaskConfig(name="hot_distance", **distance),
    }


def task_for_dims(task: TaskConfig, dims: int) -> TaskConfig:
    """``task`` made to fit ``dims`` spatial axes (an affinities neighbourhood of another
    dimensionality is replaced by the one-step offsets)."""
    if isinstance(task, AffinitiesTaskConfig) and len(task.neighborhood[0]) != dims:
        default = task_defaults(dims)[AffinitiesTaskConfig]()
        return task.replace(neighborhood=default.neighborhood)  # type: ignore[attr-defined]
    return task
