"""Scores of an instance segmentation against instance labels.

:func:`instance_scores` is the one place instance criteria are computed; the
:class:`InstanceEvaluator` (affinities) and the per-channel instance scores of
:class:`~.binary_and_instance_evaluator.BinaryAndInstanceEvaluator` (distance tasks) both
call it.

Empty cases give defined values, never an error or NaN: with no ground-truth objects VOI
and Rand error are 0 (nothing can be split or merged); ``object_precision`` is 1 when nothing
is predicted and ``object_recall`` is 1 when there is nothing to find, while ``object_f1`` is
1 only when both images are empty and 0 when exactly one is. Only with no voxel to compare
at all (an empty mask) is every score NaN: such a crop says nothing about the model, and
NaN scores are skipped when the best iteration is chosen.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from funlib.geometry import Coordinate
from scipy import sparse
from skimage.metrics import adapted_rand_error

from .evaluation_scores import EvaluationScores
from .evaluator import Evaluator

#: An object counts as found when a predicted object overlaps it with an IoU above this.
#: Above 0.5, a ground-truth object can match at most one predicted object and vice versa.
MATCH_IOU = 0.5

#: criterion -> (higher is better, (lower bound, upper bound)); None = unbounded. The first
#: is the main one, which panels default to: ``voi`` weighs splits and merges alike (its
#: halves alone pick degenerate post-processing: ``voi_split`` is best when everything is
#: merged into one object).
INSTANCE_CRITERIA: dict[str, tuple[bool, tuple[float | None, float | None]]] = {
    "voi": (False, (0.0, None)),
    "voi_split": (False, (0.0, None)),
    "voi_merge": (False, (0.0, None)),
    "adapted_rand_error": (False, (0.0, 1.0)),
    "object_precision": (True, (0.0, 1.0)),
    "object_recall": (True, (0.0, 1.0)),
    "object_f1": (True, (0.0, 1.0)),
}


def instance_scores(
    prediction: np.ndarray, gt: np.ndarray, known: np.ndarray | None = None
) -> dict[str, float]:
    """Every :data:`INSTANCE_CRITERIA` of label image ``prediction`` against ``gt``.

    Parameters
    ----------
    prediction, gt
        Label images of the same shape; 0 is background, every other id one object.
    known
        Boolean mask of the voxels to score (None: all).

    Returns
    -------
    dict
        ``voi_split``, ``voi_merge``, ``voi``: variation of information (bits), the
        conditional entropies H(prediction | gt) and H(gt | prediction) and their sum.
        ``adapted_rand_error``: SNEMI3D's adapted Rand error in ``[0, 1]``. As in DaCapo,
        these four are measured on ground-truth objects only (voxels with ``gt == 0`` are
        ignored); predicted objects in the background are caught by precision.
        ``object_precision``, ``object_recall``, ``object_f1``: matching of predicted to
        true objects at IoU above :data:`MATCH_IOU` (label 0 is not an object).
        See the module docstring for empty images.
    """
    if prediction.shape != gt.shape:
        raise ValueError(
            f"The instance prediction {prediction.shape} and gt {gt.shape} differ in shape; "
            "evaluate the post-processed prediction on the gt's region."
        )
    known = slice(None) if known is None else np.asarray(known, dtype=bool)
    gt_ids, gt_index = np.unique(gt[known], return_inverse=True)
    pred_ids, pred_index = np.unique(prediction[known], return_inverse=True)
    if gt_index.size == 0:
        return dict.fromkeys(INSTANCE_CRITERIA, math.nan)
    # Contingency table: voxels per (gt id, predicted id) pair.
    table = sparse.coo_array(
        (np.ones(gt_index.size), (gt_index.ravel(), pred_index.ravel())),
        shape=(gt_ids.size, pred_ids.size),
    ).tocsr()
    return _split_merge(table[gt_ids != 0]) | _matching(table, gt_ids, pred_ids)


class InstanceEvaluator(Evaluator):
    """Split/merge and object-level scores of a label image ``(*spatial)`` against ``gt``.

    The criteria are :data:`INSTANCE_CRITERIA` under their own names (``voi``,
    ``object_f1`` ...), computed by :func:`instance_scores`, each with its own direction
    and bounds; only voxels where ``mask`` is nonzero count. See the module docstring for
    empty images.
    """

    criteria: dict[str, tuple[bool, tuple[float | None, float | None]]] = INSTANCE_CRITERIA

    @property
    def score(self) -> EvaluationScores:
        return EvaluationScores(
            directions={name: higher for name, (higher, _) in self.criteria.items()},
            bound_values={name: bounds for name, (_, bounds) in self.criteria.items()},
        )

    def evaluate(
        self,
        prediction: np.ndarray,
        gt: np.ndarray,
        voxel_size: Coordinate,
        mask: np.ndarray | None = None,
    ) -> EvaluationScores:
        values = instance_scores(np.asarray(prediction), np.asarray(gt), mask)
        return dataclasses.replace(self.score, values=values)


def _split_merge(table: sparse.csr_array) -> dict[str, float]:
    """VOI and adapted Rand error from the contingency table of ground-truth objects."""
    total = table.sum()
    if total == 0:
        return {"voi_split": 0.0, "voi_merge": 0.0, "voi": 0.0, "adapted_rand_error": 0.0}
    # skimage's variation_of_information cannot take a ready table (it checks the shapes
    # of the absent images), so the conditional entropies are computed here.
    joint = _entropy(table.data / total)
    split = max(joint - _entropy(np.asarray(table.sum(axis=1)).ravel() / total), 0.0)
    merge = max(joint - _entropy(np.asarray(table.sum(axis=0)).ravel() / total), 0.0)
    # The Rand error counts voxel pairs; with only single-voxel segments there is none.
    has_pairs = max(table.sum(axis=0).max(), table.sum(axis=1).max()) > 1
    are = adapted_rand_error(table=table)[0] if has_pairs else 0.0
    return {
        "voi_split": float(split),
        "voi_merge": float(merge),
        "voi": float(split + merge),
        "adapted_rand_error": float(are),
    }


def _entropy(p: np.ndarray) -> float:
    """Shannon entropy in bits of the probabilities ``p`` (zeros allowed)."""
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _matching(
    table: sparse.csr_array, gt_ids: np.ndarray, pred_ids: np.ndarray
) -> dict[str, float]:
    """Object precision, recall and f1 at IoU above :data:`MATCH_IOU`."""
    gt_size = np.asarray(table.sum(axis=1)).ravel()
    pred_size = np.asarray(table.sum(axis=0)).ravel()
    pairs = table.tocoo()
    g, p, overlap = pairs.row, pairs.col, pairs.data
    objects = (gt_ids[g] != 0) & (pred_ids[p] != 0)
    g, p, overlap = g[objects], p[objects], overlap[objects]
    iou = overlap / (gt_size[g] + pred_size[p] - overlap)
    matches = int(np.count_nonzero(iou > MATCH_IOU))
    n_gt = int(np.count_nonzero(gt_ids))
    n_pred = int(np.count_nonzero(pred_ids))
    return {
        "object_precision": matches / n_pred if n_pred else 1.0,
        "object_recall": matches / n_gt if n_gt else 1.0,
        "object_f1": 2 * matches / (n_gt + n_pred) if n_gt + n_pred else 1.0,
    }
