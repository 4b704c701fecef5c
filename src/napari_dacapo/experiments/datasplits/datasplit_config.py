from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import Config

from .datasplit import DataSplit


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSplitConfig(Config):
    datasplit_type: ClassVar[type[DataSplit]]
