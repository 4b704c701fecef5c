from __future__ import annotations

import dataclasses
from typing import ClassVar

from ....configs import option

from .array import Array
from .array_config import ArrayConfig
from .intensity_array import IntensitiesArray


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntensitiesArrayConfig(ArrayConfig):
    """Raw intensities rescaled to ``[0, 1]`` from a known range ``[min, max]``, in
    float32 (DaCapo's ``IntensitiesArrayConfig``; values outside the range are kept)."""

    array_type: ClassVar[type[Array]] = IntensitiesArray

    source_array_config: ArrayConfig = option(help="The array whose intensities are rescaled.")
    min: float = option(help="The intensity that becomes 0.")
    max: float = option(help="The intensity that becomes 1.")

    def validate(self) -> None:
        if not self.max > self.min:
            raise self.error(
                "max", f"({self.max}) must be greater than min ({self.min})",
                "Set min and max to the darkest and brightest intensity of your data.",
            )
