"""Masks from shapes: a Shapes layer whose rectangles, polygons or ellipses mark the
annotated crops of a labels layer becomes a mask array, without allocating a full-size
array.

:class:`BoxMask` slices like numpy and computes only the requested block, so the trainer's
samplers, the data checks and the store (which writes in-memory arrays to zarr slab by
slab) read it like any other array.

Which voxels a shape covers follows one rule, :func:`voxel_box`, also for the predict
panel's regions (:mod:`.regions`). napari puts voxel centres at whole data coordinates
(voxel ``i`` spans ``i - 0.5`` to ``i + 0.5``); a voxel is covered when its centre lies
inside the shape, a centre on the shape's low edge counting and one on its high edge not.
A rectangle drawn along voxel edges covers the voxels between them; one W voxels wide
covers W voxels whether its edges lie on voxel edges or on voxel centres; shapes that
share an edge share no voxel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BoxMask", "ShapeRegion", "shape_boxes", "shape_points", "shape_regions",
           "voxel_box"]

Box = tuple[slice, ...]

#: Points on the outline of an ellipse, which is filled as this polygon.
ELLIPSE_POINTS = 128

#: Slack (voxels) for vertices computed through scale and translate: a vertex meant on a
#: voxel centre or edge counts as lying on it.
SLACK = 1e-6


@dataclass(frozen=True)
class ShapeRegion:
    """The voxels of a grid that one shape covers.

    Attributes
    ----------
    number
        The shape's place in its layer, from 1 (as messages name it).
    box
        The voxel box of the shape's bounding box (:func:`voxel_box`).
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
    ``shapes`` (placed by both layers' transforms; the rule of :func:`voxel_box`). A shape
    that is flat along an axis (drawn on one slice of a 3D image) covers the one slice it
    lies on; a 2D shape over a 3D image covers all slices. Rectangles (rotated or not),
    polygons and ellipses are filled; shapes outside ``target`` are left out.

    Raises
    ------
    ValueError
        For lines and paths (they enclose nothing) and shapes not drawn on one slice,
        naming the shape and the fix.
    """
    shape = spatial_shape(target, dims)
    kinds = list(getattr(shapes, "shape_type", None) or ["rectangle"] * len(shapes.data))
    regions = []
    for index, kind in enumerate(kinds):
        where = f"Shape {index + 1} of '{shapes.name}'"
        if kind in ("line", "path"):
            raise ValueError(
                f"{where} is a {kind}: it encloses no voxels. Draw rectangles, polygons or "
                f"ellipses around the crops."
            )
        points = shape_points(shapes, index, target, dims)
        box = voxel_box(points, shape)
        if box is None:
            continue
        known = ~np.isnan(points[0])
        drawn = [a for a in range(dims) if known[a] and np.ptp(points[:, a]) > 1e-9]
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


def shape_points(shapes: Any, index: int, target: Any, dims: int) -> np.ndarray:
    """The vertices of shape ``index`` of the Shapes layer ``shapes``, in voxel coordinates
    of the last ``dims`` axes of the layer ``target`` (one row per vertex); NaN on the
    leading axes the Shapes layer lacks (a 2D Shapes layer over a 3D image: the shape spans
    them whole)."""
    vertices = np.asarray(shapes.data[index], dtype=float)
    axes = min(dims, vertices.shape[1])
    points = np.full((len(vertices), dims), np.nan)
    for row, vertex in enumerate(vertices):
        voxel = np.asarray(target.world_to_data(shapes.data_to_world(vertex)), dtype=float)
        points[row, dims - axes:] = voxel[-axes:]
    return points


def voxel_box(points: np.ndarray, shape: Sequence[int]) -> Box | None:
    """The voxels of a grid of ``shape`` covered by the bounding box of ``points`` (voxel
    coordinates, one row per point), clipped to the grid; None if it misses the grid.

    On each axis: the voxels whose centres lie in ``[low, high)`` of the points (see the
    module docstring); where the points are flat (a shape drawn on one slice) or span less
    than a voxel and no centre, the one voxel holding their middle; where they are NaN (an
    axis the Shapes layer lacks), every voxel.
    """
    box = []
    for axis, size in enumerate(shape):
        column = points[:, axis]
        if np.isnan(column).all():
            begin, end = 0, int(size)
        else:
            low, high = float(np.nanmin(column)), float(np.nanmax(column))
            begin, end = math.ceil(low - SLACK), math.ceil(high - SLACK)
            if end <= begin:
                begin = math.floor((low + high) / 2 + 0.5)
                end = begin + 1
        begin, end = max(begin, 0), min(end, int(size))
        if end <= begin:
            return None
        box.append(slice(begin, end))
    return tuple(box)


def spatial_shape(layer: Any, dims: int) -> tuple[int, ...]:
    """The shape of ``layer``'s last ``dims`` axes (an RGB layer's colour axis is not one
    of its axes)."""
    return tuple(int(n) for n in layer.data.shape[: layer.ndim][-dims:])


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
    ``drawn`` axes), shaped for broadcasting over the box's other axes.

    A centre on the outline counts where the outline is a low edge, as in
    :func:`voxel_box`: each centre is tested a little towards higher coordinates, by
    unequal steps on the two axes so that diagonal edges are decided too. A polygon with
    its corners on voxel centres then covers as many voxels as its area."""
    from skimage.draw import polygon2mask

    begin = np.array([box[a].start for a in drawn], dtype=float)
    plane = tuple(box[a].stop - box[a].start for a in drawn)
    inside = polygon2mask(plane, outline - begin - [SLACK, SLACK / 2])
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
    origin
        For a mask that is a window of a larger grid (a validation region of the
        training mask): the voxel of that grid, which ``include``, ``exclude`` and
        ``base`` are given on, where the mask's first voxel lies. Voxels outside
        ``base`` are 0.
    """

    dtype = np.dtype(np.uint8)

    def __init__(
        self,
        shape: Sequence[int],
        include: Sequence[Box] | None = None,
        base: Any = None,
        exclude: Sequence[Box] = (),
        origin: Sequence[int] | None = None,
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.include = None if include is None else [
            r if isinstance(r, ShapeRegion) else ShapeRegion(0, r) for r in include
        ]
        self.base = base
        self.exclude = list(exclude)
        self.origin = tuple(int(o) for o in origin) if origin is not None else None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        region = _region(key, self.shape)
        if self.origin is not None:  # the same block of the larger grid
            region = tuple(slice(r.start + o, r.stop + o) for r, o in zip(region, self.origin))
        shape = tuple(s.stop - s.start for s in region)
        if self.base is not None:
            out = np.zeros(shape, np.uint8)
            grid = tuple(slice(0, n) for n in self.base.shape)
            if (overlap := _overlap(grid, region)) is not None:
                local, within = overlap
                out[local] = np.asarray(self.base[within]) != 0
        else:
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
