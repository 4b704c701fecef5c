from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import ClassVar

from funlib.geometry import Coordinate

from ....configs import option

from .array import Array
from .array_config import ArrayConfig
from .zarr_array import ZarrArray


@dataclasses.dataclass(frozen=True, kw_only=True)
class ZarrArrayConfig(ArrayConfig):
    """An array in a zarr container (format 2 or 3), as DaCapo's ``ZarrArrayConfig``.

    The geometry is read from the array's attributes (DaCapo/funlib ``voxel_size``,
    ``offset``, ``axis_names``, ``units``, or OME-Zarr ``multiscales``); the optional
    fields here override it, for data whose attributes are missing or wrong. DaCapo's
    ``_axes`` field loads into ``axis_names``.
    """

    array_type: ClassVar[type[Array]] = ZarrArray
    field_aliases: ClassVar[dict[str, str]] = {"_axes": "axis_names", "axes": "axis_names"}

    file_name: Path = option(
        help="The zarr container (the folder ending in .zarr). A relative path is read from "
        "the working directory and stored absolute."
    )
    dataset: str = option(
        help="Path of the array inside the container, e.g. 'volumes/raw' (may contain '/'). "
        "An OME-Zarr multiscale group opens its finest level."
    )
    snap_to_grid: Coordinate | None = option(
        None,
        help="Shrink the array's ROI to this grid (world units), so that ROIs align with a "
        "coarser voxel size.",
        advanced=True,
    )
    axis_names: list[str] | None = option(
        None,
        help="Axis names overriding the stored ones, channel axis first as 'c^' "
        "(e.g. ['c^', 'z', 'y', 'x']).",
        advanced=True,
    )
    voxel_size: Coordinate | None = option(
        None, help="Voxel size per spatial axis overriding the stored one.", advanced=True
    )
    offset: Coordinate | None = option(
        None,
        help="World position of the first voxel overriding the stored one.",
        advanced=True,
    )
    units: list[str] | None = option(
        None, help="Units of the spatial axes overriding the stored ones.", advanced=True
    )
    mode: str = option(
        "r",
        help="Access mode: 'r' read only, 'r+' or 'a' to also write into the existing array.",
        choices=("r", "r+", "a"),
        advanced=True,
    )

    def validate(self) -> None:
        object.__setattr__(self, "dataset", str(self.dataset).strip("/"))
        # A relative path is read from the working directory the config is made in (as
        # DaCapo does), and kept absolute: a stored run then opens its data from anywhere
        # (continued on a cluster node, validated from another folder). abspath, not
        # resolve: symlinks the user chose stay as they are.
        object.__setattr__(self, "file_name", Path(os.path.abspath(self.file_name)))
        if self.file_name.suffix.lower() == ".n5":
            raise self.error(
                "file_name",
                f"is an N5 container ({self.file_name}), which zarr-python 3 cannot read",
                "Convert it to zarr first (e.g. with zarr-python 2 or tensorstore).",
            )
        for label in ("voxel_size", "snap_to_grid"):
            value = getattr(self, label)
            if value is not None and any(v <= 0 for v in value):
                raise self.error(label, f"must be positive (got {tuple(value)})",
                                 f"Give a positive {label} per spatial axis or leave it empty.")
