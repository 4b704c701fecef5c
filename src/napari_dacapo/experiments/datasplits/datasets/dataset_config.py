from __future__ import annotations

import dataclasses
from typing import ClassVar

from ...configs import Config

from .dataset import Dataset


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetConfig(Config):
    dataset_type: ClassVar[type[Dataset]]
