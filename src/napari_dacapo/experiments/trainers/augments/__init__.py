"""Training augments (DaCapo's ``trainers.gp_augments``): configs, and the augments they
build, which work on the numpy arrays of one sample."""

from .augment import Augment, AugmentPipeline, SampleArray, crop_center
from .augment_config import AugmentConfig
from .elastic_augment import ElasticAugment
from .elastic_config import ElasticAugmentConfig
from .gamma_config import GammaAugmentConfig
from .intensity_augments import (
    GammaAugment,
    IntensityAugment,
    IntensityScaleShiftAugment,
    NoiseAugment,
    RawAugment,
)
from .intensity_config import IntensityAugmentConfig
from .intensity_scale_shift_config import IntensityScaleShiftAugmentConfig
from .noise_config import NoiseAugmentConfig
from .simple_augment import SimpleAugment
from .simple_config import SimpleAugmentConfig

__all__ = [
    "Augment",
    "AugmentConfig",
    "AugmentPipeline",
    "ElasticAugment",
    "ElasticAugmentConfig",
    "GammaAugment",
    "GammaAugmentConfig",
    "IntensityAugment",
    "IntensityAugmentConfig",
    "IntensityScaleShiftAugment",
    "IntensityScaleShiftAugmentConfig",
    "NoiseAugment",
    "NoiseAugmentConfig",
    "RawAugment",
    "SampleArray",
    "SimpleAugment",
    "SimpleAugmentConfig",
    "crop_center",
]
