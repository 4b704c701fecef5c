from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import option

from .datasets.dataset_config import DatasetConfig
from .datasplit import DataSplit
from .datasplit_config import DataSplitConfig
from .dummy_datasplit import DummyDataSplit


@dataclasses.dataclass(frozen=True, kw_only=True)
class DummyDataSplitConfig(DataSplitConfig):
    """A single training dataset without validation (DaCapo's ``DummyDataSplitConfig``),
    e.g. for a quick try on one annotated volume."""

    datasplit_type: ClassVar[type[DataSplit]] = DummyDataSplit

    train_config: DatasetConfig = option(help="The dataset to train on.")
