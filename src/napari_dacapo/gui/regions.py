"""Regions of an image layer the user points at: the part in view, or the box around the
shapes of a Shapes layer, as voxel index ranges of the image.

Axes that are not displayed (the slider axes of a 3D volume seen in 2D) contribute the
current slice, so "current view" of a volume is the visible part of the visible slice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi


def region_roi(viewer: Any, image: Any, shapes: Any | None, array: Any) -> Roi:
    """The world ROI of :func:`region_box` in the integer units of ``array`` (the image
    layer as an Array), clipped to it.

    Raises
    ------
    ValueError
        If the region misses the image (naming the fix).
    """
    lo, hi = region_box(viewer, image, shapes, array.dims)
    roi = Roi(array.offset + Coordinate(lo) * array.voxel_size,
              Coordinate(np.subtract(hi, lo)) * array.voxel_size).intersect(array.roi)
    if roi.empty:
        raise ValueError(_misses(image, shapes))
    return roi


def shapes_problem(viewer: Any, image: Any, shapes: Any, dims: int) -> str:
    """Why the (selected, else all) shapes of ``shapes`` give no region of ``image``'s last
    ``dims`` axes to predict ('' when they do): none drawn, or none over the image. Cheap
    (the shapes' vertices and the image's shape, no image data), for every refresh."""
    try:
        lo, hi = region_box(viewer, image, shapes, dims)
    except ValueError as e:
        return str(e)
    return "" if (hi > lo).all() else _misses(image, shapes)


def _misses(image: Any, shapes: Any | None) -> str:
    what = "view" if shapes is None else f"shapes of '{shapes.name}'"
    return (f"The {what} do not overlap image '{image.name}'. Move the "
            f"{'view' if shapes is None else 'shapes'} over the image.")


def region_box(
    viewer: Any, image: Any, shapes: Any | None, dims: int
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel index box ``[lo, hi)`` of ``image``'s last ``dims`` (spatial) axes: around the
    (selected, else all) shapes of ``shapes``, or, when it is None, of the field of view.

    Clipped to the image; a flat axis (a rectangle drawn on one slice) is one voxel deep.
    """
    if shapes is None:
        lo, hi = _view_box(viewer, image)
    else:
        lo, hi = _shapes_box(viewer, image, shapes)
    lo, hi = np.floor(lo).astype(int), np.ceil(hi).astype(int)
    hi = np.maximum(hi, lo + 1)
    shape = np.asarray(image.data.shape[: image.ndim])
    lo, hi = np.clip(lo, 0, shape), np.clip(hi, 0, shape)
    return lo[-dims:], hi[-dims:]


def _slice_position(viewer: Any, image: Any) -> np.ndarray:
    """The current slider position, in ``image``'s voxel coordinates (all its axes)."""
    return np.asarray(image.world_to_data(viewer.dims.point), dtype=float)


def _view_box(viewer: Any, image: Any) -> tuple[np.ndarray, np.ndarray]:
    point = _slice_position(viewer, image)
    lo, hi = point.copy(), point.copy()
    corners = np.asarray(image.corner_pixels)
    first = viewer.dims.ndim - image.ndim  # viewer axis of the image's first axis
    for axis in (a - first for a in viewer.dims.displayed if a >= first):
        if corners[1, axis] > corners[0, axis]:
            lo[axis], hi[axis] = corners[0, axis], corners[1, axis] + 1
        else:  # never drawn (a hidden viewer): the whole axis is in view
            lo[axis], hi[axis] = 0, image.data.shape[axis]
    return lo, hi


def _shapes_box(viewer: Any, image: Any, shapes: Any) -> tuple[np.ndarray, np.ndarray]:
    if not len(shapes.data):
        raise ValueError(
            f"Shapes layer '{shapes.name}' has no shapes. Draw a rectangle around the region "
            f"to predict."
        )
    chosen = sorted(shapes.selected_data) or range(len(shapes.data))
    world = np.asarray(viewer.dims.point, dtype=float)
    corners = []
    for index in chosen:
        for vertex in shapes.data[index]:
            position = world.copy()
            position[-shapes.ndim:] = shapes.data_to_world(vertex)
            corners.append(image.world_to_data(position))
    corners = np.asarray(corners, dtype=float)
    return corners.min(axis=0), corners.max(axis=0)
