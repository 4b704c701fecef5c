"""The distance family: targets, weights, losses, threshold sweep, evaluator, tasks, configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from funlib.geometry import Coordinate

from napari_dacapo.experiments.architectures.architecture import Architecture
from napari_dacapo.experiments.configs import ConfigError, load_config, save_config
from napari_dacapo.experiments.tasks import (
    DistanceTask,
    DistanceTaskConfig,
    HotDistanceTask,
    HotDistanceTaskConfig,
    InnerDistanceTask,
    InnerDistanceTaskConfig,
)
from napari_dacapo.experiments.tasks.evaluators import BinarySegmentationEvaluator
from napari_dacapo.experiments.tasks.evaluators.binary_segmentation_evaluator import CRITERIA
from napari_dacapo.experiments.tasks.evaluators.instance_evaluator import INSTANCE_CRITERIA
from napari_dacapo.experiments.tasks.losses import HotDistanceLoss, MSELoss
from napari_dacapo.experiments.tasks.post_processors import (
    ThresholdPostProcessor,
    ThresholdPostProcessorParameters,
)
from napari_dacapo.experiments.tasks.post_processors.threshold_post_processor import (
    DISTANCE_THRESHOLDS,
    PROBABILITY_THRESHOLDS,
)
from napari_dacapo.experiments.tasks.predictors import (
    DistancePredictor,
    HotDistancePredictor,
    InnerDistancePredictor,
)

VS2 = Coordinate(1, 1)
VS3 = Coordinate(1, 1, 1)


def distances(target: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """World-unit distances back from a tanh target (for readable expectations)."""
    return np.arctanh(target.astype(np.float64)) * scale


def square(shape=(9, 9), lo=2, hi=7, value=1) -> np.ndarray:
    gt = np.zeros(shape, np.uint8)
    gt[lo:hi, lo:hi] = value
    return gt


# -- targets ----------------------------------------------------------------------------------


def test_target_sign_and_tanh_scaling_2d():
    predictor = DistancePredictor(["fg"], scale_factor=2.0, mask_distances=False,
                                  clip_distance=10.0)
    target = predictor.create_target(square(), VS2)
    assert target.shape == (1, 9, 9) and target.dtype == np.float32
    d = distances(target[0], 2.0)
    # Centre of the 5x5 square: 3 voxels to the nearest background voxel.
    assert target[0, 4, 4] == pytest.approx(math.tanh(3 / 2), rel=1e-5)
    assert d[2, 4] == pytest.approx(1) and d[1, 4] == pytest.approx(-1)  # across the edge
    assert d[0, 4] == pytest.approx(-2)
    assert (target[0][square() == 1] > 0).all() and (target[0][square() == 0] < 0).all()


def test_target_clipped_at_clip_distance():
    gt = np.zeros((1, 40), np.uint8)
    gt[0, :20] = 1
    target = DistancePredictor(["fg"], 1.0, False, clip_distance=2.5).create_target(gt, VS2)
    assert target.max() == pytest.approx(math.tanh(2.5))
    assert target.min() == pytest.approx(-math.tanh(2.5))


def test_target_respects_anisotropic_voxel_size_3d():
    gt = np.zeros((5, 6, 6), np.uint8)
    gt[2:, :, :] = 1  # boundary between z=1 and z=2
    voxel_size = Coordinate(4, 1, 1)
    target = DistancePredictor(["fg"], 10.0, False, 100.0).create_target(gt, voxel_size)
    d = distances(target[0], 10.0)
    np.testing.assert_allclose(d[:, 3, 3], [-8, -4, 4, 8, 12], rtol=1e-4)


def test_touching_instances_stay_apart():
    labels = np.zeros((7, 12), np.uint32)
    labels[1:6, 1:6] = 1
    labels[1:6, 6:11] = 2  # touches object 1 along a column
    predictor = DistancePredictor(["cell"], 1.0, False, 10.0)
    d = distances(predictor.create_target(labels, VS2)[0])
    # The voxels on either side of the contact are one voxel from *their* boundary ...
    assert d[3, 5] == pytest.approx(1) and d[3, 6] == pytest.approx(1)
    # ... whereas merged into one object they would lie deep inside.
    merged = distances(predictor.create_target(labels != 0, VS2)[0])
    assert merged[3, 5] == pytest.approx(3)


def test_class_image_becomes_one_channel_per_class_in_order():
    gt = np.zeros((8, 8), np.uint8)
    gt[1:4, 1:4] = 1
    gt[5:8, 5:8] = 2
    predictor = DistancePredictor(["a", "b"], 1.0, False, 10.0)
    target = predictor.create_target(gt, VS2)
    assert target.shape == (2, 8, 8)
    np.testing.assert_array_equal(target[0] > 0, gt == 1)
    np.testing.assert_array_equal(target[1] > 0, gt == 2)
    # The same classes as (C, *spatial) binary channels give the same target.
    stacked = np.stack([gt == 1, gt == 2]).astype(np.uint8)
    np.testing.assert_array_equal(predictor.create_target(stacked, VS2), target)


def test_ground_truth_errors_name_the_fix():
    predictor = DistancePredictor(["a", "b"], 1.0, False, 10.0)
    with pytest.raises(ValueError, match="class ids 1..2"):
        predictor.create_target(np.full((4, 4), 3, np.uint8), VS2)
    with pytest.raises(ValueError, match="has 3 channels"):
        predictor.create_target(np.zeros((3, 4, 4), np.uint8), VS2)
    with pytest.raises(TypeError, match="astype"):
        predictor.create_target(np.zeros((4, 4), np.float32), VS2)
    with pytest.raises(ValueError, match="negative"):
        predictor.create_target(np.full((4, 4), -1, np.int32), VS2)
    with pytest.raises(ValueError, match="channels"):
        DistancePredictor([], 1.0, False, 10.0)


@pytest.mark.parametrize("value, sign", [(0, -1), (5, 1)])
def test_sample_without_boundary_saturates_at_clip(value, sign):
    gt = np.full((6, 6, 6), value, np.uint16)
    target = DistancePredictor(["fg"], 2.0, False, 3.0).create_target(gt, VS3)
    np.testing.assert_allclose(target, sign * math.tanh(1.5), rtol=1e-6)


def test_inner_distance_target_is_zero_outside_and_per_instance():
    labels = np.zeros((7, 12), np.uint32)
    labels[1:6, 1:6] = 1
    labels[1:6, 6:11] = 2
    target = InnerDistancePredictor(["cell"], 1.0, clip_distance=2.0).create_target(labels, VS2)
    assert (target[0][labels == 0] == 0).all()
    assert target[0, 3, 5] == pytest.approx(math.tanh(1))  # next to the other instance
    assert target[0, 3, 3] == pytest.approx(math.tanh(2))  # 3 deep, clipped to 2


def test_hot_distance_target_channels_and_activation():
    gt = np.zeros((8, 8), np.uint8)
    gt[1:4, 1:4] = 1
    gt[5:8, 5:8] = 2
    hot = HotDistancePredictor(["a", "b"], 1.0, mask_distances=False, clip_distance=10.0)
    assert hot.channels == ["a_hot", "b_hot", "a_distance", "b_distance"]
    assert hot.embedding_dims == 4
    target = hot.create_target(gt, VS2)
    np.testing.assert_array_equal(target[:2], np.stack([gt == 1, gt == 2]).astype(np.float32))
    distance = DistancePredictor(["a", "b"], 1.0, False, 10.0).create_target(gt, VS2)
    np.testing.assert_array_equal(target[2:], distance)
    x = torch.randn(1, 4, 3, 3)
    y = hot.eval_activation()(x)
    torch.testing.assert_close(y[:, :2], torch.sigmoid(x[:, :2]))
    torch.testing.assert_close(y[:, 2:], x[:, 2:])
    assert DistancePredictor(["a"], 1.0, False, 1.0).eval_activation() is None


# -- weights ------------------------------------------------------------------------------------


def test_weights_balance_foreground_and_background_and_respect_mask():
    gt = square((10, 10), 0, 4)  # 16 of 100 voxels
    mask = np.ones((10, 10), np.uint8)
    mask[:, 8:] = 0  # 20 unknown voxels, all background
    predictor = DistancePredictor(["fg"], 1.0, False, 10.0)
    weight = predictor.create_weight(gt, predictor.create_target(gt, VS2), mask, VS2)[0]
    assert weight.dtype == np.float32
    assert (weight[mask == 0] == 0).all()
    fg, bg = weight[(gt == 1)], weight[(gt == 0) & (mask == 1)]
    assert fg == pytest.approx(np.full(16, 80 / (2 * 16)))
    assert bg == pytest.approx(np.full(64, 80 / (2 * 64)))
    assert fg.sum() == pytest.approx(bg.sum())


def test_weights_clip_rare_class_fraction():
    gt = np.zeros((10, 10), np.uint8)
    gt[0, 0] = 1  # 1 % foreground, clipped to clipmin = 0.05
    predictor = DistancePredictor(["fg"], 1.0, False, 10.0, clipmin=0.05, clipmax=0.95)
    weight = predictor.create_weight(gt, predictor.create_target(gt, VS2), None, VS2)[0]
    assert weight[0, 0] == pytest.approx(1 / (2 * 0.05))
    assert weight[5, 5] == pytest.approx(1 / (2 * 0.95))


@pytest.mark.parametrize("clip", [None, (0.05, 0.95), (0.3, 0.7)])
def test_binary_class_balance_equals_the_general_one_to_the_bit(clip):
    from napari_dacapo.experiments.tasks.predictors.class_balance import (
        balanced_binary_weights,
        balanced_weights,
    )

    rng = np.random.default_rng(3)
    region = (slice(2, 18), slice(1, 15))
    for fg_share, known_share in [(0.3, 0.8), (0.02, 1.0), (0.0, 0.6), (1.0, 0.6), (0.5, 0.0)]:
        foreground = rng.random((20, 17)) < fg_share
        known = rng.random((20, 17)) < known_share
        for r in (None, region):
            general = balanced_weights(foreground.view(np.uint8), known, 2, clip, r)
            fast = balanced_binary_weights(foreground, known, clip, r)
            assert fast.dtype == general.dtype == np.float32
            np.testing.assert_array_equal(fast, general)


def test_weights_all_zero_when_nothing_is_known():
    gt = square()
    predictor = DistancePredictor(["fg"], 1.0, True, 3.0)
    weight = predictor.create_weight(gt, predictor.create_target(gt, VS2), np.zeros_like(gt), VS2)
    assert not weight.any() and np.isfinite(weight).all()


def test_mask_distances_zeroes_voxels_nearer_to_the_unknown_than_to_their_boundary():
    gt = np.zeros((21, 20), np.uint8)
    gt[:, :10] = 1  # object: columns 0..9
    mask = np.ones_like(gt)
    mask[:, 15:] = 0  # columns 15.. unknown
    clip = 3.0
    masked = DistancePredictor(["fg"], 1.0, True, clip)
    plain = DistancePredictor(["fg"], 1.0, False, clip)
    target = masked.create_target(gt, VS2)
    w = masked.create_weight(gt, target, mask, VS2)[0]
    w_plain = plain.create_weight(gt, target, mask, VS2)[0]
    row = 10  # 10 voxels from the top and bottom crop edges
    # Column 12: 3 from the object, 3 from the unknown columns: its clipped distance is safe.
    assert w[row, 12] > 0
    # Column 13: 4 from the object (clipped to 3) but 2 from the unknown: it could be closer.
    assert w[row, 13] == 0 and w[row, 14] == 0 and w_plain[row, 13] > 0
    # The crop edge is unknown too: column 1 is 9 deep (clipped 3) but 2 from the left edge.
    assert w[row, 1] == 0 and w[row, 5] > 0
    # The top row is 1 from the edge above; only voxels 1 from the boundary stay known.
    assert w[0, 9] > 0 and w[0, 10] > 0 and w[0, 8] == 0
    assert (w[mask == 0] == 0).all() and (w_plain[mask == 1] > 0).all()


def test_hot_distance_weights_mask_only_the_distance_half():
    gt = np.zeros((21, 20), np.uint8)
    gt[:, :10] = 1
    hot = HotDistancePredictor(["fg"], 1.0, mask_distances=True, clip_distance=3.0)
    weight = hot.create_weight(gt, hot.create_target(gt, VS2), None, VS2)
    assert weight.shape == (2, 21, 20)
    assert (weight[0] > 0).all()  # a voxel's class is known wherever its label is
    assert weight[1, 10, 1] == 0 and weight[1, 10, 9] > 0


def test_inner_distance_weights_are_balanced_and_masked():
    gt = square((10, 10), 0, 4)
    mask = np.ones_like(gt)
    mask[9] = 0
    weight = InnerDistancePredictor(["fg"], 1.0, 5.0).create_weight(gt, None, mask, VS2)[0]
    assert (weight[9] == 0).all()
    assert weight[gt == 1].sum() == pytest.approx(weight[(gt == 0) & (mask == 1)].sum())


# -- losses -------------------------------------------------------------------------------------


def test_mse_loss_is_the_weighted_mean():
    prediction = torch.tensor([[[0.0, 1.0, 2.0]]], requires_grad=True)
    target = torch.zeros(1, 1, 3)
    weight = torch.tensor([[[1.0, 3.0, 0.0]]])
    loss = MSELoss().compute(prediction, target, weight)
    assert loss.item() == pytest.approx((0 + 3 * 1) / 4)
    loss.backward()
    assert prediction.grad[0, 0, 1] > 0 and prediction.grad[0, 0, 2] == 0
    assert MSELoss().compute(prediction, target).item() == pytest.approx(5 / 3)


@pytest.mark.parametrize("loss, channels", [(MSELoss(), 2), (HotDistanceLoss(), 4)])
def test_losses_with_all_zero_weight_give_zero_without_nan(loss, channels):
    prediction = torch.randn(2, channels, 4, 4, requires_grad=True)
    target = torch.rand(2, channels, 4, 4)
    value = loss.compute(prediction, target, torch.zeros_like(target))
    value.backward()
    assert value.item() == 0
    assert torch.isfinite(prediction.grad).all() and not prediction.grad.any()


def test_hot_distance_loss_adds_weighted_bce_and_mse():
    torch.manual_seed(0)
    prediction = torch.randn(2, 4, 5, 5, requires_grad=True)
    target = torch.cat([torch.randint(0, 2, (2, 2, 5, 5)).float(), torch.rand(2, 2, 5, 5)], 1)
    weight = torch.rand(2, 4, 5, 5)
    loss = HotDistanceLoss().compute(prediction, target, weight)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        prediction[:, :2], target[:, :2], reduction="none"
    )
    expected = (bce * weight[:, :2]).sum() / weight[:, :2].sum() + (
        ((prediction[:, 2:] - target[:, 2:]) ** 2) * weight[:, 2:]
    ).sum() / weight[:, 2:].sum()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert prediction.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="even"):
        HotDistanceLoss().compute(prediction[:, :3], target[:, :3])
    with pytest.raises(ValueError, match="differ"):
        MSELoss().compute(prediction, target[:, :2])


# -- post-processing ----------------------------------------------------------------------------


def test_threshold_sweep_is_around_zero_in_float_space():
    post = DistanceTask(DistanceTaskConfig(name="d", channels=["fg"], clip_distance=5,
                                           tol_distance=1)).post_processor
    parameters = list(post.enumerate_parameters())
    thresholds = [p.threshold for p in parameters]
    assert thresholds == list(DISTANCE_THRESHOLDS)
    assert 0.0 in thresholds and all(-1 < t < 1 for t in thresholds)
    assert [p.id for p in parameters] == list(range(len(parameters)))
    # The distance task labels objects: one channel gives one label image (*spatial).
    prediction = np.array([[[-0.9, -0.3, 0.1, 0.6]]], np.float32)
    at_zero = next(p for p in parameters if p.threshold == 0.0)
    out = post.process(prediction, at_zero)
    assert out.dtype == np.uint64 and out.shape == prediction.shape[1:]
    np.testing.assert_array_equal(out, [[0, 0, 1, 1]])
    assert np.count_nonzero(post.process(prediction, parameters[0])) == 3  # threshold -0.5
    masks = ThresholdPostProcessor(DISTANCE_THRESHOLDS).process(prediction, at_zero)
    assert masks.dtype == np.uint8 and masks.shape == prediction.shape


def test_threshold_only_the_hot_channels():
    post = ThresholdPostProcessor(PROBABILITY_THRESHOLDS, num_channels=2)
    assert 0.5 in [p.threshold for p in post.enumerate_parameters()]
    prediction = np.random.default_rng(0).random((4, 3, 3)).astype(np.float32)
    out = post.process(prediction, ThresholdPostProcessorParameters(id=0, threshold=0.5))
    np.testing.assert_array_equal(out, (prediction[:2] > 0.5).astype(np.uint8))
    with pytest.raises(ValueError, match="at least 2 channels"):
        post.process(prediction[:1], ThresholdPostProcessorParameters(id=0, threshold=0.5))
    with pytest.raises(ValueError, match="finite"):
        ThresholdPostProcessor([])


# -- evaluation ---------------------------------------------------------------------------------


def evaluate(truth, test, mask=None, channels=("fg",), tol=1.0, clip=4.0):
    evaluator = BinarySegmentationEvaluator(clip, tol, list(channels))
    return evaluator.evaluate(np.asarray(test, np.uint8), np.asarray(truth), VS2, mask)


def test_evaluator_values_on_a_hand_computed_example():
    truth = np.zeros((10, 10), np.uint8)
    truth[0, 0:4] = 1
    test = np.zeros((1, 10, 10), np.uint8)
    test[0, 0, 2:6] = 1  # 2 hits, 2 false positives, 2 misses, 94 true negatives
    s = evaluate(truth, test)
    assert s["fg__dice"] == pytest.approx(0.5) and s["fg__f1_score"] == pytest.approx(0.5)
    assert s["fg__jaccard"] == pytest.approx(1 / 3)
    assert s["fg__precision"] == pytest.approx(0.5) and s["fg__recall"] == pytest.approx(0.5)
    assert s["fg__false_positive_rate"] == pytest.approx(2 / 96)
    assert s["fg__false_negative_rate"] == pytest.approx(0.5)
    # Within 1 voxel: voxel 4 is next to the truth, voxel 5 is 2 away; likewise for misses.
    assert s["fg__precision_with_tolerance"] == pytest.approx(0.75)
    assert s["fg__recall_with_tolerance"] == pytest.approx(0.75)
    assert s["fg__f1_score_with_tolerance"] == pytest.approx(0.75)
    # Distances of the 8 voxels to the other mask: 0,0,1,2 and 2,1,0,0.
    assert s["fg__mean_false_distance_clipped"] == pytest.approx(6 / 8)
    p = np.array([[94, 2], [2, 2]]) / 100  # joint distribution (truth, test)
    h = lambda q: -(q[q > 0] * np.log2(q[q > 0])).sum()  # noqa: E731
    assert s["fg__voi"] == pytest.approx(2 * h(p) - h(p.sum(0)) - h(p.sum(1)))


def test_evaluator_ignores_voxels_outside_the_mask():
    truth = np.zeros((6, 6), np.uint8)
    truth[:, :3] = 1
    test = np.zeros((6, 6), np.uint8)
    test[:, :2] = 1
    mask = np.ones((6, 6), np.uint8)
    mask[:, 2] = 0  # the only disagreement is unknown
    s = evaluate(truth, test[None], mask)
    assert s["fg__dice"] == 1 and s["fg__voi"] == 0 and s["fg__false_positive_rate"] == 0


@pytest.mark.parametrize(
    "truth_on, test_on, expected",
    [
        (False, False, dict(dice=1, jaccard=1, precision=1, recall=1, false_negative_rate=0,
                            false_positive_rate=0, mean_false_distance_clipped=0, voi=0)),
        (True, False, dict(dice=0, jaccard=0, precision=1, recall=0, false_negative_rate=1,
                           f1_score_with_tolerance=0, mean_false_distance_clipped=4, voi=1)),
        (False, True, dict(dice=0, jaccard=0, precision=0, recall=1, false_positive_rate=0.5,
                           precision_with_tolerance=0, mean_false_distance_clipped=4, voi=1)),
    ],
)
def test_evaluator_defines_empty_masks(truth_on, test_on, expected):
    half = np.zeros((4, 4), np.uint8)
    half[:2] = 1
    s = evaluate(half * truth_on, (half * test_on)[None])
    assert not any(math.isnan(v) for v in s.values.values())
    for criterion, value in expected.items():
        assert s[f"fg__{criterion}"] == pytest.approx(value), criterion


def test_evaluator_score_names_every_criterion_with_direction_and_bounds():
    evaluator = BinarySegmentationEvaluator(7.0, 1.0, ["a", "b"])
    score = evaluator.score
    assert score.criteria == [f"{c}__{k}" for c in ("a", "b") for k in CRITERIA]
    assert score.values == {}
    assert score.higher_is_better("a__dice") and not score.higher_is_better("b__voi")
    assert not score.higher_is_better("a__false_positive_rate")
    assert score.bounds("a__jaccard") == (0.0, 1.0)
    assert score.bounds("a__mean_false_distance_clipped") == (0.0, 7.0)


def test_evaluator_accepts_every_ground_truth_form():
    gt = np.zeros((8, 8), np.uint8)
    gt[1:4, 1:4] = 1
    gt[5:8, 5:8] = 2
    perfect = np.stack([gt == 1, gt == 2])
    for form in (gt, perfect.astype(np.uint8)):
        s = evaluate(form, perfect, channels=("a", "b"))
        assert s["a__dice"] == 1 and s["b__dice"] == 1
    with pytest.raises(ValueError, match="prediction has shape"):
        evaluate(gt, perfect[:1], channels=("a", "b"))


@pytest.mark.parametrize("config_class", [DistanceTaskConfig, HotDistanceTaskConfig,
                                          InnerDistanceTaskConfig])
def test_thresholding_the_target_recovers_the_ground_truth(config_class):
    labels = np.zeros((12, 12, 12), np.uint16)
    labels[2:6, 2:10, 2:10] = 1
    labels[6:10, 2:10, 2:10] = 2  # touching instances
    config = config_class(name="t", channels=["cell"], clip_distance=4, tol_distance=1,
                          scale_factor=2)
    task = config.task_type(config)
    target = task.predictor.create_target(labels, VS3)
    # The sweep value that separates an ideal prediction: 0 for signed distances, 0.5 for
    # the hot probabilities, the smallest for inner distances (0 outside objects).
    middle = {DistanceTask: 0.0, HotDistanceTask: 0.5, InnerDistanceTask: 0.05}[type(task)]
    threshold = next(p for p in task.parameters if p.threshold == middle)
    segmentation = task.post_processor.process(target, threshold)
    scores = task.evaluator.evaluate(segmentation, labels, VS3)
    assert scores["cell__dice"] == 1 and scores["cell__voi"] == 0


# -- tasks and configs --------------------------------------------------------------------------


class TinyArchitecture(Architecture):
    """One 3x3 convolution without padding: the output is 2 voxels smaller per axis."""

    def __init__(self, dims: int = 2, out_channels: int = 3) -> None:
        super().__init__()
        self._dims = dims
        conv = torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d
        self.conv = conv(1, out_channels, 3)

    @property
    def input_shape(self) -> Coordinate:
        return Coordinate((8,) * self._dims)

    @property
    def num_in_channels(self) -> int:
        return 1

    @property
    def num_out_channels(self) -> int:
        return self.conv.out_channels

    def output_shape_for(self, input_shape: Coordinate) -> Coordinate:
        return Coordinate(s - 2 for s in input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize(
    "config, task_class, heads",
    [
        (DistanceTaskConfig(name="d", channels=["a", "b"], clip_distance=5, tol_distance=1,
                            mask_distances=True), DistanceTask, 2),
        (InnerDistanceTaskConfig(name="i", channels=["a"], clip_distance=5, tol_distance=1),
         InnerDistanceTask, 1),
        (HotDistanceTaskConfig(name="h", channels=["a", "b", "c"], clip_distance=5,
                               tol_distance=1), HotDistanceTask, 6),
    ],
)
def test_task_from_config_round_trip_and_model(tmp_path, config, task_class, heads):
    loaded = load_config(save_config(config, tmp_path / "task.yaml"))
    assert loaded == config and type(loaded) is type(config)
    task = config.task_type(config)
    assert isinstance(task, task_class)
    assert task.predictor.embedding_dims == len(task.predictor.channels) == heads
    criteria = task.evaluation_scores.criteria
    per_channel = len(CRITERIA) + (0 if task_class is HotDistanceTask else len(INSTANCE_CRITERIA))
    assert len(criteria) == len(config.channels) * per_channel
    for dims in (2, 3):
        model = task.create_model(TinyArchitecture(dims))
        assert model.num_out_channels == heads
        assert model.output_shape == Coordinate((6,) * dims)
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(1, 1, *(8,) * dims))
        assert out.shape == (1, heads, *(6,) * dims)
        if task_class is HotDistanceTask:
            assert ((out[:, :3] > 0) & (out[:, :3] < 1)).all()  # probabilities in eval mode


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(channels=[]), "channels"),
        (dict(channels=["a", "a"]), "channels"),
        (dict(channels=["a", " "]), "channels"),
        (dict(clip_distance=0), "clip_distance"),
        (dict(tol_distance=-1), "tol_distance"),
        (dict(scale_factor=math.inf), "scale_factor"),
        (dict(clipmin=0.9, clipmax=0.5), "clipmin"),
    ],
)
def test_config_refuses_bad_values_naming_field_and_fix(changes, field):
    base = dict(name="d", channels=["a"], clip_distance=5.0, tol_distance=1.0)
    with pytest.raises(ConfigError, match=field) as info:
        DistanceTaskConfig(**{**base, **changes})
    assert "." in str(info.value).split(field, 1)[1]  # a problem sentence, then the fix


def test_every_config_field_has_help():
    for cls in (DistanceTaskConfig, InnerDistanceTaskConfig, HotDistanceTaskConfig):
        assert all(cls.field_help().values()), cls
