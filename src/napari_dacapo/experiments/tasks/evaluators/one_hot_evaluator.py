"""Scores of a semantic segmentation against class labels."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from funlib.geometry import Coordinate

from .evaluation_scores import EvaluationScores
from .evaluator import Evaluator


class OneHotEvaluator(Evaluator):
    """Per-class and overall agreement of predicted class indices with ``gt`` ``(*spatial)``.

    Criteria, all in ``[0, 1]`` and higher is better: ``<class>__dice`` and ``<class>__iou``
    for every class, ``mean_iou`` (over the classes that occur in the ground truth or the
    prediction) and ``accuracy`` (fraction of voxels with the right class). Only voxels where
    ``mask`` is nonzero count.

    A class absent from both images has no dice or IoU (NaN): it says nothing about the
    model, and counting it as perfect would hide errors on the classes that do occur. With
    no voxels to compare (an empty mask) every score is NaN.

    Parameters
    ----------
    classes
        Class names; index ``i`` means ``classes[i]``.
    """

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = list(classes)

    @property
    def criteria(self) -> list[str]:
        per_class = [f"{c}__{m}" for c in self.classes for m in ("dice", "iou")]
        # The first is the main one, which panels default to (not the background's dice).
        return ["mean_iou", "accuracy", *per_class]

    @property
    def score(self) -> EvaluationScores:
        return EvaluationScores(
            directions=dict.fromkeys(self.criteria, True),
            bound_values=dict.fromkeys(self.criteria, (0.0, 1.0)),
        )

    def evaluate(
        self,
        prediction: np.ndarray,
        gt: np.ndarray,
        voxel_size: Coordinate,
        mask: np.ndarray | None = None,
    ) -> EvaluationScores:
        if prediction.shape != gt.shape:
            raise ValueError(
                f"{type(self).__name__}: prediction {prediction.shape} and gt {gt.shape} differ "
                "in shape; evaluate the argmax of the prediction on the gt's region."
            )
        known = slice(None) if mask is None else np.asarray(mask, dtype=bool)
        truth, predicted = gt[known].ravel(), prediction[known].ravel()
        if truth.size == 0:
            return dataclasses.replace(self.score, values=dict.fromkeys(self.criteria, math.nan))
        n = len(self.classes)
        # Values outside 0..n-1 (in either image) land in an extra bin that matches nothing.
        truth = np.where((truth >= 0) & (truth < n), truth, n).astype(np.intp)
        predicted = np.where((predicted >= 0) & (predicted < n), predicted, n).astype(np.intp)
        true_count = np.bincount(truth, minlength=n + 1)[:n]
        pred_count = np.bincount(predicted, minlength=n + 1)[:n]
        hits = np.bincount(truth[truth == predicted], minlength=n + 1)[:n]
        union = true_count + pred_count - hits
        occurs = union > 0
        iou = np.full(n, math.nan)
        dice = np.full(n, math.nan)
        iou[occurs] = hits[occurs] / union[occurs]
        dice[occurs] = 2 * hits[occurs] / (true_count[occurs] + pred_count[occurs])
        values: dict[str, float] = {}
        for name, d, i in zip(self.classes, dice, iou):
            values[f"{name}__dice"] = float(d)
            values[f"{name}__iou"] = float(i)
        values["mean_iou"] = float(iou[occurs].mean()) if occurs.any() else math.nan
        values["accuracy"] = float(hits.sum() / truth.size)
        return dataclasses.replace(self.score, values=values)
