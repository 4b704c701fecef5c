"""Masks from rectangles: a Shapes layer whose rectangles (or boxes) mark the annotated
crops of a labels layer becomes a mask array, without allocating a full-size array.

:class:`BoxMask` slices like numpy and computes only the requested block, so the trainer's
samplers, the data checks and the store (which writes in-memory arrays to zarr slab by
slab) read it like any other array.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BoxMask", "shape_boxes"]

Box = tuple[slice, ...]


def shape_boxes(shapes: Any, target: Any, dims: int) -> list[Box]:
    """The voxel boxes of ``target``'s grid covered by each shape of the Shapes layer
    ``shapes`` (the bounding box of its vertices in world coordinates; voxels whose centres
    lie inside count). A shape that is flat along an axis (a rectangle drawn on one slice of
    a 3D image) covers the one slice it lies on; a 2D shape over a 3D image covers all
    slices. Boxes outside ``target`` are dropped."""
    shape = target.data.shape[-dims:]
    scale = np.asarray(target.scale[-dims:], dtype=float)
    translate = np.asarray(target.translate[-dims:], dtype=float)
    s_scale = np.asarray(shapes.scale, dtype=float)
    s_translate = np.asarray(shapes.translate, dtype=float)
    boxes = []
    for vertices in shapes.data:
        world = np.asarray(vertices, dtype=float) * s_scale + s_translate
        # Shapes with fewer axes than the target span the missing leading axes entirely.
        lo = np.full(dims, -np.inf)
        hi = np.full(dims, np.inf)
        axes = min(dims, world.shape[1])
        lo[dims - axes :] = world[:, -axes:].min(axis=0)
        hi[dims - axes :] = world[:, -axes:].max(axis=0)
        lo, hi = (lo - translate) / scale, (hi - translate) / scale
        box = []
        for axis in range(dims):
            if lo[axis] == hi[axis]:
                begin = round(lo[axis])
                end = begin + 1
            else:
                begin = math.ceil(lo[axis] - 1e-9) if np.isfinite(lo[axis]) else 0
                end = (math.floor(hi[axis] + 1e-9) + 1) if np.isfinite(hi[axis]) else shape[axis]
            begin, end = max(begin, 0), min(end, shape[axis])
            box.append(slice(begin, end))
        if all(b.stop > b.start for b in box):
            boxes.append(tuple(box))
    return boxes


class BoxMask:
    """A lazy ``uint8`` mask: 1 inside ``include`` boxes (or where ``base`` is non-zero, or
    everywhere when neither is given) and 0 inside ``exclude`` boxes.

    Parameters
    ----------
    shape
        Spatial shape of the mask.
    include
        Boxes (voxel slices) that are annotated.
    base
        An array (e.g. a mask Labels layer's data) whose non-zero voxels are annotated.
    exclude
        Boxes that are never annotated (e.g. held out for validation).
    """

    dtype = np.dtype(np.uint8)

    def __init__(
        self,
        shape: Sequence[int],
        include: Sequence[Box] | None = None,
        base: Any = None,
        exclude: Sequence[Box] = (),
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.include = None if include is None else list(include)
        self.base = base
        self.exclude = list(exclude)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        region = _region(key, self.shape)
        if self.base is not None:
            out = (np.asarray(self.base[region]) != 0).astype(np.uint8)
        else:
            shape = tuple(s.stop - s.start for s in region)
            out = np.full(shape, 1 if self.include is None else 0, np.uint8)
            for local in _inside(self.include or [], region):
                out[local] = 1
        for local in _inside(self.exclude, region):
            out[local] = 0
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[()]
        return data if dtype is None else data.astype(dtype)


def _region(key: Any, shape: tuple[int, ...]) -> Box:
    """Normalise a numpy-style key of slices (step 1) to one slice per axis."""
    key = key if isinstance(key, tuple) else (key,)
    if len(key) > len(shape):
        raise IndexError(f"too many indices ({len(key)}) for a {len(shape)}D mask")
    key = key + (slice(None),) * (len(shape) - len(key))
    region = []
    for k, size in zip(key, shape):
        if not isinstance(k, slice) or k.step not in (None, 1):
            raise TypeError(f"BoxMask reads blocks only (slices with step 1), not {k!r}")
        region.append(slice(*k.indices(size)[:2]))
    return tuple(region)


def _inside(boxes: Sequence[Box], region: Box) -> list[Box]:
    """The parts of ``boxes`` inside ``region``, relative to the region's start."""
    found = []
    for box in boxes:
        starts = [max(b.start, r.start) for b, r in zip(box, region)]
        stops = [min(b.stop, r.stop) for b, r in zip(box, region)]
        if all(stop > start for start, stop in zip(starts, stops)):
            found.append(tuple(
                slice(a - r.start, b - r.start) for a, b, r in zip(starts, stops, region)
            ))
    return found
