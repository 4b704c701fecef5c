"""Where training samples are centred: random annotated voxels of one dataset.

Sparse annotations (a few painted strokes in a large image) must be found without scanning
the whole volume for every sample. The annotated array is therefore counted once, block by
block, the first time a centre is asked for; afterwards a centre is drawn by picking a block
with probability proportional to its annotated voxels and then a voxel inside it (block
contents are cached), which is uniform over all annotated voxels.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from funlib.geometry import Coordinate

from ..datasplits.datasets.arrays.array import Array

__all__ = ["CentreSampler", "annotated"]

#: Voxels per counting block (64**3 in 3D, 512**2 in 2D).
BLOCK_VOXELS = 2**18
#: Blocks whose annotated voxel positions are kept in memory.
CACHED_BLOCKS = 64


def annotated(data: np.ndarray, channel_dims: int) -> np.ndarray:
    """Boolean spatial array: voxels that are non-zero in any channel."""
    nonzero = data != 0
    return nonzero.any(axis=tuple(range(channel_dims))) if channel_dims else nonzero


class CentreSampler:
    """Random centre voxels of one dataset.

    Parameters
    ----------
    array
        The array whose voxel grid the centres lie on (the mask or the ground truth).
    lower, upper
        World bounds ``[lower, upper)`` for the begin of a centre voxel, so that the sample
        around it fits where it must.
    only_annotated
        Centres only on voxels of ``array`` that are non-zero; otherwise anywhere in bounds.
    points
        World positions to choose centres from instead (a dataset's ``sample_points``).
    description
        Named in errors, e.g. ``"dataset 'cells' (mask)"``.
    """

    def __init__(
        self,
        array: Array,
        lower: Coordinate,
        upper: Coordinate,
        only_annotated: bool,
        points: list[Coordinate] | None = None,
        description: str = "dataset",
    ) -> None:
        self.array = array
        self.only_annotated = only_annotated
        self.description = description
        offset = np.asarray(array.offset, dtype=np.int64)
        voxel_size = np.asarray(array.voxel_size, dtype=np.int64)
        self._offset, self._voxel_size = offset, voxel_size
        shape = np.asarray(array.spatial_shape)
        # Voxel index box [begin, end) whose voxel begins lie in [lower, upper).
        self.begin = np.clip(-(-(np.asarray(lower) - offset) // voxel_size), 0, shape)
        self.end = np.clip(-(-(np.asarray(upper) - offset) // voxel_size), 0, shape)
        self.points: np.ndarray | None = None
        if points:
            index = (np.asarray([tuple(p) for p in points]) - offset) // voxel_size
            inside = np.all((index >= self.begin) & (index < self.end), axis=1)
            self.points = index[inside]
        self._cumulative: np.ndarray | None = None
        self._block_shape = np.minimum(
            max(1, round(BLOCK_VOXELS ** (1 / len(shape)))), np.maximum(self.end - self.begin, 1)
        )
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray, tuple[int, ...]]] = (
            OrderedDict()
        )
        self._can_sample = False

    @property
    def empty_reason(self) -> str | None:
        """Why no centre can be drawn, or ``None``."""
        if np.any(self.end <= self.begin):
            return "no position where a whole sample fits"
        if self.points is not None:
            return None if len(self.points) else "none of its sample points has room around it"
        if self.only_annotated and self.cumulative[-1] == 0:
            return "no annotated voxel where a whole sample fits"
        return None

    @property
    def cumulative(self) -> np.ndarray:
        """Running total of annotated voxels over the blocks (counted on first use)."""
        if self._cumulative is None:
            grid = self._block_grid()
            counts = [np.count_nonzero(self._read_block(i)) for i in range(math.prod(grid))]
            self._cumulative = np.cumsum(np.asarray(counts, dtype=np.int64))
        return self._cumulative

    def _block_grid(self) -> tuple[int, ...]:
        return tuple(-(-(self.end - self.begin) // self._block_shape))

    def _block_slices(self, block: int) -> tuple[slice, ...]:
        position = np.unravel_index(block, self._block_grid())
        start = self.begin + np.asarray(position) * self._block_shape
        stop = np.minimum(start + self._block_shape, self.end)
        return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))

    def _read_block(self, block: int) -> np.ndarray:
        data = self.array.read_voxels(self._block_slices(block))
        return annotated(data, self.array.channel_dims)

    def _positions(self, block: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """Flat indices of the annotated voxels of ``block``, its first voxel and its shape
        (cached)."""
        if block in self._cache:
            self._cache.move_to_end(block)
        else:
            slices = self._block_slices(block)
            self._cache[block] = (
                np.flatnonzero(self._read_block(block)),
                np.asarray([s.start for s in slices], dtype=np.int64),
                tuple(s.stop - s.start for s in slices),
            )
            if len(self._cache) > CACHED_BLOCKS:
                self._cache.popitem(last=False)
        return self._cache[block]

    def sample(self, rng: np.random.Generator) -> Coordinate:
        """The world position (voxel begin) of a random centre voxel."""
        return Coordinate(self.sample_position(rng).tolist())

    def sample_position(self, rng: np.random.Generator) -> np.ndarray:
        """:meth:`sample` as numpy int64 (no ``Coordinate``: this runs for every sample)."""
        if not self._can_sample:
            reason = self.empty_reason
            if reason is not None:
                raise ValueError(
                    f"Cannot take training samples from {self.description}: {reason}. "
                    f"Annotate more voxels away from the border, use a smaller input_shape, "
                    f"or (for a small annotated crop inside larger raw data) set "
                    f"clip_raw=False."
                )
            self._can_sample = True
        if self.points is not None:
            index = self.points[rng.integers(len(self.points))]
        elif not self.only_annotated:
            index = rng.integers(self.begin, self.end)
        else:
            cumulative = self.cumulative
            block = 0 if len(cumulative) == 1 else int(
                np.searchsorted(cumulative, rng.integers(cumulative[-1]), side="right")
            )
            positions, start, shape = self._positions(block)
            index = start + np.unravel_index(positions[rng.integers(len(positions))], shape)
        return self._offset + np.asarray(index, dtype=np.int64) * self._voxel_size
