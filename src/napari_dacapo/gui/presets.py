"""Starting points for the training panel: network and trainer presets, their networks
fitted to anisotropic voxels (:func:`fit_to_voxels`), and the default config of each task
a user can pick (some depend on the number of spatial axes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from funlib.geometry import Coordinate

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
from napari_dacapo.experiments.architectures.unet_geometry import UNetGeometry
from napari_dacapo.experiments.configs import ConfigError
from napari_dacapo.experiments.tasks.task_config import TaskConfig

__all__ = [
    "ANISOTROPY", "PRESETS", "Preset", "anisotropic_factors", "anisotropic_kernels",
    "fit_to_voxels",
    "is_anisotropic", "task_defaults", "task_for_dims",
]

#: Voxel sizes at least this uneven (largest / smallest spatial size) are anisotropic: the
#: panel fits the network's downsampling and input shape to them.
ANISOTROPY = 2.0


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


# -- anisotropic data ----------------------------------------------------------------------


def is_anisotropic(voxel_size: Sequence[float]) -> bool:
    """Whether the largest spatial voxel size is at least :data:`ANISOTROPY` times the
    smallest (e.g. an EM or confocal stack of scale (4, 1, 1))."""
    sizes = [float(v) for v in voxel_size]
    return min(sizes) > 0 and max(sizes) >= ANISOTROPY * min(sizes)


def anisotropic_factors(
    voxel_size: Sequence[float], levels: int, factor: int = 2
) -> list[Coordinate]:
    """Per-level downsampling for data of ``voxel_size``: an axis is downsampled only while
    its voxel size (after the levels above) is below ``factor`` times the finest one, so a
    coarse axis waits until the others reach it. Scale (4, 1, 1), two levels: (1, 2, 2),
    (1, 2, 2); scale (2, 1, 1): (1, 2, 2), (2, 2, 2); isotropic voxels: ``factor`` on
    every axis."""
    sizes = [float(v) for v in voxel_size]
    factors = []
    for _ in range(levels):
        finest = min(sizes)
        step = Coordinate(factor if v < factor * finest * (1 - 1e-9) else 1 for v in sizes)
        sizes = [v * f for v, f in zip(sizes, step)]
        factors.append(step)
    return factors


def anisotropic_kernels(
    voxel_size: Sequence[float], factors: Sequence[Sequence[int]], kernel: int = 3
) -> tuple[list[list[Coordinate]], list[list[Coordinate]]]:
    """``(kernel_size_down, kernel_size_up)`` for a UNet downsampling data of
    ``voxel_size`` by ``factors``: two convolutions per level, of size 1 along an axis
    whose voxels at that level are still at least :data:`ANISOTROPY` times the finest
    (convolving within slices until the other axes' voxels reach its size, as anisotropic
    EM networks do) and ``kernel`` along the others. Scale (4, 1, 1) downsampled by
    (1, 2, 2) twice: (1, 3, 3) on the two top levels, (3, 3, 3) at the bottom; a thin
    stack then loses 4 slices to the network instead of 20."""
    sizes = [float(v) for v in voxel_size]
    down = []
    for step in [*factors, None]:
        finest = min(sizes)
        level = Coordinate(1 if v >= ANISOTROPY * finest * (1 - 1e-9) else kernel for v in sizes)
        down.append([level, level])
        if step is not None:
            sizes = [v * f for v, f in zip(sizes, step)]
    return down, [list(level) for level in down[:-1]]


def _fit_input_shape(
    geometry: UNetGeometry, voxel_size: Sequence[float], base: Sequence[int],
    limit: Sequence[int] | None,
) -> Coordinate:
    """A valid input shape whose output covers about the same world extent along every
    axis: the finest axes keep ``base`` (snapped to a valid size), the others get the valid
    size whose output is nearest that extent. An axis above ``limit`` (voxels) takes the
    largest valid size within it, or the smallest valid size when none is."""
    smallest, period = geometry.smallest_input_shape(), geometry.period

    def output(axis: int, size: int) -> int:
        shape = list(smallest)
        shape[axis] = size
        return geometry.output_shape(shape)[axis]

    def within_limit(axis: int, size: int) -> int:
        if limit is None or size <= limit[axis]:
            return size
        steps = (limit[axis] - smallest[axis]) // period[axis]
        return smallest[axis] + max(steps, 0) * period[axis]

    sizes = [float(v) for v in voxel_size]
    fine = [axis for axis, v in enumerate(sizes) if v == min(sizes)]
    shape = list(geometry.nearest_valid_input_shapes(base)[1])
    for axis in fine:
        shape[axis] = within_limit(axis, shape[axis])
    extent = min(output(axis, shape[axis]) * sizes[axis] for axis in fine)
    for axis, v in enumerate(sizes):
        if axis in fine:
            continue
        # Valid sizes are smallest + k * period, and their outputs grow with k.
        target, size = extent / v, smallest[axis]
        while output(axis, size) < target:
            size += period[axis]
        lower = size - period[axis]
        if lower >= smallest[axis] and (
            target - output(axis, lower) <= output(axis, size) - target
        ):
            size = lower
        shape[axis] = within_limit(axis, size)
    return Coordinate(shape)


def fit_to_voxels(
    architecture: CNNectomeUNetConfig, voxel_size: Sequence[float],
    limit: Sequence[int] | None = None,
) -> CNNectomeUNetConfig:
    """``architecture`` (e.g. a :class:`Preset`'s, made for isotropic voxels) fitted to
    anisotropic data of ``voxel_size``: downsampling by :func:`anisotropic_factors`, an
    input shape whose output covers about the same world extent along every axis (the
    finest axes keep their input size) and an ``eval_shape_increase`` scaled alike.

    The input is not larger than ``limit`` (voxels, e.g. the image) where the network
    allows: as many levels as ``architecture`` has, or the most that fit in ``limit``.
    Kernel sizes are kept (of fewer levels, the top ones). Isotropic voxels (see
    :func:`is_anisotropic`) give ``architecture`` unchanged.
    """
    if not is_anisotropic(voxel_size) or len(voxel_size) != len(architecture.input_shape):
        return architecture
    levels = len(architecture.downsample_factors)
    fits = [_fit_levels(architecture, voxel_size, limit, n) for n in range(levels, 0, -1)]
    fits = [fit for fit in fits if fit is not None]
    if not fits:
        return architecture
    within = [fit for fit in fits if limit is None
              or all(s <= m for s, m in zip(fit.input_shape, limit))]
    return (within or fits)[0]


def _fit_levels(
    architecture: CNNectomeUNetConfig, voxel_size: Sequence[float],
    limit: Sequence[int] | None, levels: int,
) -> CNNectomeUNetConfig | None:
    """:func:`fit_to_voxels` with ``levels`` downsamplings (None if it cannot be made)."""
    old = architecture.downsample_factors
    factor = max((max(f) for f in old), default=2)
    factors = anisotropic_factors(voxel_size, levels, max(factor, 2))
    down, up = architecture.kernel_size_down, architecture.kernel_size_up
    if down is None and up is None:  # DaCapo's default kernels: made flat where z is coarse
        down, up = anisotropic_kernels(voxel_size, factors)
    # Kernel lists of a network with fewer levels keep their top levels.
    kernels = {"kernel_size_down": None if down is None else down[: levels + 1],
               "kernel_size_up": None if up is None else up[:levels]}
    geometry = UNetGeometry.create(
        len(voxel_size), factors, kernels["kernel_size_down"], kernels["kernel_size_up"],
        architecture.padding, architecture.upsample_factors,
    )
    input_shape = _fit_input_shape(geometry, voxel_size, architecture.input_shape, limit)
    increase = architecture.eval_shape_increase
    if increase is not None:  # the largest increase, given along the finest axes
        finest = min(float(v) for v in voxel_size)
        base = max(increase)
        increase = Coordinate(
            round(base * finest / float(v) / p) * p for v, p in zip(voxel_size, geometry.period)
        )
    try:
        return architecture.replace(
            input_shape=input_shape, downsample_factors=factors, eval_shape_increase=increase,
            **kernels,
        )
    except (ConfigError, ValueError):
        return None
