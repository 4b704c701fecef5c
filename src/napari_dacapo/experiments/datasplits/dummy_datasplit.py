from __future__ import annotations

from typing import TYPE_CHECKING

from .datasets.dataset import Dataset
from .datasplit import DataSplit

if TYPE_CHECKING:
    from .dummy_datasplit_config import DummyDataSplitConfig


class DummyDataSplit(DataSplit):
    """One training dataset and no validation (DaCapo's ``DummyDataSplit``).

    Attributes
    ----------
    train
        The single training dataset.
    validate
        Always empty.
    """

    train: list[Dataset]
    validate: list[Dataset]

    def __init__(self, config: DummyDataSplitConfig) -> None:
        self.config = config
        self.train = [config.train_config.dataset_type(config.train_config)]
        self.validate = []
