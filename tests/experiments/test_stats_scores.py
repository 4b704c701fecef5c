"""TrainingStats and ValidationScores: ordering rules, xarray views, best-score selection."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from napari_dacapo.experiments.datasplits.datasets.dataset import Dataset
from napari_dacapo.experiments.tasks.evaluators.evaluation_scores import EvaluationScores
from napari_dacapo.experiments.tasks.post_processors.post_processor_parameters import (
    PostProcessorParameters,
)
from napari_dacapo.experiments.training_iteration_stats import TrainingIterationStats
from napari_dacapo.experiments.training_stats import TrainingStats
from napari_dacapo.experiments.validation_iteration_scores import ValidationIterationScores
from napari_dacapo.experiments.validation_scores import ValidationScores

NAN = math.nan


# -- TrainingStats ---------------------------------------------------------------------------


def _stats(*iterations: int) -> TrainingStats:
    stats = TrainingStats()
    for i in iterations:
        stats.add_iteration_stats(TrainingIterationStats(i, 1.0 / (i + 1), time=0.1))
    return stats


def test_training_stats_are_consecutive():
    stats = TrainingStats()
    assert stats.trained_until() == 0
    stats = _stats(5, 6, 7)  # a first iteration other than 0 is allowed
    assert stats.trained_until() == 8
    for bad in (7, 9, 3):
        with pytest.raises(ValueError, match="expected iteration 8"):
            stats.add_iteration_stats(TrainingIterationStats(bad, 0.1))
    assert [s.iteration for s in stats.iteration_stats] == [5, 6, 7]


def test_training_stats_delete_after_keeps_earlier_iterations():
    stats = _stats(0, 1, 2, 3)
    stats.delete_after(2)
    assert [s.iteration for s in stats.iteration_stats] == [0, 1]
    assert stats.trained_until() == 2
    stats.add_iteration_stats(TrainingIterationStats(2, 0.5))  # re-training continues
    assert stats.trained_until() == 3


def test_training_stats_to_xarray():
    stats = _stats(3, 4, 5)
    losses = stats.to_xarray()
    assert losses.dims == ("iterations",)
    assert list(losses["iterations"].values) == [3, 4, 5]
    np.testing.assert_allclose(losses.values, [1 / 4, 1 / 5, 1 / 6])
    assert float(losses.sel(iterations=4)) == pytest.approx(0.2)
    assert TrainingStats().to_xarray().sizes["iterations"] == 0


def test_training_stats_dict_round_trip_keeps_nan_and_checks_order():
    stats = _stats(0, 1)
    stats.add_iteration_stats(TrainingIterationStats(2, NAN))
    again = TrainingStats.from_dict(stats.to_dict())
    assert [s.iteration for s in again.iteration_stats] == [0, 1, 2]
    assert again.iteration_stats[:2] == stats.iteration_stats[:2]
    assert math.isnan(again.iteration_stats[2].loss)
    data = stats.to_dict()
    del data["iteration_stats"][1]
    with pytest.raises(ValueError, match="do not follow"):
        TrainingStats.from_dict(data)


# -- ValidationScores ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ThresholdParameters(PostProcessorParameters):
    threshold: float


class NamedDataset(Dataset):
    def __init__(self, name: str) -> None:
        self.name = name


CRITERIA = {"voi": False, "f1": True}  # voi: lower is better; f1: higher is better
PARAMETERS = [ThresholdParameters(0, 0.25), ThresholdParameters(1, 0.5)]
ITERATIONS = [100, 200, 300]

# SCORES[iteration][dataset][parameter] = (voi, f1). On dataset "a", voi is best (lowest)
# at iteration 100 with parameters 1, f1 best (highest) at 300 with parameters 0; DaCapo's
# use of the first criterion's direction for all would pick f1's *lowest* instead. NaNs sit
# where a NaN-unaware argmax/argmin would pick them.
SCORES = [
    [[(0.9, NAN), (0.1, 0.2)], [(NAN, 0.5), (0.7, 0.4)]],
    [[(0.5, 0.6), (NAN, 0.1)], [(0.3, 0.6), (0.2, 0.9)]],
    [[(0.8, 0.95), (0.4, NAN)], [(0.6, 0.7), (0.5, 0.3)]],
]


def _iteration_scores(i: int) -> ValidationIterationScores:
    return ValidationIterationScores(ITERATIONS[i], [[list(c) for c in d] for d in SCORES[i]])


def _scores(*indexes: int, datasets=("a", "b")) -> ValidationScores:
    return ValidationScores(
        PARAMETERS,
        [NamedDataset(n) for n in datasets],
        EvaluationScores(directions=dict(CRITERIA)),
        [_iteration_scores(i) for i in indexes],
    )


def test_names():
    scores = _scores()
    assert scores.criteria == ["voi", "f1"]
    assert scores.parameter_names == ["threshold"]
    assert scores.dataset_names == ["a", "b"]


def test_add_iteration_scores_refuses_duplicates_and_bad_shapes_and_keeps_order():
    scores = _scores(2, 0)
    assert [s.iteration for s in scores.scores] == [100, 300]
    with pytest.raises(ValueError, match="Iteration 300 has validation scores already"):
        scores.add_iteration_scores(_iteration_scores(2))
    with pytest.raises(ValueError, match=r"sizes \[2\]\[2\]\[2\]"):
        scores.add_iteration_scores(ValidationIterationScores(400, [[[0.1, 0.2]]]))
    scores.add_iteration_scores(_iteration_scores(1))
    assert [s.iteration for s in scores.scores] == [100, 200, 300]


def test_delete_after_validated_until_and_subscores():
    scores = _scores()
    assert scores.validated_until() == 0
    scores = _scores(0, 1, 2)
    assert scores.validated_until() == 301
    scores.delete_after(300)
    assert [s.iteration for s in scores.scores] == [100, 200]
    sub = scores.subscores([scores.scores[0]])
    assert [s.iteration for s in sub.scores] == [100]
    assert sub.parameters == scores.parameters and sub.criteria == scores.criteria
    assert len(scores.scores) == 2  # the original is untouched


def test_compare_follows_dacapo():
    local = _scores(0, 1)  # validated until 201
    assert local.compare([]) == (False, 0)
    # Existing scores reach further: replace them all with the local ones.
    assert local.compare([_iteration_scores(0), _iteration_scores(2)]) == (True, 0)
    # Existing scores end earlier: append the local ones from there on.
    assert local.compare([_iteration_scores(0)]) == (False, 101)
    assert local.compare([_iteration_scores(1)]) == (False, 201)


def test_to_xarray_layout():
    data = _scores(0, 1, 2).to_xarray()
    assert data.dims == ("iterations", "datasets", "parameters", "criteria")
    assert list(data["iterations"].values) == ITERATIONS
    assert list(data["datasets"].values) == ["a", "b"]
    assert list(data["parameters"].values) == PARAMETERS
    assert list(data["parameter_ids"].values) == [0, 1]
    assert list(data["criteria"].values) == ["voi", "f1"]
    value = data.sel(iterations=200, datasets="b", parameters=PARAMETERS[1], criteria="f1")
    assert float(value) == 0.9
    assert _scores().to_xarray().shape == (0, 2, 2, 2)


def test_get_best_applies_each_criterions_direction_and_skips_nan():
    scores = _scores(0, 1, 2)
    data = scores.to_xarray().sel(datasets="a")
    best_parameters, per_iteration = scores.get_best(data, "parameters")
    assert per_iteration.dims == ("iterations", "criteria")
    # Iteration 100: voi min(0.9, 0.1) -> parameters 1; f1 max(NaN, 0.2) -> parameters 1.
    assert best_parameters.sel(iterations=100, criteria="voi").item() == PARAMETERS[1]
    assert best_parameters.sel(iterations=100, criteria="f1").item() == PARAMETERS[1]
    # Iteration 200: voi min(0.5, NaN) -> parameters 0, never the NaN.
    assert best_parameters.sel(iterations=200, criteria="voi").item() == PARAMETERS[0]
    np.testing.assert_allclose(
        per_iteration.sel(criteria="voi").values, [0.1, 0.5, 0.4]
    )
    np.testing.assert_allclose(per_iteration.sel(criteria="f1").values, [0.2, 0.6, 0.95])

    best_iterations, best_values = scores.get_best(per_iteration, "iterations")
    assert best_iterations.sel(criteria="voi").item() == 100
    assert best_iterations.sel(criteria="f1").item() == 300
    assert best_values.sel(criteria="voi").item() == pytest.approx(0.1)
    assert best_values.sel(criteria="f1").item() == pytest.approx(0.95)


def test_get_best_all_nan_gives_nan():
    scores = ValidationScores(
        PARAMETERS,
        [NamedDataset("a")],
        EvaluationScores(directions=dict(CRITERIA)),
        [
            ValidationIterationScores(0, [[[NAN, 0.5], [NAN, 0.7]]]),
            ValidationIterationScores(1, [[[NAN, NAN], [NAN, 0.6]]]),
        ],
    )
    data = scores.to_xarray().sel(datasets="a")
    best_parameters, per_iteration = scores.get_best(data, "parameters")
    assert best_parameters.sel(iterations=0, criteria="voi").item() is None
    assert best_parameters.sel(iterations=1, criteria="f1").item() == PARAMETERS[1]
    best_iterations, values = scores.get_best(per_iteration, "iterations")
    assert math.isnan(best_iterations.sel(criteria="voi").item())
    assert math.isnan(values.sel(criteria="voi").item())
    assert best_iterations.sel(criteria="f1").item() == 0
    assert scores.best("voi") is None
    assert scores.best("f1") == (0, PARAMETERS[1], 0.7)


def test_get_best_refuses_unclear_requests():
    scores = _scores(0, 1)
    data = scores.to_xarray()
    with pytest.raises(ValueError, match="no 'criteria' dimension"):
        scores.get_best(data.sel(criteria="f1"), "iterations")
    with pytest.raises(ValueError, match="along 'criteria'"):
        scores.get_best(data, "criteria")
    with pytest.raises(ValueError, match="along 'epochs'"):
        scores.get_best(data, "epochs")
    with pytest.raises(ValueError, match="it is empty"):
        scores.get_best(_scores().to_xarray(), "iterations")
    with pytest.raises(ValueError, match=r"Unknown criteria \['iou'\]"):
        scores.get_best(data.assign_coords(criteria=["voi", "iou"]), "iterations")


def test_best_per_dataset_and_over_datasets():
    scores = _scores(0, 1, 2)
    assert scores.best("voi", "a") == (100, PARAMETERS[1], pytest.approx(0.1))
    assert scores.best("f1", NamedDataset("a")) == (300, PARAMETERS[0], pytest.approx(0.95))
    assert scores.best("f1", "b") == (200, PARAMETERS[1], pytest.approx(0.9))
    # Mean over datasets, NaN skipped: f1 at (200, parameters 0) is (0.6 + 0.6) / 2, at
    # (300, parameters 0) (0.95 + 0.7) / 2 = 0.825, the best.
    assert scores.best("f1") == (300, PARAMETERS[0], pytest.approx(0.825))
    # voi means: (100, p1) 0.4, (200, p0) 0.4, (200, p1) NaN/0.2 -> 0.2, the lowest.
    assert scores.best("voi") == (200, PARAMETERS[1], pytest.approx(0.2))
    assert _scores().best("f1") is None
    with pytest.raises(ValueError, match="Unknown criterion 'iou'"):
        scores.best("iou")
    with pytest.raises(ValueError, match=r"Unknown validation dataset 'c'.*\['a', 'b'\]"):
        scores.best("f1", "c")


def test_validation_iteration_scores_dict_round_trip():
    scores = _iteration_scores(0)
    again = ValidationIterationScores.from_dict(scores.to_dict())
    assert again.iteration == 100
    np.testing.assert_array_equal(np.array(again.scores), np.array(scores.scores))
