"""Config of a fixed intensity scale and shift (DaCapo's
``IntensityScaleShiftAugmentConfig``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ...configs import option

from .augment import Augment
from .augment_config import AugmentConfig
from .intensity_augments import IntensityScaleShiftAugment


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntensityScaleShiftAugmentConfig(AugmentConfig):
    """Map raw intensities to ``raw * scale + shift``.

    Examples
    --------
    >>> IntensityScaleShiftAugmentConfig(name="to [-1, 1]", scale=2.0, shift=-1.0)
    """

    augment_type: ClassVar[type[Augment]] = IntensityScaleShiftAugment

    scale: float = option(help="Factor the intensities are multiplied with.")
    shift: float = option(help="Value added to the intensities after scaling.")
