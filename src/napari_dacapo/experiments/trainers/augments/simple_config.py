"""Config of random mirroring and transposing (DaCapo's ``SimpleAugmentConfig``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ...configs import option

from .augment import Augment
from .augment_config import AugmentConfig
from .simple_augment import SimpleAugment


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimpleAugmentConfig(AugmentConfig):
    """Randomly mirror and transpose the spatial axes of raw, labels and mask together.

    Examples
    --------
    >>> SimpleAugmentConfig(name="flips", transpose_only=[1, 2])  # keep anisotropic z
    """

    augment_type: ClassVar[type[Augment]] = SimpleAugment

    mirror_only: list[int] | None = option(
        None, help="Spatial axes that may be mirrored (default: all), e.g. [1, 2]."
    )
    transpose_only: list[int] | None = option(
        None,
        help="Spatial axes that may be swapped with each other (default: all). Axes are only "
        "swapped where extent and voxel size agree.",
    )
    mirror_probs: list[float] | None = option(
        None, help="Probability of mirroring each spatial axis (default: 0.5 for every axis)."
    )
    transpose_probs: list[float] | None = option(
        None,
        help="Probability that each spatial axis takes part in the random permutation "
        "(default: 1 for every axis).",
    )

    def validate(self) -> None:
        for field in ("mirror_only", "transpose_only"):
            axes = getattr(self, field)
            if axes is not None and any(int(a) != a or a < 0 for a in axes):
                raise self.error(field, f"is {axes}", "Use axis indices 0, 1, 2 ...")
        for field in ("mirror_probs", "transpose_probs"):
            probs = getattr(self, field)
            if probs is not None and any(not 0 <= p <= 1 for p in probs):
                raise self.error(field, f"is {probs}", "Use probabilities between 0 and 1.")
