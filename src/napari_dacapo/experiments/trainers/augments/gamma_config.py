"""Config of random gamma changes (DaCapo's ``GammaAugmentConfig``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ...configs import option

from .augment import Augment
from .augment_config import AugmentConfig
from .intensity_augments import GammaAugment


@dataclasses.dataclass(frozen=True, kw_only=True)
class GammaAugmentConfig(AugmentConfig):
    """Raise raw intensities to a random power (below 1 brightens, above 1 darkens).

    Examples
    --------
    >>> GammaAugmentConfig(name="gamma", gamma_range=(0.5, 2.0))
    """

    augment_type: ClassVar[type[Augment]] = GammaAugment

    gamma_range: tuple[float, float] = option(
        help="Range [min, max] of the random gamma, e.g. [0.5, 2.0]."
    )

    def validate(self) -> None:
        self.check_range("gamma_range", positive=True)
