from __future__ import annotations

import dataclasses
from typing import ClassVar

from funlib.geometry import Coordinate

from ...configs import option

from .arrays.array_config import ArrayConfig
from .dataset import Dataset
from .dataset_config import DatasetConfig
from .raw_gt_dataset import RawGTDataset


@dataclasses.dataclass(frozen=True, kw_only=True)
class RawGTDatasetConfig(DatasetConfig):
    """A dataset of raw data, ground truth and an optional mask (DaCapo's
    ``RawGTDatasetConfig``)."""

    dataset_type: ClassVar[type[Dataset]] = RawGTDataset

    raw_config: ArrayConfig = option(help="The raw image.")
    gt_config: ArrayConfig | None = option(
        None, help="The ground truth (labels); empty for data that is only predicted on."
    )
    mask_config: ArrayConfig | None = option(
        None,
        help="Where the ground truth is valid: voxels where the mask is 0 do not count in "
        "the loss (e.g. unannotated regions).",
    )
    weight: int = option(
        1, help="How often this dataset is sampled relative to the others.", min=1
    )
    sample_points: list[Coordinate] | None = option(
        None,
        help="World positions around which training samples are drawn (default: anywhere "
        "in the annotated region).",
        advanced=True,
    )
