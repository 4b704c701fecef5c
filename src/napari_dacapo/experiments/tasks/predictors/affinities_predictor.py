"""Affinities (and optional local shape descriptors) for instance segmentation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from funlib.geometry import Coordinate
from scipy import ndimage

from .class_balance import balanced_weights
from .distance_predictor import known_region
from .local_shape_descriptors import TRUNCATE, local_shape_descriptors, num_descriptors
from .predictor import Predictor


def offset_slices(
    shape: Sequence[int], offset: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices ``(here, there)`` such that ``a[here][i]`` and ``a[there][i]`` are a voxel
    ``v`` and its neighbour ``v + offset``, for every ``v`` whose neighbour is inside
    ``shape``. Voxels whose neighbour falls outside are not covered by ``here``."""
    here, there = [], []
    for size, o in zip(shape, offset):
        o = int(o)
        here.append(slice(max(0, -o), size - max(0, o)))
        there.append(slice(max(0, o), size - max(0, -o)))
    return tuple(here), tuple(there)


def affinity_channel_name(offset: Sequence[int]) -> str:
    """Channel name of one offset, e.g. ``aff_0_0_1`` or ``aff_-1_0_0``."""
    return "aff_" + "_".join(str(int(o)) for o in offset)


class AffinitiesPredictor(Predictor):
    """Predicts, per offset ``o``, whether a voxel and its neighbour ``v + o`` belong to the
    same object; optionally also local shape descriptors as auxiliary channels.

    The affinity of ``v`` for ``o`` is 1 iff ``gt[v] == gt[v + o] != 0`` (background counts
    as one object when ``background_as_object``). A neighbour outside the crop is unknown:
    its affinity is 0 with weight 0. Weights are class-balanced per channel (affine vs not)
    and are zero unless both voxels are inside the mask.

    Parameters
    ----------
    neighborhood
        Offsets in voxels, all with one entry per spatial axis.
    lsds
        Add local shape descriptor channels ``lsd_<i>`` after the affinity channels.
    num_lsd_voxels
        LSD sigma in voxels of the largest voxel size axis.
    downsample_lsds
        Compute LSDs on every n-th voxel (faster; fine for sigmas much larger than 1).
    grow_boundary_iterations
        Before computing affinities, turn voxels within this many voxels of a boundary
        between two different objects into background, so touching objects are separated
        by a background gap the network learns to predict.
    affs_weight_clipmin, affs_weight_clipmax
        Bounds on the class fractions used to balance the affinity weights.
    lsd_weight_clipmin, lsd_weight_clipmax
        Bounds on the foreground/background fractions used to balance the LSD weights.
    background_as_object
        Treat the background as one more object (background voxels get affinity 1 with
        each other, and descriptors).
    """

    def __init__(
        self,
        neighborhood: Sequence[Sequence[int]],
        lsds: bool = False,
        num_lsd_voxels: int = 10,
        downsample_lsds: int = 1,
        grow_boundary_iterations: int = 0,
        affs_weight_clipmin: float = 0.05,
        affs_weight_clipmax: float = 0.95,
        lsd_weight_clipmin: float = 0.05,
        lsd_weight_clipmax: float = 0.95,
        background_as_object: bool = False,
    ) -> None:
        self.neighborhood = [Coordinate(o) for o in neighborhood]
        if not self.neighborhood or len({o.dims for o in self.neighborhood}) != 1:
            raise ValueError(
                "AffinitiesPredictor needs a non-empty neighborhood whose offsets all have "
                f"the same number of axes, got {list(map(tuple, self.neighborhood))}; give "
                "one entry per spatial axis in every offset."
            )
        self.lsds = lsds
        self.num_lsds = num_descriptors(self.dims) if lsds else 0
        self.num_lsd_voxels = num_lsd_voxels
        self.downsample_lsds = downsample_lsds
        self.grow_boundary_iterations = grow_boundary_iterations
        self.affs_weight_clip = (affs_weight_clipmin, affs_weight_clipmax)
        self.lsd_weight_clip = (lsd_weight_clipmin, lsd_weight_clipmax)
        self.background_as_object = background_as_object

    @property
    def dims(self) -> int:
        return self.neighborhood[0].dims

    @property
    def channels(self) -> list[str]:
        affs = [affinity_channel_name(o) for o in self.neighborhood]
        return affs + [f"lsd_{i}" for i in range(self.num_lsds)]

    def eval_activation(self) -> torch.nn.Module:
        # Affinities are trained with a logits loss and LSDs through a sigmoid, and both
        # live in [0, 1], so one sigmoid over all channels serves both.
        return torch.nn.Sigmoid()

    def lsd_sigma(self, voxel_size: Coordinate) -> float:
        """LSD Gaussian sigma in world units."""
        return float(self.num_lsd_voxels * max(voxel_size))

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        """The farthest neighbour per axis, or the LSD Gaussian's reach (``TRUNCATE``
        sigmas, on the grid of every ``downsample_lsds``-th voxel), plus the voxels that
        growing boundaries looks across."""
        reach = np.abs(np.asarray([tuple(o) for o in self.neighborhood])).max(axis=0)
        if self.lsds:
            step, sigma = self.downsample_lsds, self.lsd_sigma(gt_voxel_size)
            lsd = [(int(TRUNCATE * sigma / (v * step) + 0.5) + 1) * step for v in gt_voxel_size]
            reach = np.maximum(reach, lsd)
        return Coordinate(
            (int(r) + self.grow_boundary_iterations) * v for r, v in zip(reach, gt_voxel_size)
        )

    def create_target(self, gt: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        labels = self._labels(gt)
        affinities = np.zeros((len(self.neighborhood),) + labels.shape, dtype=np.float32)
        for channel, offset in zip(affinities, self.neighborhood):
            here, there = offset_slices(labels.shape, offset)
            same = labels[here] == labels[there]
            if not self.background_as_object:
                same &= labels[here] != 0
            channel[here] = same
        if not self.lsds:
            return affinities
        descriptors = local_shape_descriptors(
            labels,
            self.lsd_sigma(voxel_size),
            voxel_size,
            downsample=self.downsample_lsds,
            include_background=self.background_as_object,
        )
        return np.concatenate([affinities, descriptors])

    def create_weight(
        self,
        gt: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray,
        voxel_size: Coordinate,
        region: tuple[slice, ...] | None = None,
    ) -> np.ndarray:
        known = known_region(mask, (1, *gt.shape))[0]
        weights = np.zeros(target.shape, dtype=np.float32)
        for c, offset in enumerate(self.neighborhood):
            here, there = offset_slices(known.shape, offset)
            both = np.zeros_like(known)
            both[here] = known[here] & known[there]
            weights[c] = balanced_weights(
                target[c].astype(np.uint8), both, 2, self.affs_weight_clip, region
            )
        if self.lsds:
            foreground = (self._labels(gt) != 0).astype(np.uint8)
            weights[len(self.neighborhood) :] = balanced_weights(
                foreground, known, 2, self.lsd_weight_clip, region
            )
        return weights

    def _labels(self, gt: np.ndarray) -> np.ndarray:
        """``gt`` checked, with boundaries grown when asked."""
        if gt.ndim != self.dims:
            raise ValueError(
                f"AffinitiesPredictor: gt has {gt.ndim} spatial axes but the neighborhood "
                f"offsets have {self.dims}; use offsets with one entry per spatial axis of "
                "the labels."
            )
        if self.grow_boundary_iterations <= 0:
            return gt
        return _grow_boundaries(gt, self.grow_boundary_iterations)


def _grow_boundaries(labels: np.ndarray, iterations: int) -> np.ndarray:
    """``labels`` with every object voxel within ``iterations`` voxels of a different object
    set to background (borders with background are left as they are)."""
    boundary = np.zeros(labels.shape, dtype=bool)
    for axis in range(labels.ndim):
        offset = [0] * labels.ndim
        offset[axis] = 1
        here, there = offset_slices(labels.shape, offset)
        a, b = labels[here], labels[there]
        touching = (a != b) & (a != 0) & (b != 0)
        boundary[here] |= touching
        boundary[there] |= touching
    if iterations > 1:
        boundary = ndimage.binary_dilation(boundary, iterations=iterations - 1)
    grown = labels.copy()
    grown[boundary] = 0
    return grown
