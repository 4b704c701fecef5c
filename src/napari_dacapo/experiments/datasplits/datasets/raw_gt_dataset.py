from __future__ import annotations

from typing import TYPE_CHECKING

from funlib.geometry import Coordinate

from .arrays.array import Array
from .arrays.label_ids_array import LabelIdsArray
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
        counts. A gt stored as floats is read as int64 label ids (:class:`LabelIdsArray`).
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
        if self.gt is not None and self.gt.dtype.kind == "f":
            # Whole floats are label ids (the data checks refuse others): read as such,
            # training, validation and the tasks all see integer labels.
            self.gt = LabelIdsArray(self.gt)
        self.mask = config.mask_config.array() if config.mask_config is not None else None
        self.weight = config.weight
        self.sample_points = config.sample_points
