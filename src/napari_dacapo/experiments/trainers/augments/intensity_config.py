"""Config of random intensity scaling and shifting (DaCapo's ``IntensityAugmentConfig``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ...configs import option

from .augment import Augment
from .augment_config import AugmentConfig
from .intensity_augments import IntensityAugment


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntensityAugmentConfig(AugmentConfig):
    """Scale raw intensities about their mean by a random factor and shift them by a random
    amount.

    Examples
    --------
    >>> IntensityAugmentConfig(name="intensity", scale=(0.75, 1.5), shift=(-0.15, 0.15))
    """

    augment_type: ClassVar[type[Augment]] = IntensityAugment

    scale: tuple[float, float] = option(
        help="Range [min, max] of the random scale factor, e.g. [0.75, 1.5]."
    )
    shift: tuple[float, float] = option(
        help="Range [min, max] of the random additive shift, e.g. [-0.15, 0.15]."
    )
    clip: bool = option(True, help="Clip the changed intensities to [0, 1].")

    def validate(self) -> None:
        self.check_range("scale")
        self.check_range("shift")
