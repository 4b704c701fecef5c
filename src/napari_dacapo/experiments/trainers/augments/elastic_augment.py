"""Smooth random deformation plus rotation (DaCapo's ``ElasticAugment``).

The transform is a map from output world positions to source world positions, sampled
once per sample and evaluated on every array's own voxel grid, so raw, labels and mask stay
aligned even when their voxel sizes differ:

``source = R @ p + d(p)``, with ``p`` relative to the centre of the output region, ``R`` a
random rotation and ``d`` a displacement field interpolated (cubic spline) from random
displacements on a coarse grid of control points.

Displacements are drawn from a normal distribution truncated at three sigma, so the
deformation never reaches further than :meth:`ElasticAugment.required_context` says; the
sample is read with that much context and the output has no empty corners.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from .augment import RAW, Augment, Sample, SampleArray

if TYPE_CHECKING:
    from .elastic_config import ElasticAugmentConfig

#: Control point displacements are truncated at this many standard deviations.
TRUNCATE_SIGMAS = 3.0


class ElasticAugment(Augment):
    """Random elastic deformation and rotation of all arrays of a sample.

    Parameters
    ----------
    config
        Control point spacing (raw voxels), displacement sigma (world units), rotation
        interval (radians, in the plane of the last two axes) or uniform 3D rotation, and
        the subsampling of the transform grid.
    """

    def __init__(self, config: ElasticAugmentConfig) -> None:
        super().__init__(config.augmentation_probability)
        self.config = config

    # -- geometry --------------------------------------------------------------------------

    def _per_axis(self, values: tuple[float, ...] | list[float], dims: int, field: str
                  ) -> np.ndarray:
        if len(values) == 1:
            return np.full(dims, float(values[0]))
        if len(values) != dims:
            raise ValueError(
                f"ElasticAugmentConfig '{self.config.name}': {field} has {len(values)} "
                f"entries but the data has {dims} spatial axes. Give one value per axis "
                f"(or a single value for all)."
            )
        return np.asarray(values, dtype=float)

    def _uniform_rotation(self, dims: int) -> bool:
        return self.config.uniform_3d_rotation and dims == 3

    def _rotates(self, dims: int) -> bool:
        low, high = self.config.rotation_interval
        return dims >= 2 and (self._uniform_rotation(dims) or low != 0 or high != 0)

    def required_context(self, size: Coordinate, voxel_size: Coordinate) -> Coordinate:
        dims = len(size)
        half = np.asarray(size, dtype=float) / 2
        reach = half.copy()
        if self._rotates(dims):
            # The rotated output box stays inside the sphere (or, for rotations in the last
            # two axes, the cylinder) through its corners, whatever the angle.
            if self._uniform_rotation(dims):
                reach[:] = np.linalg.norm(half)
            else:
                reach[-2:] = np.hypot(half[-2], half[-1])
        sigma = self._per_axis(self.config.control_point_displacement_sigma, dims,
                               "control_point_displacement_sigma")
        # One extra voxel for linear interpolation at the very edge.
        reach += TRUNCATE_SIGMAS * sigma + np.asarray(voxel_size, dtype=float)
        return Coordinate(int(math.ceil(r - h)) for r, h in zip(reach, half))

    # -- the random transform --------------------------------------------------------------

    def _rotation(self, dims: int, rng: np.random.Generator) -> np.ndarray:
        matrix = np.eye(dims)
        if not self._rotates(dims):
            return matrix
        if self._uniform_rotation(dims):
            # A normalised 4D Gaussian is a uniformly distributed unit quaternion.
            quaternion = rng.normal(size=4)
            return Rotation.from_quat(quaternion / np.linalg.norm(quaternion)).as_matrix()
        angle = rng.uniform(*self.config.rotation_interval)
        cos, sin = math.cos(angle), math.sin(angle)
        matrix[-2:, -2:] = [[cos, -sin], [sin, cos]]
        return matrix

    def apply(self, sample: Sample, size: Coordinate, rng: np.random.Generator) -> Sample:
        dims = len(size)
        rotation = self._rotation(dims, rng)
        spacing = self._per_axis(self.config.control_point_spacing, dims,
                                 "control_point_spacing") * np.asarray(sample[RAW].voxel_size)
        sigma = self._per_axis(self.config.control_point_displacement_sigma, dims,
                               "control_point_displacement_sigma")
        num_points = [max(2, math.ceil(s / c) + 1) for s, c in zip(size, spacing)]
        displacement = rng.normal(size=(dims, *num_points)) * sigma.reshape(
            (dims,) + (1,) * dims
        )
        limit = (TRUNCATE_SIGMAS * sigma).reshape((dims,) + (1,) * dims)
        transform = _Transform(rotation, np.clip(displacement, -limit, limit), spacing, size)
        # Raw, labels and mask usually share one grid: compute its coordinates once.
        coordinates: dict[tuple, np.ndarray] = {}
        out: Sample = {}
        for key, array in sample.items():
            grid = (tuple(array.voxel_size), array.spatial_shape)
            if grid not in coordinates:
                coordinates[grid] = transform.source_voxels(array, self.config.subsample)
            out[key] = _resample(array, coordinates[grid])
        return out


class _Transform:
    """One sampled transform: output world position -> source world position."""

    def __init__(
        self, rotation: np.ndarray, displacement: np.ndarray, spacing: np.ndarray, size: Coordinate
    ) -> None:
        self.rotation = rotation
        self.displacement = displacement
        self.spacing = spacing
        self.half = np.asarray(size, dtype=float) / 2

    def source_voxels(self, array: SampleArray, subsample: int) -> np.ndarray:
        """Source voxel coordinates ``(dims, *out_shape)`` in ``array`` for every voxel of
        the centred output region on ``array``'s grid."""
        dims = array.dims
        voxel_size = np.asarray(array.voxel_size, dtype=float)
        out_shape = tuple(int(round(2 * h / v)) for h, v in zip(self.half, voxel_size))
        # The transform is smooth, so it may be evaluated on a coarser grid and interpolated.
        indices = [_coarse_indices(n, subsample) for n in out_shape]
        # World positions of voxel centres, relative to the centre, one 1D array per axis.
        axes = [(i + 0.5) * v - h for i, v, h in zip(indices, voxel_size, self.half)]
        shape = tuple(len(a) for a in axes)
        source = np.zeros((dims, *shape))
        for d in range(dims):
            for j, positions in enumerate(axes):
                if self.rotation[d, j] != 0:
                    source[d] += self.rotation[d, j] * _along(positions, j, dims)
            source[d] += self._displacement(d, axes)
        centre = np.asarray(array.spatial_shape, dtype=float) / 2 - 0.5
        coords = source / _along(voxel_size, 0, dims + 1) + _along(centre, 0, dims + 1)
        if shape != out_shape:
            coords = _upsample(coords, indices, out_shape)
        return coords

    def _displacement(self, d: int, axes: list[np.ndarray]) -> np.ndarray:
        """Component ``d`` of the cubic spline displacement on the grid spanned by ``axes``.

        Spline interpolation is separable, so on a grid it is one small 1D interpolation
        matrix per axis applied in turn: far cheaper than evaluating every point in nD.
        """
        field = self.displacement[d]
        for axis, positions in enumerate(axes):
            control_index = (positions + self.half[axis]) / self.spacing[axis]
            num = field.shape[axis]
            weights = np.stack(
                [
                    map_coordinates(np.eye(num)[i], control_index[None], order=3, mode="nearest")
                    for i in range(num)
                ],
                axis=1,
            )
            field = np.moveaxis(np.tensordot(field, weights, axes=([axis], [1])), -1, axis)
        return field


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """``values`` shaped to broadcast along ``axis`` of an ``ndim``-dimensional array."""
    shape = [1] * ndim
    shape[axis] = len(values)
    return np.asarray(values, dtype=float).reshape(shape)


def _resample(array: SampleArray, coords: np.ndarray) -> SampleArray:
    """``array`` sampled at voxel ``coords`` (linear for intensities, nearest for labels)."""
    dims = array.dims
    out_shape = coords.shape[1:]
    lead = array.data.shape[: array.data.ndim - dims]
    if array.interpolate:
        channels = array.data.reshape((-1,) + array.spatial_shape)
        out = np.stack([
            map_coordinates(c, coords, order=1, mode="nearest", output=np.float32)
            for c in channels
        ]).reshape(lead + out_shape)
    else:
        # Nearest neighbour by integer indexing: exact for any label dtype (uint64 too),
        # which map_coordinates, computing in float64, is not.
        index = tuple(
            np.clip(np.rint(c), 0, n - 1).astype(np.intp)
            for c, n in zip(coords, array.spatial_shape)
        )
        out = array.data[(Ellipsis,) + index]
    return array.with_data(out)


def _coarse_indices(n: int, step: int) -> np.ndarray:
    """Every ``step``-th index of ``range(n)``, always including the last one."""
    indices = np.arange(0, n, max(1, step))
    return indices if indices[-1] == n - 1 else np.append(indices, n - 1)


def _upsample(coords: np.ndarray, coarse: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Linearly interpolate ``coords`` given at the ``coarse`` indices to the full grid."""
    position = np.meshgrid(
        *[np.interp(np.arange(n), c, np.arange(len(c))) for c, n in zip(coarse, shape)],
        indexing="ij",
    )
    return np.stack([map_coordinates(c, position, order=1, mode="nearest") for c in coords])
