from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import Config

from .trainer import Trainer


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainerConfig(Config):
    trainer_type: ClassVar[type[Trainer]]
