from __future__ import annotations

import dataclasses
from typing import ClassVar

from ....configs import option

from .array import Array
from .array_config import ArrayConfig
from .binarize_array import BinarizeArray


@dataclasses.dataclass(frozen=True, kw_only=True)
class BinarizeArrayConfig(ArrayConfig):
    """Turns a label volume into one binary channel per named group of ids (DaCapo's
    ``BinarizeArrayConfig``), e.g. ``[("mito", [1, 2]), ("er", [3])]``."""

    array_type: ClassVar[type[Array]] = BinarizeArray

    source_array_config: ArrayConfig = option(
        help="The label volume (one integer id per voxel, no channel axis)."
    )
    groupings: list[tuple[str, list[int]]] = option(
        help="(name, ids) per output channel: channel i is 1 where the id is in group i. "
        "An empty id list means every id but the background."
    )
    background: int = option(0, help="The background id; it is never set to 1.")

    def validate(self) -> None:
        if not self.groupings:
            raise self.error("groupings", "is empty",
                             "Add at least one (name, ids) pair, e.g. ('foreground', []).")
        if any(len(g) != 2 or not isinstance(g[0], str) for g in self.groupings):
            raise self.error("groupings", f"must hold (name, ids) pairs (got {self.groupings})",
                             "Write each group as [name, [id, ...]].")
        names = [g[0] for g in self.groupings]
        if len(set(names)) != len(names):
            raise self.error("groupings", f"has repeated names {names}",
                             "Give each group its own name.")
