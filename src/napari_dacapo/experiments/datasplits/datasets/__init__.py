"""Datasets: raw data with ground truth and mask (DaCapo's
``dacapo.experiments.datasplits.datasets``), and the checks run on them before training."""

from .checks import DataError, check_training_dataset, check_validation_dataset, overlap_roi
from .dataset import Dataset
from .dataset_config import DatasetConfig
from .raw_gt_dataset import RawGTDataset
from .raw_gt_dataset_config import RawGTDatasetConfig

__all__ = [
    "DataError",
    "Dataset",
    "DatasetConfig",
    "RawGTDataset",
    "RawGTDatasetConfig",
    "check_training_dataset",
    "check_validation_dataset",
    "overlap_roi",
]
