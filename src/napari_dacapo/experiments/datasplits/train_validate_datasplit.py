from __future__ import annotations

from typing import TYPE_CHECKING

from .datasets.dataset import Dataset
from .datasplit import DataSplit

if TYPE_CHECKING:
    from .train_validate_datasplit_config import TrainValidateDataSplitConfig


class TrainValidateDataSplit(DataSplit):
    """The training and validation datasets of a :class:`TrainValidateDataSplitConfig`.

    Attributes
    ----------
    train, validate
        The opened datasets, in config order.
    """

    train: list[Dataset]
    validate: list[Dataset]

    def __init__(self, config: TrainValidateDataSplitConfig) -> None:
        self.config = config
        self.train = [c.dataset_type(c) for c in config.train_configs]
        self.validate = [c.dataset_type(c) for c in config.validate_configs]
