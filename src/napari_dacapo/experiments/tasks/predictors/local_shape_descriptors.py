"""Local shape descriptors (Sheridan et al., 2022), computed with scipy.

For every voxel of an object, the Gaussian-weighted neighbourhood of the voxel *restricted
to that object* is summarised by its centre of mass (relative to the voxel), its variances,
the Pearson correlations between axes and its mass. Trained next to affinities, they make
the network look at object shape, which improves the affinities.

All descriptors are scaled to ``[0, 1]`` so that a sigmoid output can fit them:

- mean offset ``d`` (in units of sigma): ``0.5 + 0.5 * d``, clipped;
- variance ``v`` (in units of sigma squared): ``v``, clipped;
- Pearson correlation ``r``: ``0.5 + 0.5 * r``;
- size: the fraction of the (truncated, normalised) Gaussian covered by the object.

Background voxels (label 0) get all-zero descriptors unless ``include_background``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: The Gaussian is cut at this many sigmas (the padding DaCapo's LSD node uses).
TRUNCATE = 3.0


def num_descriptors(dims: int) -> int:
    """Number of descriptor channels for ``dims`` spatial axes (10 in 3D, 6 in 2D)."""
    if dims not in (2, 3):
        raise ValueError(
            f"Local shape descriptors need 2 or 3 spatial axes, not {dims}; "
            "set lsds=False for other data."
        )
    return dims + dims + dims * (dims - 1) // 2 + 1


def local_shape_descriptors(
    segmentation: np.ndarray,
    sigma: float,
    voxel_size: Sequence[float],
    downsample: int = 1,
    include_background: bool = False,
) -> np.ndarray:
    """Descriptors ``(num_descriptors(dims), *segmentation.shape)`` float32 in ``[0, 1]``.

    Channels: mean offset per axis, variance per axis, Pearson correlation per axis pair
    (``(0, 1), (0, 2), (1, 2)`` in 3D), size.

    Parameters
    ----------
    segmentation
        Integer labels ``(*spatial)``; each id is one object.
    sigma
        Gaussian sigma in world units (the same for every axis).
    voxel_size
        World size of a voxel per axis.
    downsample
        Compute on every ``downsample``-th voxel per axis and repeat the result back to full
        size; ``downsample ** dims`` times faster, for sigmas much larger than a voxel.
    include_background
        Describe label 0 as an object too.
    """
    dims = segmentation.ndim
    channels = num_descriptors(dims)
    step = (slice(None, None, downsample),) * dims
    ids, index = np.unique(segmentation[step], return_inverse=True)
    index = index.reshape(segmentation[step].shape)
    # Coordinates in units of sigma, so offsets and variances come out normalised.
    scale = np.asarray(voxel_size, dtype=np.float64) * downsample / sigma
    pairs = [(a, b) for a in range(dims) for b in range(a, dims)]
    out = np.zeros((channels,) + index.shape, dtype=np.float32)
    # Each object is filtered within its bounding box only: its mask is zero outside the
    # box, so with zero padding the result inside the box is exact and the cost scales
    # with the object, not with the crop.
    for i, box in enumerate(ndimage.find_objects(index + 1)):
        if box is None or (ids[i] == 0 and not include_background):
            continue
        inside = index[box] == i
        # Centred on the box, which keeps float32 second moments accurate.
        centre = (np.asarray(inside.shape, dtype=np.float32) - 1) / 2
        grid = np.indices(inside.shape, dtype=np.float32) - centre.reshape((dims,) + (1,) * dims)
        grid *= scale.astype(np.float32).reshape((dims,) + (1,) * dims)
        moments = np.stack(
            [inside]
            + [inside * grid[a] for a in range(dims)]
            + [inside * grid[a] * grid[b] for a, b in pairs]
        ).astype(np.float32)
        moments = ndimage.gaussian_filter(
            moments,
            sigma=1.0 / scale,
            mode="constant",
            truncate=TRUNCATE,
            axes=tuple(range(1, dims + 1)),
        )
        out[(slice(None), *box)][:, inside] = _describe(moments[:, inside], grid[:, inside], pairs)
    if downsample > 1:
        for axis, size in enumerate(segmentation.shape, start=1):
            out = np.repeat(out, downsample, axis=axis).take(range(size), axis=axis)
    return out


def _describe(
    moments: np.ndarray, grid: np.ndarray, pairs: list[tuple[int, int]]
) -> np.ndarray:
    """Descriptors ``(channels, n)`` of ``n`` object voxels at ``grid`` ``(dims, n)`` from
    their smoothed moments ``[mass, first (dims), second (pairs)]`` ``(k, n)``; the mass is
    positive since each voxel lies in its own object."""
    dims = grid.shape[0]
    mass = moments[0]
    mean = moments[1 : dims + 1] / mass
    second = {p: moments[dims + 1 + k] / mass for k, p in enumerate(pairs)}
    cov = {(a, b): second[(a, b)] - mean[a] * mean[b] for a, b in pairs}
    variance = np.stack([np.maximum(cov[(a, a)], 0) for a in range(dims)])
    # A correlation is undefined along an axis without spread (a flat object): report 0.
    pearson = []
    for a, b in pairs:
        if a != b:
            spread = np.sqrt(variance[a] * variance[b])
            pearson.append(
                np.divide(cov[(a, b)], spread, out=np.zeros_like(spread), where=spread > 1e-3)
            )
    return np.concatenate(
        [
            np.clip(0.5 + 0.5 * (mean - grid), 0, 1),
            np.clip(variance, 0, 1),
            np.clip(0.5 + 0.5 * np.stack(pearson), 0, 1),
            np.clip(moments[:1], 0, 1),
        ]
    )
