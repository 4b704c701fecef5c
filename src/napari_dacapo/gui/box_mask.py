"""Masks from shapes: a Shapes layer whose rectangles, polygons or ellipses mark the
annotated crops of a labels layer becomes a mask array, without allocating a full-size
array.

:class:`BoxMask` slices like numpy and computes only the requested block, so the trainer's
samplers, the data checks and the store (which writes in-memory arrays to zarr slab by
slab) read it like any other array.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BoxMask", "ShapeRegion", "shape_boxes", "shape_regions"]

Box = tuple[slice, ...]

#: Points on the outline of an ellipse, which is filled as this polygon.
ELLIPSE_POINTS = 128


@dataclass(frozen=True)
class ShapeRegion:
    """The voxels of a grid that one shape covers.

    Attributes
    ----------
    number
        The shape's place in its layer, from 1 (as messages name it).
    box
        The voxel box of the shape's bounding box (voxels whose centres lie inside).
    inside
        For a shape that does not fill its box (a rotated rectangle, a polygon, an
        ellipse): which of the box's voxels lie inside it, a boolean array with the box's
        extent on the two axes the shape is drawn on and 1 on the others (the shape spans
        them whole, or lies on one slice). None for a box filled whole.
    """

    number: int
    box: Box
    inside: np.ndarray | None = None


def shape_boxes(shapes: Any, target: Any, dims: int) -> list[Box]:
    """The voxel boxes of ``target``'s grid covered by the shapes of the Shapes layer
    ``shapes``, which must be axis-aligned rectangles (validation regions are crops).

    Raises
    ------
    ValueError
        For a shape that is not an axis-aligned rectangle (or box), naming it and the fix.
    """
    regions = shape_regions(shapes, target, dims)
    for region in regions:
        if region.inside is not None:
            raise ValueError(
                f"Shape {region.number} of '{shapes.name}' is not an axis-aligned rectangle: a "
                f"validation region is a crop of the image. Draw it with the rectangle tool, "
                f"without rotating it."
            )
    return [region.box for region in regions]


def shape_regions(shapes: Any, target: Any, dims: int) -> list[ShapeRegion]:
    """The voxels of ``target``'s grid covered by each shape of the Shapes layer
    ``shapes`` (in world coordinates; voxels whose centres lie inside count). A shape that
    is flat along an axis (drawn on one slice of a 3D image) covers the one slice it lies
    on; a 2D shape over a 3D image covers all slices. Rectangles (rotated or not),
    polygons and ellipses are filled; shapes outside ``target`` are left out.

    Raises
    ------
    ValueError
        For lines and paths (they enclose nothing) and shapes not drawn on one slice,
        naming the shape and the fix.
    """
    shape = target.data.shape[-dims:]
    scale = np.asarray(target.scale[-dims:], dtype=float)
    translate = np.asarray(target.translate[-dims:], dtype=float)
    s_scale = np.asarray(shapes.scale, dtype=float)
    s_translate = np.asarray(shapes.translate, dtype=float)
    kinds = list(getattr(shapes, "shape_type", None) or ["rectangle"] * len(shapes.data))
    regions = []
    for index, (vertices, kind) in enumerate(zip(shapes.data, kinds, strict=True)):
        where = f"Shape {index + 1} of '{shapes.name}'"
        if kind in ("line", "path"):
            raise ValueError(
                f"{where} is a {kind}: it encloses no voxels. Draw rectangles, polygons or "
                f"ellipses around the crops."
            )
        world = np.asarray(vertices, dtype=float) * s_scale + s_translate
        # Shapes with fewer axes than the target span the missing leading axes entirely.
        axes = min(dims, world.shape[1])
        points = np.full((len(world), dims), np.nan)
        points[:, dims - axes :] = (world[:, -axes:] - translate[dims - axes :]) / scale[
            dims - axes :
        ]
        box = _bounding_box(points, shape)
        if box is None:
            continue
        drawn = [a for a in range(dims - axes, dims) if np.ptp(points[:, a]) > 1e-9]
        if kind == "rectangle" and _axis_aligned(points[:, drawn]):
            regions.append(ShapeRegion(index + 1, box))
            continue
        if len(drawn) != 2:
            raise ValueError(
                f"{where} is not drawn on one slice (its corners vary along "
                f"{len(drawn)} axes). Draw it on a single slice, or use a Labels mask."
            )
        outline = _ellipse_outline(points[:, drawn]) if kind == "ellipse" else points[:, drawn]
        regions.append(ShapeRegion(index + 1, box, _fill(outline, box, drawn, dims)))
    return regions


def _bounding_box(points: np.ndarray, shape: Sequence[int]) -> Box | None:
    """The voxels whose centres lie in the bounding box of ``points`` (voxel coordinates,
    NaN on axes the shape spans whole), inside ``shape``; None if there are none."""
    box = []
    for axis, size in enumerate(shape):
        column = points[:, axis]
        if np.isnan(column).all():
            begin, end = 0, size
        else:
            lo, hi = column.min(), column.max()
            if lo == hi:  # flat: the one slice it lies on
                begin = round(lo)
                end = begin + 1
            else:
                begin, end = math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1
        begin, end = max(begin, 0), min(end, size)
        if end <= begin:
            return None
        box.append(slice(begin, end))
    return tuple(box)


def _axis_aligned(points: np.ndarray) -> bool:
    """Whether every corner lies at its rectangle's minimum or maximum on every axis."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    return bool(np.all(np.isclose(points, lo, atol=1e-6) | np.isclose(points, hi, atol=1e-6)))


def _ellipse_outline(corners: np.ndarray) -> np.ndarray:
    """Points on the ellipse inscribed in the (possibly rotated) rectangle ``corners``
    (napari's ellipse data: its bounding rectangle's corners, in order)."""
    centre = corners.mean(axis=0)
    u, v = (corners[1] - corners[0]) / 2, (corners[3] - corners[0]) / 2
    t = np.linspace(0, 2 * np.pi, ELLIPSE_POINTS, endpoint=False)[:, None]
    return centre + np.cos(t) * u + np.sin(t) * v


def _fill(outline: np.ndarray, box: Box, drawn: list[int], dims: int) -> np.ndarray:
    """Which voxels of ``box`` lie inside the polygon ``outline`` (coordinates on the two
    ``drawn`` axes), shaped for broadcasting over the box's other axes."""
    from skimage.draw import polygon2mask

    begin = np.array([box[a].start for a in drawn], dtype=float)
    plane = tuple(box[a].stop - box[a].start for a in drawn)
    inside = polygon2mask(plane, outline - begin)
    return inside.reshape([box[a].stop - box[a].start if a in drawn else 1 for a in range(dims)])


class BoxMask:
    """A lazy ``uint8`` mask: 1 inside ``include`` regions (or where ``base`` is non-zero,
    or everywhere when neither is given) and 0 inside ``exclude`` boxes.

    Parameters
    ----------
    shape
        Spatial shape of the mask.
    include
        What is annotated: boxes (voxel slices), or :class:`ShapeRegion` s (the voxels of
        their boxes that their shapes cover).
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
        self.include = None if include is None else [
            r if isinstance(r, ShapeRegion) else ShapeRegion(0, r) for r in include
        ]
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
            for item in self.include or []:
                if (overlap := _overlap(item.box, region)) is None:
                    continue
                local, within = overlap
                if item.inside is None:
                    out[local] = 1
                else:  # axes of extent 1 broadcast: the shape spans them whole
                    cut = tuple(w if n > 1 else slice(0, 1) for w, n in
                                zip(within, item.inside.shape))
                    out[local] |= item.inside[cut]
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
    return [o[0] for o in (_overlap(box, region) for box in boxes) if o is not None]


def _overlap(box: Box, region: Box) -> tuple[Box, Box] | None:
    """Where ``box`` and ``region`` overlap, relative to the region's start and to the
    box's; None if they do not."""
    starts = [max(b.start, r.start) for b, r in zip(box, region)]
    stops = [min(b.stop, r.stop) for b, r in zip(box, region)]
    if any(stop <= start for start, stop in zip(starts, stops)):
        return None
    return (
        tuple(slice(a - r.start, b - r.start) for a, b, r in zip(starts, stops, region)),
        tuple(slice(a - x.start, b - x.start) for a, b, x in zip(starts, stops, box)),
    )
