"""Data splits: which datasets a run trains and validates on (DaCapo's
``dacapo.experiments.datasplits``)."""

from .datasplit import DataSplit
from .datasplit_config import DataSplitConfig
from .dummy_datasplit import DummyDataSplit
from .dummy_datasplit_config import DummyDataSplitConfig
from .train_validate_datasplit import TrainValidateDataSplit
from .train_validate_datasplit_config import TrainValidateDataSplitConfig

__all__ = [
    "DataSplit",
    "DataSplitConfig",
    "DummyDataSplit",
    "DummyDataSplitConfig",
    "TrainValidateDataSplit",
    "TrainValidateDataSplitConfig",
]
