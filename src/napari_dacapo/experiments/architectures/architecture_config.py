from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import Config

from .architecture import Architecture


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchitectureConfig(Config):
    """Base of architecture configs; ``architecture_type(config)`` builds the network."""

    architecture_type: ClassVar[type[Architecture]]
