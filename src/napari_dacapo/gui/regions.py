"""Regions of an image layer the user points at: the part in view, or the box around the
shapes of a Shapes layer, as voxel index ranges of the image.

Shapes cover voxels by the rule training masks and validation regions follow
(:func:`.box_mask.voxel_box`): voxels whose centres lie inside; a shape drawn on one slice
of a volume covers that slice, and a 2D Shapes layer over a volume every slice.

"Current view" in 2D display is the visible part of the slice in view (the axes not
displayed contribute the current slice); in 3D display napari shows the whole volume, so
it is the whole extent of the displayed axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from .box_mask import shape_points, spatial_shape, voxel_box


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
    voxels the (selected, else all) shapes of ``shapes`` cover, or, when it is None, of
    the view (see the module docstring). Clipped to the image; empty if it misses it.

    Raises
    ------
    ValueError
        For a Shapes layer without shapes (naming the fix).
    """
    if shapes is not None:
        return _shapes_box(image, shapes, dims)
    lo, hi = _view_box(viewer, image)
    shape = np.asarray(image.data.shape[: image.ndim])
    lo, hi = np.clip(lo, 0, shape), np.clip(hi, 0, shape)
    return lo[-dims:], hi[-dims:]


def _view_box(viewer: Any, image: Any) -> tuple[np.ndarray, np.ndarray]:
    """The view's voxel box over all of ``image``'s axes (not clipped)."""
    point = np.asarray(image.world_to_data(viewer.dims.point), dtype=float)
    lo = np.floor(point + 0.5).astype(int)  # the slice shown
    hi = lo + 1
    full = np.asarray(image.data.shape[: image.ndim])
    corners = np.asarray(image.corner_pixels)
    first = viewer.dims.ndim - image.ndim  # viewer axis of the image's first axis
    whole = viewer.dims.ndisplay == 3  # a volume is drawn whole, never cropped to the view
    for axis in (a - first for a in viewer.dims.displayed if a >= first):
        if not whole and corners[1, axis] > corners[0, axis]:
            lo[axis], hi[axis] = corners[0, axis], corners[1, axis] + 1
        else:  # 3D display, or never drawn (a hidden viewer): the whole axis is in view
            lo[axis], hi[axis] = 0, full[axis]
    return lo, hi


def _shapes_box(image: Any, shapes: Any, dims: int) -> tuple[np.ndarray, np.ndarray]:
    if not len(shapes.data):
        raise ValueError(
            f"Shapes layer '{shapes.name}' has no shapes. Draw a rectangle around the region "
            f"to predict."
        )
    shape = spatial_shape(image, dims)
    chosen = sorted(shapes.selected_data) or range(len(shapes.data))
    boxes = [box for index in chosen
             if (box := voxel_box(shape_points(shapes, index, image, dims), shape)) is not None]
    if not boxes:
        return np.zeros(dims, int), np.zeros(dims, int)
    lo = np.array([min(box[a].start for box in boxes) for a in range(dims)])
    hi = np.array([max(box[a].stop for box in boxes) for a in range(dims)])
    return lo, hi
