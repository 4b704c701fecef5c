"""Config of elastic deformation and rotation (DaCapo's ``ElasticAugmentConfig``)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from ...configs import option

from .augment import Augment
from .augment_config import AugmentConfig
from .elastic_augment import ElasticAugment


@dataclasses.dataclass(frozen=True, kw_only=True)
class ElasticAugmentConfig(AugmentConfig):
    """Smooth random deformation and rotation of raw, labels and mask together.

    Examples
    --------
    >>> ElasticAugmentConfig(
    ...     name="elastic", control_point_spacing=[10, 10], control_point_displacement_sigma=[2, 2],
    ...     rotation_interval=(0, math.pi / 2),
    ... )
    """

    augment_type: ClassVar[type[Augment]] = ElasticAugment

    control_point_spacing: list[int] = option(
        help="Distance between control points of the deformation, in raw voxels per axis "
        "(one value for all axes, or one per axis)."
    )
    control_point_displacement_sigma: list[float] = option(
        help="Standard deviation of the control point displacements, in world units per axis "
        "(one value for all axes, or one per axis)."
    )
    rotation_interval: tuple[float, float] = option(
        help="Interval (radians) of the random rotation angle in the plane of the last two "
        "axes, e.g. [0, 6.283]; [0, 0] for no rotation."
    )
    subsample: int = option(
        1, help="Compute the transform on a grid coarser by this factor (faster).", min=1
    )
    uniform_3d_rotation: bool = option(
        False,
        help="Rotate 3D data uniformly in all directions (ignores rotation_interval).",
    )

    def validate(self) -> None:
        if not self.control_point_spacing or any(s <= 0 for s in self.control_point_spacing):
            raise self.error(
                "control_point_spacing", f"is {self.control_point_spacing}",
                "Give positive spacings in voxels, e.g. [10, 10, 10].",
            )
        sigma = self.control_point_displacement_sigma
        if not sigma or any(s < 0 for s in sigma):
            raise self.error(
                "control_point_displacement_sigma", f"is {sigma}",
                "Give non-negative standard deviations in world units, e.g. [2, 2, 2].",
            )
        self.check_range("rotation_interval")
        if self.rotation_interval[1] - self.rotation_interval[0] > 2 * math.pi + 1e-6:
            raise self.error(
                "rotation_interval", f"spans more than a full turn {self.rotation_interval}",
                "Use an interval within [0, 2*pi] (radians, not degrees).",
            )
