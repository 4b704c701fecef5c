"""Base of augment configs (DaCapo's ``gp_augments.AugmentConfig``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ...configs import Config, option

from .augment import Augment


@dataclasses.dataclass(frozen=True, kw_only=True)
class AugmentConfig(Config):
    """Base of augment configs; :meth:`augment` builds the augment it describes.

    Subclasses name their augment class as ``augment_type``; it is built with
    ``augment_type(config)``.
    """

    augment_type: ClassVar[type[Augment]]
    #: Older DaCapo versions call the probability ``p``.
    field_aliases: ClassVar[dict[str, str]] = {"p": "augmentation_probability"}

    name: str = option(
        "", help="A name for this augment (optional; DaCapo's augments have none)."
    )
    augmentation_probability: float = option(
        1.0,
        help="Probability of applying this augment to a sample (1 = always).",
        min=0.0,
        max=1.0,
    )

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", type(self).__name__.removesuffix("Config"))
        super().__post_init__()

    def augment(self) -> Augment:
        """Build the augment this config describes."""
        return self.augment_type(self)  # type: ignore[call-arg]

    def check_range(self, field: str, positive: bool = False) -> None:
        """Refuse a ``(min, max)`` field whose min exceeds its max (or is not > 0)."""
        value = getattr(self, field)
        if len(value) != 2:
            raise self.error(field, f"is {value!r}", "Give it as [min, max].")
        low, high = value
        if low > high:
            raise self.error(field, f"has min {low} > max {high}", "Swap the two values.")
        if positive and low <= 0:
            raise self.error(field, f"has min {low}", "Use values greater than 0.")
