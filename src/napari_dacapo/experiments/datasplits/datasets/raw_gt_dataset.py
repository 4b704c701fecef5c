from __future__ import annotations

from typing import TYPE_CHECKING

from funlib.geometry import Coordinate

from .arrays.array import Array
from .dataset import Dataset

if TYPE_CHECKING:
    from .raw_gt_dataset_config import RawGTDatasetConfig


class RawGTDataset(Dataset):
    """Raw data with (optional) ground truth and mask, opened from a
    :class:`RawGTDatasetConfig`.

    Attributes
    ----------
    name
        The dataset's name.
    raw, gt, mask
        The arrays; ``gt`` is None for prediction-only data, ``mask`` when all of ``gt``
        counts.
    weight
        How often this dataset is sampled relative to the others.
    sample_points
        World positions around which training samples are drawn (None: anywhere).
    """

    raw: Array
    gt: Array | None
    mask: Array | None
    sample_points: list[Coordinate] | None

    def __init__(self, config: RawGTDatasetConfig) -> None:
        self.config = config
        self.name = config.name
        self.raw = config.raw_config.array()
        self.gt = config.gt_config.array() if config.gt_config is not None else None
        self.mask = config.mask_config.array() if config.mask_config is not None else None
        self.weight = config.weight
        self.sample_points = config.sample_points
