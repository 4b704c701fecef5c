"""Array configs: each names an array and builds it with ``array_type(config)``."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from funlib.geometry import Coordinate

from ....configs import Config, option

from .array import Array, SourceArray, default_axis_names


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArrayConfig(Config):
    """Base of array configs."""

    array_type: ClassVar[type[Array]]

    def array(self, mode: str = "r") -> Array:
        """Open the array this config describes (DaCapo 0.3.5 spelling)."""
        return self.array_type(self)  # type: ignore[call-arg]


class NumpyArray(SourceArray):
    def __init__(self, config: NumpyArrayConfig) -> None:
        super().__init__(
            config.data, config.voxel_size, config.offset, config.axis_names, config.units
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class NumpyArrayConfig(ArrayConfig):
    """An in-memory array, e.g. a napari layer's data with its scale and translate.

    When a run is stored, its data is written into the run's folder as zarr and the stored
    config points there, so a stored run never depends on a napari session.
    """

    array_type: ClassVar[type[Array]] = NumpyArray

    data: Any = dataclasses.field(
        default=None,
        compare=False,
        repr=False,
        metadata={"help": "The voxels (numpy, dask or zarr array).", "transient": True},
    )
    voxel_size: Coordinate | None = option(None, help="Voxel size in world units per axis.")
    offset: Coordinate | None = option(None, help="World position of the first voxel.")
    axis_names: list[str] | None = option(
        None, help="Axis names, channel axis first as 'c^' (default: z, y, x)."
    )
    units: list[str] | None = option(None, help="Units of the spatial axes, e.g. nm.")

    def validate(self) -> None:
        if self.data is None or not hasattr(self.data, "shape"):
            raise self.error("data", "is missing", "Pass the array voxels as data=.")
        if self.axis_names is None:
            object.__setattr__(
                self, "axis_names", default_axis_names(len(self.data.shape), channels=False)
            )

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)
