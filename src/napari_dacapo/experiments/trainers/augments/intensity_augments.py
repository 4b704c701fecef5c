"""Augments of the raw intensities only (labels and mask are left as they are)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate

from .augment import RAW, Augment, Sample, crop_center

if TYPE_CHECKING:
    from .gamma_config import GammaAugmentConfig
    from .intensity_config import IntensityAugmentConfig
    from .intensity_scale_shift_config import IntensityScaleShiftAugmentConfig
    from .noise_config import NoiseAugmentConfig


class RawAugment(Augment):
    """An augment that changes only the ``"raw"`` array of a sample, voxel by voxel."""

    keeps_voxel_grid = True

    def apply(self, sample: Sample, size: Coordinate, rng: np.random.Generator) -> Sample:
        out = crop_center(sample, size)
        raw = out[RAW]
        out[RAW] = raw.with_data(
            self.transform(raw.data.astype(np.float32), rng).astype(np.float32, copy=False)
        )
        return out

    @abstractmethod
    def transform(self, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """New intensities for ``raw`` (a float32 copy the augment may modify)."""


class IntensityAugment(RawAugment):
    """Scale intensities about their mean and shift them, by random amounts (gunpowder's
    ``IntensityAugment``); optionally clip to [0, 1]."""

    def __init__(self, config: IntensityAugmentConfig) -> None:
        super().__init__(config.augmentation_probability)
        self.config = config

    def transform(self, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        scale = rng.uniform(*self.config.scale)
        shift = rng.uniform(*self.config.shift)
        mean = raw.mean()
        raw = mean + (raw - mean) * scale + shift
        return np.clip(raw, 0.0, 1.0) if self.config.clip else raw


class IntensityScaleShiftAugment(RawAugment):
    """``raw * scale + shift`` with fixed values (e.g. map [0, 1] to [-1, 1])."""

    def __init__(self, config: IntensityScaleShiftAugmentConfig) -> None:
        super().__init__(config.augmentation_probability)
        self.config = config

    def transform(self, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return raw * self.config.scale + self.config.shift


class GammaAugment(RawAugment):
    """``raw ** gamma`` with a random gamma (DaCapo's version of this is a no-op).

    Intensities in [0, 1] are raised directly; other ranges are mapped to [0, 1] by the
    sample's minimum and maximum first and back afterwards, so the range is kept.
    """

    def __init__(self, config: GammaAugmentConfig) -> None:
        super().__init__(config.augmentation_probability)
        self.config = config

    def transform(self, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gamma = rng.uniform(*self.config.gamma_range)
        low, high = float(raw.min()), float(raw.max())
        if low >= 0.0 and high <= 1.0:
            return raw**gamma
        if high == low:
            return raw
        return ((raw - low) / (high - low)) ** gamma * (high - low) + low


class NoiseAugment(RawAugment):
    """Random noise from ``skimage.util.random_noise`` (gunpowder's ``NoiseAugment``)."""

    def __init__(self, config: NoiseAugmentConfig) -> None:
        super().__init__(config.augmentation_probability)
        self.config = config

    def transform(self, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from skimage.util import random_noise

        return random_noise(
            raw, mode=self.config.mode, rng=rng, clip=self.config.clip,
            **self.config.noise_parameters(),
        )
