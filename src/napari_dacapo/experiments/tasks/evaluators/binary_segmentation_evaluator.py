"""Scores of binary segmentations, one set per channel (DaCapo's
``BinarySegmentationEvaluator``), computed with numpy and ``edt`` only.

Empty masks never crash and never give NaN. The convention: a ratio whose denominator counts
nothing is perfect, because nothing could go wrong. Both empty gives dice, jaccard,
precision, recall and f1 of 1, error rates, distances and VOI of 0. An empty prediction gives
precision 1 (no false detection) but recall, dice and f1 of 0. An empty truth with a
non-empty prediction gives recall 1 but precision, dice and f1 of 0. When exactly one mask
is empty, ``mean_false_distance_clipped`` is ``clip_distance`` (every voxel is that far off)
and ``hausdorff`` and ``hausdorff_95`` are the diagonal of the crop in world units, longer than
any distance within it, so that missing everything never scores better than any real
prediction. Only with no known voxel at all (an all-zero mask) is every score NaN: such a crop
says nothing about the model, and NaN scores are skipped when the best iteration is chosen.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from funlib.geometry import Coordinate

from ..predictors.distance_predictor import (
    channel_labels,
    check_distance_parameters,
    distance_transform,
    known_region,
)
from .evaluation_scores import EvaluationScores
from .evaluator import Evaluator

#: criterion -> (higher is better, (lower bound, upper bound)); None = unbounded.
#: ``mean_false_distance_clipped``'s upper bound is the evaluator's ``clip_distance``.
CRITERIA: dict[str, tuple[bool, tuple[float | None, float | None]]] = {
    "dice": (True, (0.0, 1.0)),
    "jaccard": (True, (0.0, 1.0)),
    "precision": (True, (0.0, 1.0)),
    "recall": (True, (0.0, 1.0)),
    "f1_score": (True, (0.0, 1.0)),
    "false_positive_rate": (False, (0.0, 1.0)),
    "false_negative_rate": (False, (0.0, 1.0)),
    "precision_with_tolerance": (True, (0.0, 1.0)),
    "recall_with_tolerance": (True, (0.0, 1.0)),
    "f1_score_with_tolerance": (True, (0.0, 1.0)),
    "mean_false_distance_clipped": (False, (0.0, None)),
    "hausdorff": (False, (0.0, None)),  # world units; at most the crop's diagonal
    "hausdorff_95": (False, (0.0, None)),
    "voi": (False, (0.0, 2.0)),  # in bits; two binary partitions differ by at most 2
}

#: ``hausdorff_95`` takes, per mask, the distance within which this fraction of its voxels lie.
HAUSDORFF_QUANTILE = 0.95


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return float(numerator / denominator) if denominator else empty


def _entropy(counts: np.ndarray) -> float:
    """Entropy in bits of a distribution given by counts (zeros ignored)."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def binary_segmentation_scores(
    truth: np.ndarray,
    test: np.ndarray,
    known: np.ndarray,
    voxel_size: Coordinate,
    clip_distance: float,
    tol_distance: float,
) -> dict[str, float]:
    """All :data:`CRITERIA` of one binary channel, counted over the ``known`` voxels.

    Parameters
    ----------
    truth, test
        Boolean masks of the true and the predicted foreground.
    known
        Boolean mask of the voxels to score; truth and prediction elsewhere are ignored.
    voxel_size
        World units per voxel, for the distance-based criteria.
    clip_distance
        ``mean_false_distance_clipped`` clips every distance to this (world units).
    tol_distance
        A predicted voxel within this distance of the truth counts as correct for
        ``precision_with_tolerance``, and a true voxel within it of the prediction as found
        for ``recall_with_tolerance``.

    Returns
    -------
    dict
        ``dice`` (equal to ``f1_score`` for binary masks; both kept for DaCapo users),
        ``jaccard``, ``precision``, ``recall``, ``false_positive_rate`` (of the true
        background), ``false_negative_rate`` (``1 - recall``), the tolerance variants,
        ``mean_false_distance_clipped`` (the mean, over predicted and true voxels together, of
        each voxel's distance to the nearest voxel of the other mask, clipped; correct voxels
        count 0; it pools what DaCapo averages per mask), ``hausdorff`` (the symmetric
        Hausdorff distance between the two foregrounds: the largest distance from a voxel of
        either mask to the nearest voxel of the other, in world units, voxel centre to voxel
        centre), ``hausdorff_95`` (the same with, per mask, the distance within which 95 % of
        its voxels lie instead of the largest: a few stray voxels do not dominate it) and
        ``voi`` (variation of information of the two fg/bg partitions, in bits). See the
        module docstring for empty masks.
    """
    truth, test = truth & known, test & known
    n_known = int(np.count_nonzero(known))
    if n_known == 0:
        return dict.fromkeys(CRITERIA, math.nan)
    tp = int(np.count_nonzero(truth & test))
    fp = int(np.count_nonzero(test)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    tn = n_known - tp - fp - fn

    precision = _ratio(tp, tp + fp, empty=1.0)
    recall = _ratio(tp, tp + fn, empty=1.0)
    dice = _ratio(2 * tp, 2 * tp + fp + fn, empty=1.0)

    # World-unit distance of every predicted voxel to the nearest true voxel and vice versa
    # (inf when the other mask is empty).
    to_truth = distance_transform(~truth, voxel_size, black_border=False)[test]
    to_test = distance_transform(~test, voxel_size, black_border=False)[truth]
    precision_tol = _ratio(np.count_nonzero(to_truth <= tol_distance), tp + fp, empty=1.0)
    recall_tol = _ratio(np.count_nonzero(to_test <= tol_distance), tp + fn, empty=1.0)
    false_distances = np.minimum(np.concatenate([to_truth, to_test]), clip_distance)
    if to_truth.size and to_test.size:
        hausdorff = max(to_truth.max(), to_test.max())
        hausdorff_95 = max(
            np.quantile(d, HAUSDORFF_QUANTILE, method="inverted_cdf") for d in (to_truth, to_test)
        )
    else:
        diagonal = np.linalg.norm(np.multiply(truth.shape, tuple(voxel_size)))
        hausdorff = hausdorff_95 = diagonal if to_truth.size or to_test.size else 0.0

    contingency = np.array([tn, fp, fn, tp], dtype=np.float64)
    voi = (
        2 * _entropy(contingency)
        - _entropy(np.array([tn + fp, fn + tp], dtype=np.float64))
        - _entropy(np.array([tn + fn, fp + tp], dtype=np.float64))
    )
    return {
        "dice": dice,
        "jaccard": _ratio(tp, tp + fp + fn, empty=1.0),
        "precision": precision,
        "recall": recall,
        "f1_score": dice,
        "false_positive_rate": _ratio(fp, fp + tn, empty=0.0),
        "false_negative_rate": _ratio(fn, tp + fn, empty=0.0),
        "precision_with_tolerance": precision_tol,
        "recall_with_tolerance": recall_tol,
        "f1_score_with_tolerance": _ratio(
            2 * precision_tol * recall_tol, precision_tol + recall_tol, empty=0.0
        ),
        "mean_false_distance_clipped": float(false_distances.mean()) if false_distances.size
        else 0.0,
        "hausdorff": float(hausdorff),
        "hausdorff_95": float(hausdorff_95),
        "voi": max(voi, 0.0),  # rounding can leave -1e-16 for identical partitions
    }


class BinarySegmentationEvaluator(Evaluator):
    """Score binary masks ``(C, *spatial)`` against ground truth, channel by channel.

    Criteria are named ``"<channel>__<criterion>"`` for every criterion of :data:`CRITERIA`
    (see :func:`binary_segmentation_scores` for definitions and the module docstring for
    empty masks), each with its own direction and bounds. Ground truth may be given in any
    form :func:`~..predictors.distance_predictor.channel_labels` accepts (a label image, a
    class image, or ``(C, *spatial)`` binary channels); non-zero is foreground. With one
    channel the prediction may also come without its channel axis.

    Parameters
    ----------
    clip_distance
        Clip for ``mean_false_distance_clipped`` (world units).
    tol_distance
        Tolerance for the ``*_with_tolerance`` criteria (world units).
    channels
        Names of the channels, in the order of the prediction's channel axis.
    """

    def __init__(self, clip_distance: float, tol_distance: float, channels: Sequence[str]):
        check_distance_parameters(
            channels=channels, clip_distance=clip_distance, tol_distance=tol_distance
        )
        self.clip_distance = float(clip_distance)
        self.tol_distance = float(tol_distance)
        self.channels = list(channels)

    def channel_criteria(self) -> dict[str, tuple[bool, tuple[float | None, float | None]]]:
        """Criteria scored for every channel: name -> (higher is better, bounds)."""
        criteria = dict(CRITERIA)
        criteria["mean_false_distance_clipped"] = (False, (0.0, self.clip_distance))
        return criteria

    def channel_scores(
        self, truth: np.ndarray, test: np.ndarray, known: np.ndarray, voxel_size: Coordinate
    ) -> dict[str, float]:
        """Scores of one channel: ``truth`` label image, ``test`` segmentation (non-zero is
        foreground in both), ``known`` voxels to score."""
        return binary_segmentation_scores(
            truth != 0, test != 0, known, voxel_size, self.clip_distance, self.tol_distance
        )

    @property
    def criteria(self) -> list[str]:
        return [f"{c}__{k}" for c, k in itertools.product(self.channels, self.channel_criteria())]

    @property
    def score(self) -> EvaluationScores:
        directions, bounds = {}, {}
        for channel, (name, (higher, limits)) in itertools.product(
            self.channels, self.channel_criteria().items()
        ):
            directions[f"{channel}__{name}"] = higher
            bounds[f"{channel}__{name}"] = limits
        return EvaluationScores(directions=directions, bound_values=bounds)

    def evaluate(
        self,
        prediction: np.ndarray,
        gt: np.ndarray,
        voxel_size: Coordinate,
        mask: np.ndarray | None = None,
    ) -> EvaluationScores:
        """Score ``prediction`` (non-zero = foreground) within ``mask`` (1 = labels known)."""
        dims = len(voxel_size)
        truth = channel_labels(gt, len(self.channels), dims)
        test = np.asarray(prediction)
        if test.ndim == dims and len(self.channels) == 1:
            test = test[None]
        if test.shape != truth.shape:
            raise ValueError(
                f"The prediction has shape {test.shape} but the ground truth gives "
                f"{truth.shape} (channels, *spatial); post-process to one segmentation "
                "channel per evaluated channel over the ground truth's region."
            )
        known = np.broadcast_to(known_region(mask, truth.shape), truth.shape)
        scores = self.score
        for c, channel in enumerate(self.channels):
            values = self.channel_scores(truth[c], test[c], known[c], voxel_size)
            scores.values.update({f"{channel}__{k}": v for k, v in values.items()})
        return scores
