from __future__ import annotations

import dataclasses
from typing import ClassVar

from ....configs import option

from .array import Array
from .array_config import ArrayConfig
from .constant_array import ConstantArray


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConstantArrayConfig(ArrayConfig):
    """An array shaped like its source that holds one value everywhere (DaCapo's
    ``ConstantArrayConfig``; DaCapo's ``OnesArrayConfig`` loads into it with constant 1),
    e.g. a mask that marks a whole volume as annotated."""

    array_type: ClassVar[type[Array]] = ConstantArray
    aliases: ClassVar[tuple[str, ...]] = ("OnesArrayConfig",)

    source_array_config: ArrayConfig = option(
        help="The array whose geometry and dtype the constant array takes."
    )
    constant: int = option(1, help="The value of every voxel.")
