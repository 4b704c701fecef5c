from __future__ import annotations

import dataclasses
from typing import ClassVar

from funlib.geometry import Roi

from ....configs import option

from .array import Array
from .array_config import ArrayConfig
from .crop_array import CropArray


@dataclasses.dataclass(frozen=True, kw_only=True)
class CropArrayConfig(ArrayConfig):
    """A world-unit crop of another array (DaCapo's ``CropArrayConfig``), e.g. a small
    validation block of a large volume."""

    array_type: ClassVar[type[Array]] = CropArray

    source_array_config: ArrayConfig = option(help="The array to crop.")
    roi: Roi = option(
        help="The crop as (offset, shape) in world units, on the source's voxel grid."
    )

    def validate(self) -> None:
        if not isinstance(self.roi, Roi) or self.roi.empty:
            raise self.error("roi", f"must be a non-empty (offset, shape) (got {self.roi})",
                             "Give the crop's offset and a positive shape in world units.")
