"""DaCapo's module name for the augment configs (``dacapo.experiments.trainers.gp_augments``);
they live in :mod:`napari_dacapo.experiments.trainers.augments`."""

from .augments import (
    AugmentConfig,
    ElasticAugmentConfig,
    GammaAugmentConfig,
    IntensityAugmentConfig,
    IntensityScaleShiftAugmentConfig,
    NoiseAugmentConfig,
    SimpleAugmentConfig,
)

__all__ = [
    "AugmentConfig",
    "ElasticAugmentConfig",
    "GammaAugmentConfig",
    "IntensityAugmentConfig",
    "IntensityScaleShiftAugmentConfig",
    "NoiseAugmentConfig",
    "SimpleAugmentConfig",
]
