"""Class-balanced loss weights, shared by the predictors that classify voxels."""

from __future__ import annotations

import numpy as np


def balanced_weights(
    labels: np.ndarray,
    known: np.ndarray,
    num_classes: int,
    clip: tuple[float, float] | None = None,
    region: tuple[slice, ...] | None = None,
) -> np.ndarray:
    """Per-voxel weights that give every class present in ``labels`` the same total weight.

    A class that covers a fraction ``f`` of the known voxels gets weight ``1 / (n * f)``,
    ``n`` being the number of classes present, so the weights of the known voxels average to
    one and a rare class (a thin boundary, a small organelle) is not drowned by a common one.

    Parameters
    ----------
    labels
        Integer class of every voxel, ``0 <= labels < num_classes``.
    known
        Boolean array of ``labels``'s shape; voxels where it is False get weight 0 and are
        not counted.
    num_classes
        Number of classes.
    clip
        ``(min, max)`` bounds on the class fractions before inversion, which bounds the
        weights (DaCapo's ``*_weight_clipmin`` / ``*_weight_clipmax``).
    region
        Slices of ``labels`` in which classes are counted and weights given (0 elsewhere);
        ``None`` for all voxels.

    Returns
    -------
    numpy.ndarray
        float32 weights of ``labels``'s shape.
    """
    region = region or ()
    labels_in, known_in = labels[region], known[region]
    out = np.zeros(labels.shape, dtype=np.float32)
    counts = np.bincount(labels_in[known_in].ravel(), minlength=num_classes).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return out
    present = counts > 0
    fraction = counts / total
    if clip is not None:
        fraction = np.clip(fraction, *clip)
    class_weight = np.zeros(num_classes, dtype=np.float64)
    class_weight[present] = 1.0 / (present.sum() * fraction[present])
    out[region] = class_weight.astype(np.float32)[labels_in] * known_in
    return out


def balanced_binary_weights(
    foreground: np.ndarray,
    known: np.ndarray,
    clip: tuple[float, float] | None = None,
    region: tuple[slice, ...] | None = None,
) -> np.ndarray:
    """:func:`balanced_weights` of a two-class (background/foreground) image, the same to
    the bit, with counts instead of a histogram and no class indexing: this runs for every
    training sample of the distance tasks.

    Parameters
    ----------
    foreground, known
        Boolean arrays of the same shape.
    clip, region
        As in :func:`balanced_weights`.
    """
    region = region or ()
    fg_in = foreground[region].astype(bool, copy=False)
    known_in = known[region].astype(bool, copy=False)
    out = np.zeros(foreground.shape, dtype=np.float32)
    total = np.count_nonzero(known_in)
    if total == 0:
        return out
    fg_known = fg_in & known_in
    counts = (total - np.count_nonzero(fg_known), np.count_nonzero(fg_known))
    present = sum(c > 0 for c in counts)
    # Weight of: unknown, known background, known foreground (index 0, 1, 2 below).
    table = np.zeros(3, dtype=np.float32)
    for index, c in enumerate(counts, start=1):
        fraction = c / total
        if clip is not None:
            fraction = min(max(fraction, clip[0]), clip[1])
        table[index] = 1.0 / (present * fraction) if c else 0.0
    out[region] = table.take(np.add(fg_known.view(np.uint8), known_in.view(np.uint8)))
    return out
