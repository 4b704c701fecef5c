from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..configs import option

from .datasets.dataset_config import DatasetConfig
from .datasplit import DataSplit
from .datasplit_config import DataSplitConfig
from .train_validate_datasplit import TrainValidateDataSplit


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainValidateDataSplitConfig(DataSplitConfig):
    """Lists of training and validation datasets (DaCapo's
    ``TrainValidateDataSplitConfig``)."""

    datasplit_type: ClassVar[type[DataSplit]] = TrainValidateDataSplit

    train_configs: list[DatasetConfig] = option(help="The datasets to train on.")
    validate_configs: list[DatasetConfig] = option(
        help="The datasets to validate on (may be empty: no validation).", factory=list
    )

    def validate(self) -> None:
        if not self.train_configs:
            raise self.error("train_configs", "is empty", "Add at least one training dataset.")
        for label in ("train_configs", "validate_configs"):
            names = [c.name for c in getattr(self, label)]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise self.error(label, f"has datasets with the same name {repeated}",
                                 "Give each dataset its own name (scores are kept by name).")
