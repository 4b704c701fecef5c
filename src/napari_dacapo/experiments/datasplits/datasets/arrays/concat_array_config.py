from __future__ import annotations

import dataclasses
from typing import ClassVar

from ....configs import option

from .array import Array
from .array_config import ArrayConfig
from .concat_array import ConcatArray


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConcatArrayConfig(ArrayConfig):
    """Single-channel arrays stacked into one multi-channel array (DaCapo's
    ``ConcatArrayConfig``), e.g. one binary mask per class into a class-channel target."""

    array_type: ClassVar[type[Array]] = ConcatArray

    channels: list[str] = option(help="The channel names, in output order.")
    source_array_configs: dict[str, ArrayConfig] = option(
        help="The array of each channel, by channel name (single-channel arrays)."
    )
    default_config: ArrayConfig | None = option(
        None,
        help="The array for channels without a source; without it those channels are zero.",
    )

    def validate(self) -> None:
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise self.error("channels", f"must be unique names (got {self.channels})",
                             "List each channel name once.")
        unknown = sorted(set(self.source_array_configs) - set(self.channels))
        if unknown:
            raise self.error(
                "source_array_configs", f"has channels {unknown} that are not in channels",
                f"Add them to channels ({self.channels}) or remove their arrays.",
            )
        if not self.source_array_configs and self.default_config is None:
            raise self.error(
                "source_array_configs", "is empty and there is no default_config",
                "Give at least one channel an array; it defines the geometry.",
            )
