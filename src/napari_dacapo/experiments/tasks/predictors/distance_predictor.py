"""Signed distance targets (DaCapo's ``DistancePredictor``), and the ground-truth and
distance helpers that the whole distance family (distance, inner distance, hot distance,
their evaluator and configs) shares.

Ground truth forms
------------------
Every helper here first brings ``gt`` to *per-channel label images*, an integer array
``(channels, *spatial)`` in which 0 is background and every other value is an object
(:func:`channel_labels`). Three forms are accepted:

(a) **one channel and a label image** ``(*spatial)``, as a napari Labels layer holds it:
    every non-zero voxel is foreground. Distinct ids are distinct objects, so the boundary
    between two touching objects counts as boundary and they stay apart.
(b) **several channels and a class image** ``(*spatial)``: value ``k`` (1-based) marks the
    ``k``-th channel's class, in the order of ``channels``; 0 is background. A class image
    cannot tell instances of one class apart; use form (c) for that.
(c) **a leading channel axis** ``(channels, *spatial)`` (DaCapo's form): each channel is a
    binary mask, or a label image of that channel's objects.

Distances
---------
Distances are in world units (the voxel size is taken into account, so anisotropic data
gets true distances) and measured, as the ``edt`` package does, from a voxel's centre to the
centre of the nearest voxel with a different label. The first voxel inside an object is
therefore at ``+voxel_size`` and the first outside at ``-voxel_size``: the zero crossing lies
on the boundary between them, half a voxel from each, and no voxel is exactly 0. (DaCapo
measures to the boundary itself, on a grid of twice the resolution, which costs ``2**dims``
times the memory and time.) The edge of the array is *not* a boundary: an object cut by the
crop edge gets distances to its visible boundaries only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import edt
import numpy as np
from funlib.geometry import Coordinate

from .class_balance import balanced_binary_weights
from .predictor import Predictor

# -- shared helpers ---------------------------------------------------------------------------


def distance_parameter_problems(**values: Any) -> list[tuple[str, str, str]]:
    """Problems with the parameters of a distance-family task, as ``(field, problem, fix)``.

    Only the parameters passed are checked (``channels``, ``scale_factor``,
    ``clip_distance``, ``tol_distance``, ``clipmin``, ``clipmax``). The configs turn the
    first problem into a :class:`~napari_dacapo.experiments.configs.ConfigError`, the
    predictors into a ``ValueError``, so both refuse the same values with the same words.
    """
    problems: list[tuple[str, str, str]] = []
    if "channels" in values:
        channels = values["channels"]
        if isinstance(channels, str) or not isinstance(channels, Sequence) or not channels:
            problems.append(
                ("channels", f"must be a non-empty list of names, got {channels!r}",
                 "Give one name per class to segment, e.g. ['mito'].")
            )
        elif not all(isinstance(c, str) and c.strip() for c in channels):
            problems.append(
                ("channels", f"must hold non-empty strings, got {list(channels)!r}",
                 "Name every channel, e.g. ['mito', 'er'].")
            )
        elif len(set(channels)) != len(channels):
            problems.append(
                ("channels", f"has repeated names {list(channels)!r}",
                 "Give every channel a different name.")
            )
    for name in ("scale_factor", "clip_distance", "tol_distance"):
        if name in values:
            value = values[name]
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not np.isfinite(value) or value <= 0:
                problems.append(
                    (name, f"must be a positive finite number in world units, got {value!r}",
                     f"Set {name} to a distance > 0 (in the units of the voxel size).")
                )
    if "clipmin" in values and "clipmax" in values:
        lo, hi = values["clipmin"], values["clipmax"]
        if not 0 <= lo < hi <= 1:
            problems.append(
                ("clipmin", f"and clipmax must satisfy 0 <= clipmin < clipmax <= 1, got "
                 f"{lo!r} and {hi!r}", "Keep the defaults 0.05 and 0.95 unless you need others.")
            )
    return problems


def check_distance_parameters(**values: Any) -> None:
    """Raise ``ValueError`` for the first problem :func:`distance_parameter_problems` finds."""
    for field, problem, fix in distance_parameter_problems(**values):
        raise ValueError(f"{field} {problem}. {fix}")


def channel_labels(gt: Any, num_channels: int, dims: int) -> np.ndarray:
    """Per-channel label images ``(num_channels, *spatial)`` from any accepted ``gt`` form.

    See the module docstring for forms (a), (b) and (c). The result is a view of ``gt``
    where possible (forms a and c); 0 is background in every channel.

    Raises
    ------
    TypeError
        If ``gt`` does not hold integers or booleans.
    ValueError
        If ``gt``'s shape fits none of the forms, it holds negative labels, or a class image
        holds a class id above ``num_channels``.
    """
    gt = np.asarray(gt)
    if gt.dtype.kind not in "biu":
        raise TypeError(
            f"Ground truth must hold integer labels or booleans, got dtype {gt.dtype}. "
            "Cast it with gt.astype(np.uint32) (napari Labels layers already are integer)."
        )
    if gt.dtype.kind == "i" and gt.size and gt.min() < 0:
        raise ValueError(
            f"Ground truth holds negative labels (min {gt.min()}). Use 0 for background and "
            "positive ids for objects."
        )
    if gt.ndim == dims + 1:
        if gt.shape[0] != num_channels:
            raise ValueError(
                f"Ground truth with a channel axis has {gt.shape[0]} channels (shape "
                f"{gt.shape}) but the task predicts {num_channels}. Give one binary or label "
                "channel per task channel, or a label image without a channel axis."
            )
        return gt
    if gt.ndim != dims:
        raise ValueError(
            f"Ground truth of shape {gt.shape} fits neither {dims} spatial axes nor a channel "
            f"axis plus {dims} spatial axes. Pass a label image (*spatial) or "
            "(channels, *spatial)."
        )
    if num_channels == 1:
        return gt[None]
    top = int(gt.max()) if gt.size else 0
    if top > num_channels:
        raise ValueError(
            f"The class image holds id {top} but the task has only {num_channels} channels. "
            "With several channels a label image must hold 0 (background) or class ids "
            f"1..{num_channels} in channel order; give a (channels, *spatial) array instead "
            "to keep instances apart."
        )
    class_ids = np.arange(1, num_channels + 1).reshape((-1,) + (1,) * dims)
    return gt[None] == class_ids


def known_region(mask: Any, labels_shape: tuple[int, ...]) -> np.ndarray:
    """Boolean known-voxel mask broadcastable to ``labels_shape`` ``(C, *spatial)``.

    ``mask`` may be None (all known), ``(*spatial)``, ``(1, *spatial)`` or
    ``(C, *spatial)``; non-zero means the labels there are known.
    """
    spatial = labels_shape[1:]
    if mask is None:
        return np.ones((1, *spatial), dtype=bool)
    mask = np.asarray(mask)
    if mask.shape == spatial:
        mask = mask[None]
    if mask.shape[1:] != spatial or mask.shape[0] not in (1, labels_shape[0]):
        raise ValueError(
            f"The mask has shape {mask.shape} but the ground truth is {labels_shape} "
            "(channels, *spatial). Give a mask of the spatial shape, 1 where labels are known."
        )
    return mask != 0


def distance_transform(
    data: np.ndarray, voxel_size: Coordinate, black_border: bool
) -> np.ndarray:
    """World-unit distance of every non-zero voxel to the nearest voxel with another value
    (the ``edt`` package's multi-label transform; 0 on zeros). With ``black_border`` the
    array is surrounded by zeros; without, a region without such a voxel gets ``inf``."""
    if not 1 <= data.ndim <= 3:
        raise ValueError(
            f"Distance tasks support 1 to 3 spatial axes, got {data.ndim}. Predict 2D or 3D "
            "data (split extra axes such as time into separate datasets)."
        )
    anisotropy = tuple(float(v) for v in voxel_size)
    return edt.edt(
        np.ascontiguousarray(data),
        anisotropy=anisotropy[0] if data.ndim == 1 else anisotropy,
        black_border=black_border,
    )


def signed_distances(labels: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
    """Signed distances ``(C, *spatial)`` float32 of per-channel label images.

    Positive inside objects, negative outside, in world units, each voxel measured to the
    nearest voxel of a *different* label, so touching objects stay apart. A channel without
    any boundary (all background or one object filling the array) gets ``±inf``.
    """
    out = np.empty(labels.shape, dtype=np.float32)
    for c, lab in enumerate(labels):
        top = int(lab.max()) if lab.size else 0
        if top >= np.iinfo(np.uint64).max:  # ids + 1 would not fit: relabel densely
            lab = np.unique(lab, return_inverse=True)[1].reshape(lab.shape)
            top = int(lab.max())
        # Shifted so that background is one more label: a single multi-label EDT then gives
        # every voxel, inside or outside, its distance to the nearest different label.
        shifted = lab.astype(np.min_scalar_type(top + 1)) + np.uint8(1)
        distance = distance_transform(shifted, voxel_size, black_border=False)
        out[c] = np.where(labels[c] != 0, distance, -distance)
    return out


def inner_distances(labels: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
    """Distance ``(C, *spatial)`` float32 of every object voxel to its own object's boundary
    (0 on background), in world units; ``inf`` where an object has no visible boundary."""
    return np.stack([distance_transform(lab, voxel_size, False) for lab in labels])


def distance_is_known(
    distances: np.ndarray, known: np.ndarray, voxel_size: Coordinate, clip_distance: float
) -> np.ndarray:
    """Where a (clipped) signed distance computed inside the known region is the true one.

    A voxel at distance ``r`` from the unknown region (voxels where ``known`` is False, and
    everything beyond the array's edge) could have an unseen boundary at ``r``; its distance
    ``|d|`` is only certain if ``r >= min(|d|, clip_distance)``.
    """
    reach = np.stack([distance_transform(k, voxel_size, black_border=True) for k in known])
    return reach >= np.minimum(np.abs(distances), clip_distance)


def balanced_channel_weights(
    foreground: np.ndarray,
    known: np.ndarray,
    clipmin: float,
    clipmax: float,
    region: tuple[slice, ...] | None = None,
) -> np.ndarray:
    """Foreground/background-balanced weights ``(C, *spatial)``, each channel on its own.

    Like DaCapo's ``BalanceLabels``: within the known voxels of a channel (in the spatial
    ``region``, if given; 0 outside it), each class present gets weight ``1 / (n * f)``,
    ``f`` its fraction clipped to ``[clipmin, clipmax]`` and ``n`` the number of classes
    present; unknown voxels get 0.
    """
    if len(foreground) == 1:  # one channel: no stacking
        return balanced_binary_weights(foreground[0], known[0], (clipmin, clipmax), region)[None]
    known = np.broadcast_to(known, foreground.shape)
    return np.stack(
        [
            balanced_binary_weights(fg, k, (clipmin, clipmax), region)
            for fg, k in zip(foreground, known)
        ]
    )


def clip_padding(clip_distance: float, voxel_size: Coordinate) -> Coordinate:
    """Context of a target clipped at ``clip_distance`` (a predictor's ``padding``): a label
    ``k`` voxels away along an axis is at least ``k * voxel_size`` away, so only those with
    ``k * voxel_size < clip_distance`` can change a clipped distance."""
    return Coordinate((math.ceil(clip_distance / v) - 1) * v for v in voxel_size)


# -- the predictors ----------------------------------------------------------------------------


class ClippedDistancePredictor(Predictor):
    """Base of the distance predictors: the parameters they all check and keep, the context a
    clipped distance needs, and foreground/background-balanced weights.

    Subclasses give :meth:`create_target`; :meth:`known` may narrow where labels count.

    Parameters
    ----------
    channels
        Names of the classes, one output channel each.
    scale_factor
        World-unit distance at which the target reaches ``tanh(1) ~ 0.76``.
    clip_distance
        Distances are clipped to ``clip_distance`` (world units).
    clipmin, clipmax
        Bounds on the class fractions used to balance foreground against background.
    """

    # Clipped distances only see labels within padding(), and a distance transform of
    # mirrored or transposed labels (equal voxel sizes on swapped axes) is the mirrored or
    # transposed transform; integer world distances keep it bit-exact.
    precomputable_target = True

    def __init__(
        self,
        channels: Sequence[str],
        scale_factor: float,
        clip_distance: float,
        clipmin: float = 0.05,
        clipmax: float = 0.95,
    ) -> None:
        check_distance_parameters(
            channels=channels, scale_factor=scale_factor, clip_distance=clip_distance,
            clipmin=clipmin, clipmax=clipmax,
        )
        self._channels = list(channels)
        self.scale_factor = float(scale_factor)
        self.clip_distance = float(clip_distance)
        self.clipmin = float(clipmin)
        self.clipmax = float(clipmax)

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        return clip_padding(self.clip_distance, gt_voxel_size)

    def labels(self, gt: Any, voxel_size: Coordinate) -> np.ndarray:
        """Per-channel label images of ``gt`` (:func:`channel_labels`)."""
        return channel_labels(gt, len(self._channels), len(voxel_size))

    def known(
        self, labels: np.ndarray, mask: np.ndarray | None, voxel_size: Coordinate
    ) -> np.ndarray:
        """Where the labels count for the weights: where ``mask`` is non-zero."""
        return known_region(mask, labels.shape)

    def balanced_weights(
        self, labels: np.ndarray, known: np.ndarray, region: tuple[slice, ...] | None = None
    ) -> np.ndarray:
        """Foreground/background-balanced weights of ``labels`` over the ``known`` voxels
        (:func:`balanced_channel_weights` with this predictor's ``clipmin``/``clipmax``)."""
        return balanced_channel_weights(labels != 0, known, self.clipmin, self.clipmax, region)

    def create_weight(
        self,
        gt: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray | None,
        voxel_size: Coordinate,
        region: tuple[slice, ...] | None = None,
    ) -> np.ndarray:
        """Foreground/background-balanced weights, 0 where :meth:`known` is False.
        ``target`` is not read: foreground and distances come from ``gt``, since the tanh of
        the target loses them where it saturates."""
        labels = self.labels(gt, voxel_size)
        return self.balanced_weights(labels, self.known(labels, mask, voxel_size), region)


class DistancePredictor(ClippedDistancePredictor):
    """Predict ``tanh(signed_distance / scale_factor)`` per channel.

    Distances are positive inside objects and negative outside, in world units, clipped to
    ``±clip_distance`` before the tanh. Ground truth may come in the forms (a), (b), (c) of
    this module's docstring.

    Parameters
    ----------
    channels
        Names of the classes, one output channel each.
    scale_factor
        World-unit distance at which the target reaches ``tanh(1) ~ 0.76``; larger values
        give a gentler slope across the boundary.
    mask_distances
        If True, the loss weight is also 0 wherever the distance cannot be known from the
        visible labels: voxels whose distance to the unknown region (mask 0, or outside the
        sample) is smaller than ``min(|distance|, clip_distance)``, because an object or
        background beyond it could be closer than the boundary seen.
    clip_distance
        Distances are clipped to ``±clip_distance`` (world units).
    clipmin, clipmax
        Bounds on the class fractions used for balancing the weights (DaCapo's values).

    Notes
    -----
    The target is in ``[-1, 1]`` and the network output is compared to it as is, so
    :meth:`eval_activation` is None and the predictions are thresholded around 0.
    """

    def __init__(
        self,
        channels: Sequence[str],
        scale_factor: float,
        mask_distances: bool,
        clip_distance: float,
        clipmin: float = 0.05,
        clipmax: float = 0.95,
    ) -> None:
        super().__init__(channels, scale_factor, clip_distance, clipmin, clipmax)
        self.mask_distances = bool(mask_distances)

    def normalize(self, distances: np.ndarray) -> np.ndarray:
        """``tanh(clip(d, ±clip_distance) / scale_factor)`` as float32."""
        clipped = np.clip(distances, -self.clip_distance, self.clip_distance)
        return np.tanh(clipped / self.scale_factor).astype(np.float32)

    def create_target(self, gt: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        return self.normalize(signed_distances(self.labels(gt, voxel_size), voxel_size))

    def known(
        self, labels: np.ndarray, mask: np.ndarray | None, voxel_size: Coordinate
    ) -> np.ndarray:
        """Where ``mask`` is non-zero and, with ``mask_distances``, the distance is knowable."""
        known = super().known(labels, mask, voxel_size)
        if self.mask_distances:
            known = known & distance_is_known(
                signed_distances(labels, voxel_size), known, voxel_size, self.clip_distance
            )
        return known
