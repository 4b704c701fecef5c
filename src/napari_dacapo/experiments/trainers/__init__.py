"""Trainers (DaCapo's ``dacapo.experiments.trainers``)."""

from .augments import (
    AugmentConfig,
    ElasticAugmentConfig,
    GammaAugmentConfig,
    IntensityAugmentConfig,
    IntensityScaleShiftAugmentConfig,
    NoiseAugmentConfig,
    SimpleAugmentConfig,
)
from .batch_provider import Batch, BatchProvider
from .default_trainer import DefaultTrainer
from .default_trainer_config import DefaultTrainerConfig
from .snapshot import Snapshot, SnapshotArray
from .trainer import Trainer, TrainingDiverged
from .trainer_config import TrainerConfig

#: DaCapo's names for the default trainer.
GunpowderTrainer = DefaultTrainer
GunpowderTrainerConfig = DefaultTrainerConfig

__all__ = [
    "AugmentConfig",
    "Batch",
    "BatchProvider",
    "DefaultTrainer",
    "DefaultTrainerConfig",
    "ElasticAugmentConfig",
    "GammaAugmentConfig",
    "GunpowderTrainer",
    "GunpowderTrainerConfig",
    "IntensityAugmentConfig",
    "IntensityScaleShiftAugmentConfig",
    "NoiseAugmentConfig",
    "SimpleAugmentConfig",
    "Snapshot",
    "SnapshotArray",
    "Trainer",
    "TrainerConfig",
    "TrainingDiverged",
]
