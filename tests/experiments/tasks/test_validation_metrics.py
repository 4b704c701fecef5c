"""Validation scores and the post-processing sweeps: Hausdorff distances, connected
components, mutex watershed, binary plus instance scores of distance tasks, and the values
every evaluator gives for empty truth, empty prediction and unknown crops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from funlib.geometry import Coordinate

from napari_dacapo.experiments.configs import ConfigError
from napari_dacapo.experiments.tasks import (
    AffinitiesTaskConfig,
    DistanceTaskConfig,
    DummyTaskConfig,
    HotDistanceTaskConfig,
    InnerDistanceTaskConfig,
    OneHotTaskConfig,
)
from napari_dacapo.experiments.tasks.evaluators import (
    BinaryAndInstanceEvaluator,
    BinarySegmentationEvaluator,
    DummyEvaluator,
    InstanceEvaluator,
    OneHotEvaluator,
)
from napari_dacapo.experiments.tasks.post_processors import (
    ConnectedComponentsPostProcessor,
    ConnectedComponentsPostProcessorParameters,
    MutexWatershedPostProcessor,
    MutexWatershedPostProcessorParameters,
    ThresholdPostProcessorParameters,
    WatershedPostProcessor,
)

V2 = Coordinate(1, 1)


def binary(truth, test, voxel_size=V2, mask=None):
    evaluator = BinarySegmentationEvaluator(clip_distance=4.0, tol_distance=1.0, channels=["fg"])
    return evaluator.evaluate(np.asarray(test), np.asarray(truth), voxel_size, mask).values


# -- Hausdorff ----------------------------------------------------------------------------------


def test_hausdorff_is_in_world_units_with_anisotropic_voxels():
    truth = np.zeros((5, 5), np.uint8)
    truth[0, 0:2] = 1
    test = np.zeros((5, 5), np.uint8)
    test[0, 1] = test[2, 1] = 1
    # Voxels are 4 units tall and 1 wide. Predicted (2, 1) is 2 rows = 8 units below the
    # truth; true (0, 0) is 1 column = 1 unit beside the prediction; the rest overlap.
    s = binary(truth, test, Coordinate(4, 1))
    assert s["fg__hausdorff"] == pytest.approx(8.0)
    # Transposed, the 2 rows become 2 columns (2 units) and the 1 column 1 row (4 units):
    # the voxel size is what counts, not the voxel count.
    s = binary(truth.T, test.T, Coordinate(4, 1))
    assert s["fg__hausdorff"] == pytest.approx(4.0)
    # Diagonal offsets combine both axes: (2 rows, 3 columns) -> sqrt(8**2 + 3**2).
    far = np.zeros((5, 5), np.uint8)
    far[2, 3] = 1
    corner = np.zeros((5, 5), np.uint8)
    corner[0, 0] = 1
    assert binary(corner, far, Coordinate(4, 1))["fg__hausdorff"] == pytest.approx(math.sqrt(73))


def test_hausdorff_95_ignores_a_few_stray_voxels():
    truth = np.zeros((4, 30), np.uint8)
    truth[0, :20] = 1
    test = truth.copy()
    test[3, 29] = 1  # one stray voxel among 21 predicted: 20/21 > 95 % lie on the truth
    s = binary(truth, test)
    assert s["fg__hausdorff"] == pytest.approx(math.hypot(3, 10))  # to truth voxel (0, 19)
    assert s["fg__hausdorff_95"] == 0.0
    # With 2 stray voxels among 22, 2/22 > 5 %: the 95 % distance reaches a stray voxel.
    test[3, 28] = 1
    s = binary(truth, test)
    assert s["fg__hausdorff_95"] == pytest.approx(math.hypot(3, 9))
    assert s["fg__hausdorff"] == pytest.approx(math.hypot(3, 10))


def test_hausdorff_of_empty_masks_and_its_direction():
    empty = np.zeros((5, 5), np.uint8)
    dot = empty.copy()
    dot[2, 2] = 1
    assert binary(empty, empty)["fg__hausdorff"] == 0.0
    diagonal = math.hypot(5 * 4, 5 * 1)  # the crop's extent in world units
    for truth, test in ((dot, empty), (empty, dot)):
        s = binary(truth, test, Coordinate(4, 1))
        assert s["fg__hausdorff"] == pytest.approx(diagonal)
        assert s["fg__hausdorff_95"] == pytest.approx(diagonal)
    # Worse than the worst real prediction in the crop: a dot in the far corner.
    corner = empty.copy()
    corner[0, 0] = 1
    assert binary(dot, corner, Coordinate(4, 1))["fg__hausdorff"] < diagonal
    score = BinarySegmentationEvaluator(4.0, 1.0, ["fg"]).score
    assert not score.higher_is_better("fg__hausdorff")
    assert score.bounds("fg__hausdorff") == (0.0, None)
    assert score.bounds("fg__mean_false_distance_clipped") == (0.0, 4.0)


def test_hausdorff_counts_known_voxels_only():
    truth = np.zeros((4, 8), np.uint8)
    truth[1, 1] = 1
    test = truth.copy()
    test[1, 6] = 1
    mask = np.ones_like(truth)
    mask[:, 5:] = 0  # the stray prediction is where labels are unknown
    assert binary(truth, test)["fg__hausdorff"] == 5.0
    assert binary(truth, test, mask=mask)["fg__hausdorff"] == 0.0


# -- connected components ---------------------------------------------------------------------


def test_connected_components_label_face_connected_objects_per_channel():
    prediction = np.full((2, 4, 6), -1.0, np.float32)
    prediction[0, 0:2, 0:2] = 0.8  # object A
    prediction[0, 2, 2] = 0.8  # touches A at a corner only: its own object
    prediction[0, 3, 4:6] = 0.1  # above 0 only
    prediction[1, 1:3, 1:5] = 0.8
    post = ConnectedComponentsPostProcessor(thresholds=(0.0, 0.5))
    at_zero, at_half = post.enumerate_parameters()
    labels = post.process(prediction, at_zero)
    assert labels.dtype == np.uint64 and labels.shape == prediction.shape
    np.testing.assert_array_equal(
        labels[0],
        [[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 2, 0, 0, 0], [0, 0, 0, 0, 3, 3]],
    )
    assert set(np.unique(labels[1])) == {0, 1}  # each channel labelled on its own
    assert labels[0].max() == 3 and post.process(prediction, at_half)[0].max() == 2
    # One channel gives one label image without the channel axis (one napari Labels layer).
    assert post.process(prediction[:1], at_zero).shape == (4, 6)


def test_connected_components_drop_objects_below_min_size():
    prediction = np.full((1, 3, 7), -1.0, np.float32)
    prediction[0, 0, 0] = 1.0  # 1 voxel
    prediction[0, 0:2, 2:4] = 1.0  # 4 voxels
    prediction[0, :, 6] = 1.0  # 3 voxels
    post = ConnectedComponentsPostProcessor(thresholds=(0.0,), min_size=3)
    (parameters,) = post.enumerate_parameters()
    assert parameters == ConnectedComponentsPostProcessorParameters(
        id=0, threshold=0.0, min_size=3
    )
    labels = post.process(prediction, parameters)
    assert labels[0, 0] == 0
    assert set(labels[0:2, 2:4].ravel()) == {1} and set(labels[:, 6]) == {2}
    with pytest.raises(ValueError, match="min_size.*at least 1"):
        ConnectedComponentsPostProcessor(min_size=0)
    with pytest.raises(TypeError, match="ConnectedComponentsPostProcessorParameters"):
        post.process(prediction, ThresholdPostProcessorParameters(id=0, threshold=0.0))


# -- binary and instance scores of distance tasks -------------------------------------------


def two_touching_objects() -> np.ndarray:
    """One row: background, object 1 (5 voxels), object 2 (5 voxels), background."""
    gt = np.zeros((1, 12), np.uint8)
    gt[0, 1:6] = 1
    gt[0, 6:11] = 2
    return gt


def test_distance_task_scores_masks_and_instances_by_hand():
    config = DistanceTaskConfig(
        name="d", channels=["cell"], clip_distance=10, tol_distance=1, scale_factor=5
    )
    task = config.task_type(config)
    gt = two_touching_objects()
    # An ideal prediction: tanh(d / 5) of the distances -1, 1, 2, 3, 2, 1, 1, 2, 3, 2, 1, -1.
    prediction = task.predictor.create_target(gt, V2)
    by_threshold = {p.threshold: p for p in task.parameters}

    at_zero = task.post_processor.process(prediction, by_threshold[0.0])
    np.testing.assert_array_equal(at_zero, [[0] + [1] * 10 + [0]])  # touching: merged
    s = task.evaluator.evaluate(at_zero, gt, V2).values
    assert s["cell__dice"] == 1 and s["cell__voi"] == 0 and s["cell__hausdorff"] == 0
    # Both halves in one object: 1 bit of merge; each has IoU 5/10, not above 0.5.
    assert s["cell__voi_merge"] == pytest.approx(1) and s["cell__voi_split"] == 0
    assert s["cell__instance_voi"] == pytest.approx(1)
    assert (s["cell__object_precision"], s["cell__object_recall"], s["cell__object_f1"]) == (
        0, 0, 0
    )
    # Ordered pairs of distinct voxels with one label: 40 in the truth, 90 predicted, 40 both.
    assert s["cell__adapted_rand_error"] == pytest.approx(1 - 2 * 40 / (40 + 90))

    # tanh(d / 5) > 0.25 keeps distances >= 2: columns 2-4 and 7-9, two objects.
    at_quarter = task.post_processor.process(prediction, by_threshold[0.25])
    np.testing.assert_array_equal(at_quarter, [[0, 0, 1, 1, 1, 0, 0, 2, 2, 2, 0, 0]])
    s = task.evaluator.evaluate(at_quarter, gt, V2).values
    assert s["cell__dice"] == pytest.approx(2 * 6 / (2 * 6 + 4))
    assert s["cell__recall"] == pytest.approx(0.6) and s["cell__precision"] == 1
    assert s["cell__hausdorff"] == 1.0 and s["cell__hausdorff_95"] == 1.0
    # Each object has IoU 3/5 with its prediction: all found.
    assert (s["cell__object_precision"], s["cell__object_recall"], s["cell__object_f1"]) == (
        1, 1, 1
    )
    # Each object: 2 of 5 voxels predicted background, 3 in its own object -> split
    # 0.5 * H(0.4, 0.6) per object; predicted background holds 2 + 2 voxels of the two
    # objects (4 of 10 voxels): merge 0.4 * 1 bit.
    h = -(0.4 * math.log2(0.4) + 0.6 * math.log2(0.6))
    assert s["cell__voi_split"] == pytest.approx(h)
    assert s["cell__voi_merge"] == pytest.approx(0.4)
    assert s["cell__instance_voi"] == pytest.approx(h + 0.4)
    # Pairs: 40 in the truth, 4*3 + 3*2 + 3*2 = 24 predicted, 2 + 6 + 2 + 6 = 16 in both.
    assert s["cell__adapted_rand_error"] == pytest.approx(0.5)


def test_instance_scores_of_a_distance_task_name_every_criterion():
    evaluator = BinaryAndInstanceEvaluator(4.0, 1.0, ["a", "b"])
    score = evaluator.score
    assert "a__voi" in score.criteria and "b__instance_voi" in score.criteria
    assert "a__object_f1" in score.criteria and "b__hausdorff" in score.criteria
    assert len(score.criteria) == len(set(score.criteria)) == 2 * 21
    assert not score.higher_is_better("a__instance_voi")
    assert score.higher_is_better("b__object_recall")
    assert score.bounds("a__adapted_rand_error") == (0.0, 1.0)


def test_touching_ground_truth_objects_count_separately():
    gt = two_touching_objects()
    evaluator = BinaryAndInstanceEvaluator(4.0, 1.0, ["cell"])
    split = (gt != 0).astype(np.uint64)  # one predicted object over both
    split[0, 6:11] = 7
    assert evaluator.evaluate(split, gt, V2).values["cell__object_f1"] == 1
    merged = (gt != 0).astype(np.uint64)
    assert evaluator.evaluate(merged, gt, V2).values["cell__object_f1"] == 0
    # A binary mask cannot tell objects apart by id: its connected components are objects.
    mask = np.zeros((1, 12), np.uint8)
    mask[0, 1:4] = mask[0, 7:11] = 1
    two = mask.astype(np.uint64)
    two[0, 7:11] = 2
    values = evaluator.evaluate(two, mask, V2).values
    assert values["cell__object_f1"] == 1 and values["cell__instance_voi"] == 0


def test_class_image_objects_are_connected_components_per_class():
    gt = np.zeros((6, 6), np.uint8)
    gt[0:2, 0:2] = gt[4:6, 4:6] = 1  # two objects of class a
    gt[0:2, 4:6] = 2  # one of class b
    prediction = np.stack([(gt == 1) * np.uint64(1), (gt == 2) * np.uint64(1)])
    prediction[0, 4:6, 4:6] = 2
    values = BinaryAndInstanceEvaluator(4.0, 1.0, ["a", "b"]).evaluate(prediction, gt, V2)
    assert values["a__object_recall"] == 1 and values["b__object_recall"] == 1
    assert values["a__voi_merge"] == 0 and values["a__dice"] == 1


# -- mutex watershed ----------------------------------------------------------------------------

NEAREST = [(1, 0), (0, 1)]


def blobs_affinities(border: float, long_range: tuple[int, int] | None = None) -> np.ndarray:
    """Affinities of a 6 x 8 crop holding blobs A (columns 0-3) and B (columns 4-7): 0.9
    within each blob, ``border`` between columns 3 and 4, and, for ``long_range`` (0, k),
    0.05 across the border and 0.9 elsewhere."""
    affinities = np.full((3 if long_range else 2, 6, 8), 0.9, np.float32)
    affinities[1, :, 3] = border
    if long_range:
        k = long_range[1]
        affinities[2, :, 4 - k : 4] = 0.05  # edges (c, c + k) with c < 4 <= c + k
    return affinities


def mws(affinities, offsets, bias=0.5):
    post = MutexWatershedPostProcessor(offsets)
    parameters = next(p for p in post.enumerate_parameters() if p.bias == bias)
    return post.process(affinities, parameters)


def assert_two_blobs(labels: np.ndarray, split: int = 4) -> None:
    """Columns before ``split`` form one object, those from it on another."""
    a, b = np.unique(labels[:, :split]), np.unique(labels[:, split:])
    assert len(a) == len(b) == 1 and 0 not in (a[0], b[0]) and a[0] != b[0]
    assert set(np.unique(labels)) == {1, 2}  # consecutive ids


def test_mutex_watershed_splits_at_low_affinities_and_keeps_a_blob_whole():
    labels = mws(blobs_affinities(border=0.1), NEAREST)
    assert labels.dtype == np.uint64 and labels.shape == (6, 8)
    assert_two_blobs(labels)
    one = mws(blobs_affinities(border=0.9), NEAREST)
    np.testing.assert_array_equal(one, 1)
    # The bias decides: a border of 0.6 joins at bias 0.5 and splits at bias 0.7.
    assert mws(blobs_affinities(border=0.6), NEAREST).max() == 1
    assert mws(blobs_affinities(border=0.6), NEAREST, bias=0.7).max() == 2
    np.testing.assert_array_equal(labels, mws(blobs_affinities(border=0.1), NEAREST))


def test_mutex_watershed_long_range_edges_repel_a_blurred_border():
    blurred = blobs_affinities(border=0.6, long_range=(0, 3))
    # The one-step edges alone join the blobs; the long edges across the border keep
    # them apart.
    assert mws(blurred[:2], NEAREST).max() == 1
    assert_two_blobs(mws(blurred, [*NEAREST, (0, 3)]))


def test_mutex_watershed_long_range_edges_never_attract():
    affinities = np.full((3, 4, 7), 0.9, np.float32)
    affinities[1, :, 2:4] = 0.05  # column 3 is background between two blobs
    affinities[0, :, 3] = 0.05
    affinities[2] = 0.9  # (0, 2) edges, also across the gap: the network is wrong there
    labels = mws(affinities, [*NEAREST, (0, 2)])
    np.testing.assert_array_equal(labels[:, 3], 0)
    assert_two_blobs(np.delete(labels, 3, axis=1), split=3)


def test_mutex_watershed_drops_background_noise_and_empty_input():
    affinities = np.full((2, 6, 6), 0.05, np.float32)
    affinities[1, 2, 2] = 0.6  # one noisy edge joins (2, 2) and (2, 3)
    # Joined, but their mean affinity (0.6 + 0.05 * 3) / 4 is far below the bias.
    assert not mws(affinities, NEAREST).any()
    assert not mws(np.zeros((2, 6, 6), np.float32), NEAREST).any()


def test_mutex_watershed_ignores_extra_channels_and_checks_its_input():
    affinities = blobs_affinities(border=0.1)
    with_lsds = np.concatenate([affinities, np.random.default_rng(0).random((6, 6, 8))])
    np.testing.assert_array_equal(mws(with_lsds, NEAREST), mws(affinities, NEAREST))
    with pytest.raises(ValueError, match="2 affinity channels"):
        mws(affinities[:1], NEAREST)
    with pytest.raises(ValueError, match="nearest-neighbour"):
        MutexWatershedPostProcessor([(0, 3)])
    with pytest.raises(ValueError, match="same length"):
        MutexWatershedPostProcessor([(0, 1), (1, 0, 0)])
    with pytest.raises(TypeError, match="MutexWatershedPostProcessorParameters"):
        MutexWatershedPostProcessor(NEAREST).process(affinities, ThresholdPostProcessorParameters(
            id=0, threshold=0.5
        ))


def test_affinities_task_uses_mutex_watershed_unless_configured_otherwise():
    config = AffinitiesTaskConfig(name="a", neighborhood=[[1, 0], [0, 1], [0, 4]])
    task = config.task_type(config)
    assert isinstance(task.post_processor, MutexWatershedPostProcessor)
    assert task.post_processor.offsets == [(1, 0), (0, 1), (0, 4)]
    fallback = AffinitiesTaskConfig(name="a", neighborhood=[[0, 1]], agglomeration="watershed")
    assert isinstance(fallback.task_type(fallback).post_processor, WatershedPostProcessor)
    with pytest.raises(ConfigError, match="agglomeration"):
        AffinitiesTaskConfig(name="a", neighborhood=[[0, 1]], agglomeration="waterz")


# -- every post-processor's parameter sets ------------------------------------------------------

TASK_CONFIGS = [
    DistanceTaskConfig(name="d", channels=["a"], clip_distance=5, tol_distance=1),
    InnerDistanceTaskConfig(name="i", channels=["a"], clip_distance=5, tol_distance=1),
    HotDistanceTaskConfig(name="h", channels=["a"], clip_distance=5, tol_distance=1),
    AffinitiesTaskConfig(name="m", neighborhood=[[1, 0], [0, 1]]),
    AffinitiesTaskConfig(name="w", neighborhood=[[1, 0], [0, 1]], agglomeration="watershed"),
    OneHotTaskConfig(name="o", classes=["bg", "fg"]),
    DummyTaskConfig(name="x"),
]


@pytest.mark.parametrize("config", TASK_CONFIGS, ids=lambda c: c.name)
def test_parameter_sets_have_stable_ids_and_readable_names(config):
    task = config.task_type(config)
    parameters = list(task.parameters)
    assert [p.id for p in parameters] == list(range(len(parameters)))
    assert parameters == list(config.task_type(config).parameters)  # the same every time
    names = [str(p) for p in parameters]
    assert len(set(names)) == len(names)
    for p, name in zip(parameters, names):
        fields = p.parameter_names
        assert name == (", ".join(f"{f}={getattr(p, f)}" for f in fields) or "id=0")


def test_sweeps_span_the_prediction_ranges():
    thresholds = {
        type(c).__name__: [p.threshold for p in c.task_type(c).parameters]
        for c in TASK_CONFIGS[:3]
    }
    assert min(thresholds["DistanceTaskConfig"]) == -0.5
    assert max(thresholds["DistanceTaskConfig"]) == 0.5
    assert thresholds["HotDistanceTaskConfig"] == pytest.approx([0.1 * i for i in range(1, 10)])
    biases = [p.bias for p in TASK_CONFIGS[3].task_type(TASK_CONFIGS[3]).parameters]
    assert biases == pytest.approx([0.1 * i for i in range(1, 10)])
    assert str(MutexWatershedPostProcessorParameters(id=4, bias=0.5)) == "bias=0.5"


# -- empty truth, empty prediction, nothing known -------------------------------------------

EVALUATORS = {
    "binary": lambda: BinarySegmentationEvaluator(4.0, 1.0, ["fg"]),
    "binary_and_instance": lambda: BinaryAndInstanceEvaluator(4.0, 1.0, ["fg"]),
    "instance": InstanceEvaluator,
    "one_hot": lambda: OneHotEvaluator(["bg", "fg"]),
    "dummy": DummyEvaluator,
}
#: Documented NaNs: a class absent from both images has no dice or IoU.
ABSENT_CLASS = {
    "one_hot": {"fg__dice", "fg__iou"},
    "dummy": {"foreground__dice", "foreground__iou"},
}


def square() -> np.ndarray:
    image = np.zeros((4, 4), np.uint8)
    image[1:3, 1:3] = 1
    return image


@pytest.mark.parametrize("name", EVALUATORS)
@pytest.mark.parametrize("truth_on, test_on", [(False, False), (True, False), (False, True)])
def test_every_evaluator_defines_empty_truth_and_prediction(name, truth_on, test_on):
    evaluator = EVALUATORS[name]()
    truth, test = square() * truth_on, square() * test_on
    values = evaluator.evaluate(test, truth, V2).values
    assert set(values) == set(evaluator.score.criteria)
    nan = {k for k, v in values.items() if math.isnan(v)}
    assert nan == (ABSENT_CLASS.get(name, set()) if not (truth_on or test_on) else set())


@pytest.mark.parametrize("name", EVALUATORS)
def test_every_evaluator_gives_nan_when_nothing_is_known(name):
    evaluator = EVALUATORS[name]()
    values = evaluator.evaluate(square(), square(), V2, mask=np.zeros((4, 4), np.uint8)).values
    assert set(values) == set(evaluator.score.criteria)
    assert all(math.isnan(v) for v in values.values())


@pytest.mark.parametrize(
    "truth_on, test_on, expected",
    [
        (False, False, dict(hausdorff=0, hausdorff_95=0, instance_voi=0, adapted_rand_error=0,
                            object_precision=1, object_recall=1, object_f1=1)),
        (True, False, dict(hausdorff=math.sqrt(32), object_precision=1, object_recall=0,
                           object_f1=0, voi_merge=0, voi_split=0, instance_voi=0)),
        (False, True, dict(hausdorff=math.sqrt(32), object_precision=0, object_recall=1,
                           object_f1=0, instance_voi=0, adapted_rand_error=0)),
    ],
)
def test_empty_values_of_the_distance_task_scores(truth_on, test_on, expected):
    truth, test = square() * truth_on, square() * test_on
    values = BinaryAndInstanceEvaluator(4.0, 1.0, ["fg"]).evaluate(test, truth, V2).values
    for criterion, value in expected.items():
        assert values[f"fg__{criterion}"] == pytest.approx(value), criterion
