"""Affinities, one-hot and dummy tasks: targets, weights, losses, post-processing, scores
and configs, on small hand-made label images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from funlib.geometry import Coordinate

from napari_dacapo.experiments.architectures.architecture import Architecture
from napari_dacapo.experiments.configs import ConfigError, load_config, save_config
from napari_dacapo.experiments.tasks import (
    AffinitiesTaskConfig,
    DummyTaskConfig,
    OneHotTaskConfig,
)
from napari_dacapo.experiments.tasks.evaluators import InstanceEvaluator, OneHotEvaluator
from napari_dacapo.experiments.tasks.losses import AffinitiesLoss, CrossEntropyLoss
from napari_dacapo.experiments.tasks.post_processors import (
    ArgmaxPostProcessor,
    WatershedPostProcessor,
)
from napari_dacapo.experiments.tasks.predictors import AffinitiesPredictor, OneHotPredictor

V2 = Coordinate(1, 1)


class TinyArchitecture(Architecture):
    """One same-padded convolution: the smallest real body."""

    def __init__(self, dims: int, features: int = 4) -> None:
        super().__init__()
        conv = {2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[dims]
        self.conv = conv(1, features, kernel_size=3, padding=1)
        self._shape = Coordinate((8,) * dims)

    @property
    def input_shape(self) -> Coordinate:
        return self._shape

    @property
    def num_in_channels(self) -> int:
        return 1

    @property
    def num_out_channels(self) -> int:
        return self.conv.out_channels

    def output_shape_for(self, input_shape: Coordinate) -> Coordinate:
        return Coordinate(input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def affinities(labels, neighborhood, mask=None, **kwargs):
    predictor = AffinitiesPredictor(neighborhood, **kwargs)
    voxel_size = Coordinate((1,) * labels.ndim)
    target = predictor.create_target(labels, voxel_size)
    mask = np.ones(labels.shape, np.uint8) if mask is None else mask
    return predictor, target, predictor.create_weight(labels, target, mask, voxel_size)


# -- affinities ---------------------------------------------------------------------------

LABELS_2D = np.array(
    [
        [1, 1, 2],
        [1, 1, 2],
        [0, 0, 2],
    ]
)


def test_affinities_2d_by_hand():
    predictor, target, weight = affinities(LABELS_2D, [(0, 1), (1, 0), (0, -1)])
    assert predictor.channels == ["aff_0_1", "aff_1_0", "aff_0_-1"]
    assert target.dtype == np.float32 and target.shape == (3, 3, 3)
    # Touching objects 1|2 have affinity 0 across their border; background pairs are 0.
    np.testing.assert_array_equal(target[0], [[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(target[1], [[1, 1, 1], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(target[2], [[0, 1, 0], [0, 1, 0], [0, 0, 0]])
    # Neighbours outside the crop are unknown: zero weight.
    assert not weight[0][:, 2].any() and not weight[1][2].any() and not weight[2][:, 0].any()
    assert (weight[0][:, :2] > 0).all()


def test_affinity_weights_are_class_balanced():
    _, target, weight = affinities(LABELS_2D, [(0, 1)])
    known = weight[0] > 0
    positive, negative = known & (target[0] == 1), known & (target[0] == 0)
    # 2 affine and 4 non-affine known pairs: each class gets half of the total weight.
    assert weight[0][positive].sum() == pytest.approx(weight[0][negative].sum())
    np.testing.assert_allclose(weight[0][positive], 1.5)
    np.testing.assert_allclose(weight[0][negative], 0.75)
    assert weight[0][known].mean() == pytest.approx(1.0)


def test_affinity_weights_clip_rare_classes():
    labels = np.ones((1, 41), int)
    labels[0, 20] = 2  # two non-affine pairs among 40
    _, _, weight = affinities(labels, [(0, 1)], affs_weight_clipmin=0.25)
    # The rare class's fraction 0.05 is raised to 0.25: weight 1 / (2 * 0.25) = 2, not 10.
    assert weight.max() == pytest.approx(2.0)


def test_affinity_weights_need_both_voxels_in_mask():
    mask = np.ones((3, 3), np.uint8)
    mask[0, 1] = 0
    _, _, weight = affinities(LABELS_2D, [(0, 1), (1, 0)], mask=mask)
    # (0,0)->(0,1): neighbour masked; (0,1)->(0,2): voxel masked.
    assert weight[0, 0, 0] == 0 and weight[0, 0, 1] == 0 and weight[0, 1, 0] > 0
    assert weight[1, 0, 1] == 0 and weight[1, 0, 0] > 0


def test_affinities_3d_touching_objects():
    labels = np.zeros((4, 4, 6), int)
    labels[:, :, 1:3] = 7
    labels[:, :, 3:5] = 9
    _, target, weight = affinities(labels, [(1, 0, 0), (0, 1, 0), (0, 0, 1)])
    along_x = target[2]
    np.testing.assert_array_equal(along_x[0, 0], [0, 1, 0, 1, 0, 0])
    assert (target[0][:3, :, 1:5] == 1).all() and not target[0][:, :, [0, 5]].any()
    assert not weight[0][3].any() and not weight[2][..., 5].any()


def test_background_as_object():
    _, target, _ = affinities(LABELS_2D, [(0, 1)], background_as_object=True)
    assert target[0, 2, 0] == 1  # background (2,0) and (2,1) now belong together
    assert target[0, 2, 1] == 0  # background and object 2 do not


def test_grow_boundary_separates_touching_objects_only():
    labels = np.array([[0, 1, 1, 1, 2, 2, 2, 0]])
    _, target, _ = affinities(labels, [(0, 1)])
    np.testing.assert_array_equal(target[0], [[0, 1, 1, 0, 1, 1, 0, 0]])
    _, grown, _ = affinities(labels, [(0, 1)], grow_boundary_iterations=1)
    # The voxels on either side of the 1|2 border become background; the outer borders stay.
    np.testing.assert_array_equal(grown[0], [[0, 1, 0, 0, 0, 1, 0, 0]])


def test_affinities_refuse_labels_of_other_dimensionality():
    with pytest.raises(ValueError, match="one entry per spatial axis"):
        affinities(LABELS_2D, [(0, 0, 1)])


@pytest.mark.parametrize("dims, num_lsds", [(2, 6), (3, 10)])
def test_lsds_shape_range_and_determinism(dims, num_lsds):
    labels = np.zeros((12,) * dims, int)
    labels[(slice(2, 10),) * dims] = 3
    labels[(slice(2, 5),) * dims] = 5
    neighborhood = np.eye(dims, dtype=int).tolist()
    predictor, target, weight = affinities(labels, neighborhood, lsds=True, num_lsd_voxels=2)
    assert predictor.channels[dims:] == [f"lsd_{i}" for i in range(num_lsds)]
    lsds = target[dims:]
    assert lsds.shape == (num_lsds,) + labels.shape and lsds.dtype == np.float32
    assert lsds.min() >= 0 and lsds.max() <= 1
    assert not lsds[:, labels == 0].any()  # background has no descriptors
    np.testing.assert_array_equal(target, predictor.create_target(labels, Coordinate((1,) * dims)))
    # Every LSD channel has the same foreground/background balanced weight.
    np.testing.assert_array_equal(weight[dims:], np.broadcast_to(weight[dims], lsds.shape))
    fg = labels != 0
    assert weight[dims][fg].sum() == pytest.approx(weight[dims][~fg].sum())


def test_lsds_describe_shape():
    labels = np.zeros((24, 24), int)
    labels[4:20, 2:22] = 1  # a box cut nowhere by the crop
    _, target, _ = affinities(labels, [(0, 1)], lsds=True, num_lsd_voxels=3)
    offset_x, size = target[1 + 1], target[1 + 5]
    # Left edge: the object's mass lies to the right (offset above 0.5); centre: balanced.
    assert offset_x[12, 2] > 0.6 and offset_x[12, 21] < 0.4
    assert offset_x[12, 11:13].mean() == pytest.approx(0.5, abs=0.02)
    # Pearson correlation of an axis-aligned box is 0 -> 0.5; the corner holds less mass.
    assert target[1 + 4][12, 12] == pytest.approx(0.5, abs=0.01)
    assert size[4, 2] < size[12, 12]


def test_lsds_downsampled_keep_shape():
    labels = np.zeros((10, 9, 11), int)
    labels[2:8, 1:7, 3:11] = 4
    full = affinities(labels, [(0, 0, 1)], lsds=True, num_lsd_voxels=2)[1]
    coarse = affinities(labels, [(0, 0, 1)], lsds=True, num_lsd_voxels=2, downsample_lsds=2)[1]
    assert coarse.shape == full.shape
    assert np.abs(coarse[1:] - full[1:]).mean() < 0.1


# -- losses -------------------------------------------------------------------------------


def _loss_inputs(channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    prediction = torch.randn(2, channels, 5, 5, generator=g, requires_grad=True)
    target = (torch.rand(2, channels, 5, 5, generator=g) > 0.5).float()
    weight = torch.rand(2, channels, 5, 5, generator=g)
    return prediction, target, weight


def test_affinities_loss_is_weighted_bce():
    prediction, target, weight = _loss_inputs()
    loss = AffinitiesLoss(3).compute(prediction, target, weight)
    reference = F.binary_cross_entropy_with_logits(
        prediction, target, weight=weight, reduction="sum"
    ) / weight.sum()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)


def test_affinities_loss_with_lsds():
    prediction, target, weight = _loss_inputs(channels=5)
    loss = AffinitiesLoss(2, lsds_to_affs_weight_ratio=0.5).compute(prediction, target, weight)
    p, t, w = prediction[:, :2], target[:, :2], weight[:, :2]
    affs = F.binary_cross_entropy_with_logits(p, t, weight=w, reduction="sum") / w.sum()
    p, t, w = prediction[:, 2:], target[:, 2:], weight[:, 2:]
    lsds = (w * (torch.sigmoid(p) - t) ** 2).sum() / w.sum()
    assert loss.item() == pytest.approx((affs + 0.5 * lsds).item(), rel=1e-5)


@pytest.mark.parametrize(
    "loss, channels", [(AffinitiesLoss(3), 3), (AffinitiesLoss(1), 3), (CrossEntropyLoss(), 3)]
)
def test_losses_honour_weights(loss, channels):
    prediction, target, weight = _loss_inputs(channels)
    if isinstance(loss, CrossEntropyLoss):
        target = target[:, :1] * 2
        weight = weight[:, :1]
    weight[0, ..., 2, 2] = 0
    before = loss.compute(prediction, target, weight)
    before.backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert (prediction.grad[0, ..., 2, 2] == 0).all()
    changed = prediction.detach().clone()
    changed[0, :, 2, 2] += 100.0
    assert loss.compute(changed, target, weight).item() == pytest.approx(before.item())
    # All-zero weights: exactly 0, with finite (zero) gradients.
    prediction.grad = None
    zero = loss.compute(prediction, target, torch.zeros_like(weight))
    zero.backward()
    assert zero.item() == 0.0 and torch.isfinite(prediction.grad).all()


def test_cross_entropy_matches_torch():
    prediction, _, _ = _loss_inputs(channels=4)
    classes = torch.randint(0, 4, (2, 5, 5), generator=torch.Generator().manual_seed(1))
    target = classes[:, None].float()
    plain = CrossEntropyLoss().compute(prediction, target, torch.ones_like(target))
    assert plain.item() == pytest.approx(F.cross_entropy(prediction, classes).item(), rel=1e-5)
    weight = torch.rand_like(target)
    weighted = CrossEntropyLoss().compute(prediction, target, weight)
    per_voxel = F.cross_entropy(prediction, classes, reduction="none")
    expected = (per_voxel * weight[:, 0]).sum() / weight.sum()
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-5)


def test_cross_entropy_refuses_one_hot_targets():
    prediction, target, _ = _loss_inputs(channels=3)
    with pytest.raises(ValueError, match=r"\(B, 1, \*spatial\)"):
        CrossEntropyLoss().compute(prediction, target)


# -- one-hot ------------------------------------------------------------------------------


def test_one_hot_target_and_balanced_weights():
    predictor = OneHotPredictor(["bg", "membrane", "mito"])
    gt = np.array([[0, 0, 0, 1], [0, 0, 2, 2]], np.uint16)
    target = predictor.create_target(gt, V2)
    assert target.shape == (1, 2, 4) and target.dtype == np.float32
    np.testing.assert_array_equal(target[0], gt)
    mask = np.ones_like(gt)
    mask[1, 0] = 0  # known: 4 bg, 1 membrane, 2 mito
    weight = predictor.create_weight(gt, target, mask, V2)
    assert weight.shape == (1, 2, 4) and weight[0, 1, 0] == 0
    np.testing.assert_allclose(weight[0][(gt == 0) & (mask == 1)], 7 / (3 * 4))
    np.testing.assert_allclose(weight[0][gt == 1], 7 / 3)
    np.testing.assert_allclose(weight[0][gt == 2], 7 / (3 * 2))
    assert weight[0][mask == 1].mean() == pytest.approx(1.0)


def test_one_hot_refuses_unknown_class_ids():
    predictor = OneHotPredictor(["bg", "fg"])
    # The panel shows the message as it is: no internal class name in front.
    with pytest.raises(ValueError, match=r"^The labels hold the value 2.*class indices "
                       r"0..1: 0 is the first class \(bg\).*add the missing classes"):
        predictor.create_target(np.array([[0, 1, 2]]), V2)


@pytest.mark.parametrize("kernel_size", [None, 3])
def test_one_hot_model_softmax_in_eval_only(kernel_size):
    config = OneHotTaskConfig(name="semantic", classes=["a", "b", "c"], kernel_size=kernel_size)
    model = config.task_type(config).create_model(TinyArchitecture(dims=3))
    x = torch.randn(2, 1, 8, 8, 8)
    assert model.num_out_channels == 3 and tuple(model.output_shape) == (8, 8, 8)
    model.eval()
    with torch.no_grad():
        probabilities = model(x)
    assert probabilities.shape == (2, 3, 8, 8, 8)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(2, 8, 8, 8))
    model.train()
    assert not torch.allclose(model(x).sum(dim=1), torch.ones(2, 8, 8, 8))


def test_affinities_model_outputs_affinities_and_lsds():
    config = AffinitiesTaskConfig(
        name="affs", neighborhood=[[0, 1], [1, 0]], lsds=True, num_lsd_voxels=2
    )
    model = config.task_type(config).create_model(TinyArchitecture(dims=2))
    assert model.num_out_channels == 2 + 6
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 8, 8))
    assert out.min() >= 0 and out.max() <= 1


# -- post-processing ----------------------------------------------------------------------


def test_argmax():
    scores = np.zeros((3, 2, 2), np.float32)
    scores[0, 0, 0] = scores[2, 0, 1] = scores[1, 1, :] = 1
    labels = next(iter(ArgmaxPostProcessor().enumerate_parameters()))
    out = ArgmaxPostProcessor().process(scores, labels)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 2], [1, 1]])
    many = np.zeros((300, 2, 2), np.float32)
    many[299] = 1
    assert ArgmaxPostProcessor().process(many, labels).dtype == np.uint16


def _two_blobs_and_a_line():
    gt = np.zeros((10, 10), np.uint64)
    gt[1:7, 1:4] = 1
    gt[1:7, 4:8] = 2  # touches 1 along a border
    gt[8, 1:9] = 3  # one voxel thick: no voxel has all edges inside, so no seed
    return gt


def test_watershed_separates_touching_objects():
    gt = _two_blobs_and_a_line()
    neighborhood = [(1, 0), (0, 1)]
    _, target, _ = affinities(gt, neighborhood)
    soft = 0.1 + 0.8 * target  # predictions are never exactly 0 or 1
    post = WatershedPostProcessor(neighborhood)
    parameters = list(post.enumerate_parameters())
    assert [p.bias for p in parameters] == pytest.approx([0.1 * i for i in range(1, 10)])
    assert len({p.id for p in parameters}) == len(parameters)
    at_half = next(p for p in parameters if p.bias == 0.5)
    labels = post.process(soft, at_half)
    assert labels.dtype == np.uint64 and labels.shape == gt.shape
    np.testing.assert_array_equal(labels == 0, gt == 0)
    for object_id in (1, 2, 3):
        assert len(np.unique(labels[gt == object_id])) == 1
    assert len(np.unique(labels[gt != 0])) == 3
    np.testing.assert_array_equal(labels, post.process(soft, at_half))
    assert InstanceEvaluator().evaluate(labels, gt, V2).values["voi"] == 0.0


def test_watershed_needs_nearest_neighbour_offsets():
    with pytest.raises(ValueError, match="nearest-neighbour"):
        WatershedPostProcessor([(0, 3), (3, 0)])


# -- evaluators ---------------------------------------------------------------------------

GT = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])


def scores(evaluator, prediction, gt, mask=None):
    return evaluator.evaluate(np.asarray(prediction), np.asarray(gt), V2, mask).values


def test_instance_scores_of_a_split():
    split = scores(InstanceEvaluator(), [[1, 2, 3, 3], [1, 2, 3, 3]], GT)
    # Object 1 (half the voxels) is cut in two halves: 0.5 * 1 bit of split, no merge.
    assert split["voi_split"] == pytest.approx(0.5) and split["voi_merge"] == 0
    assert split["voi"] == pytest.approx(0.5)
    # Ordered pairs of distinct voxels sharing a label: 16 in both images at once, 16 in
    # the prediction alone, 24 in the truth alone.
    assert split["adapted_rand_error"] == pytest.approx(1 - 2 * 16 / (16 + 24))
    # Halves have IoU 0.5, not above it: one match among 3 predicted and 2 true objects.
    objects = (split["object_precision"], split["object_recall"], split["object_f1"])
    assert objects == pytest.approx((1 / 3, 0.5, 0.4))


def test_instance_scores_of_a_merge_and_of_perfection():
    merge = scores(InstanceEvaluator(), np.ones_like(GT), GT)
    assert merge["voi_merge"] == pytest.approx(1.0) and merge["voi_split"] == 0
    assert merge["object_f1"] == 0
    perfect = scores(InstanceEvaluator(), GT * 10, GT)  # ids need not agree
    assert perfect == {
        "voi_split": 0, "voi_merge": 0, "voi": 0, "adapted_rand_error": 0,
        "object_precision": 1, "object_recall": 1, "object_f1": 1,
    }  # fmt: skip


def objects(values):
    return values["object_precision"], values["object_recall"], values["object_f1"]


def test_instance_scores_of_empty_images():
    evaluator = InstanceEvaluator()
    empty = np.zeros_like(GT)
    both = scores(evaluator, empty, empty)
    assert both["voi"] == 0 and both["adapted_rand_error"] == 0 and both["object_f1"] == 1
    no_truth = scores(evaluator, GT, empty)
    assert objects(no_truth) == (0, 1, 0)
    assert no_truth["voi"] == 0  # nothing to split or merge: background is ignored
    no_prediction = scores(evaluator, empty, GT)
    assert objects(no_prediction) == (1, 0, 0)
    assert no_prediction["voi_merge"] == pytest.approx(1.0)
    nothing_known = scores(evaluator, GT, GT, mask=empty)
    assert all(math.isnan(v) for v in nothing_known.values())
    assert set(nothing_known) == set(evaluator.score.criteria)


def test_instance_scores_respect_mask():
    mask = np.array([[1, 0, 1, 1], [1, 0, 1, 1]])
    masked = scores(InstanceEvaluator(), [[1, 2, 3, 3], [1, 2, 3, 3]], GT, mask)
    assert masked["voi"] == 0 and masked["object_f1"] == 1


def test_instance_directions():
    evaluation = InstanceEvaluator().score
    assert not evaluation.higher_is_better("voi") and evaluation.higher_is_better("object_f1")
    assert evaluation.bounds("adapted_rand_error") == (0.0, 1.0)


def test_one_hot_scores_by_hand():
    evaluator = OneHotEvaluator(["a", "b", "c"])
    values = scores(evaluator, [[0, 1, 1, 1]], [[0, 0, 1, 1]])
    assert values["a__dice"] == pytest.approx(2 / 3) and values["a__iou"] == pytest.approx(1 / 2)
    assert values["b__dice"] == pytest.approx(4 / 5) and values["b__iou"] == pytest.approx(2 / 3)
    assert math.isnan(values["c__dice"]) and math.isnan(values["c__iou"])  # absent in both
    assert values["mean_iou"] == pytest.approx(7 / 12)
    assert values["accuracy"] == pytest.approx(3 / 4)
    masked = scores(evaluator, [[0, 1, 1, 1]], [[0, 0, 1, 1]], mask=[[1, 0, 1, 1]])
    assert masked["mean_iou"] == 1 and masked["accuracy"] == 1
    assert all(math.isnan(v) for v in scores(evaluator, [[0]], [[0]], mask=[[0]]).values())
    score = evaluator.score
    assert all(score.higher_is_better(c) and score.bounds(c) == (0, 1) for c in score.criteria)


def test_one_hot_scores_of_an_absent_prediction():
    values = scores(OneHotEvaluator(["bg", "fg"]), [[0, 0, 0]], [[0, 1, 1]])
    assert values["fg__dice"] == 0 and values["fg__iou"] == 0
    assert values["bg__iou"] == pytest.approx(1 / 3)


# -- dummy task ---------------------------------------------------------------------------


def test_dummy_task_learns_the_foreground_and_scores_it():
    config = DummyTaskConfig(name="dummy", embedding_dims=2, detection_threshold=0.5)
    task = config.task_type(config)
    gt = _two_blobs_and_a_line()
    mask = np.ones(gt.shape, np.uint8)
    mask[0] = 0
    target = task.predictor.create_target(gt, V2)
    weight = task.predictor.create_weight(gt, target, mask, V2)
    assert task.predictor.channels == ["e0", "e1"] and target.shape == (2, 10, 10)
    np.testing.assert_array_equal(target[1], gt != 0)
    assert not weight[:, 0].any() and (weight[:, 1:] == 1).all()
    batch = torch.from_numpy(target[None])
    loss = task.loss.compute(batch + 1, batch, torch.from_numpy(weight[None]))
    assert loss.item() == pytest.approx(1.0)
    (parameters,) = task.parameters
    segmentation = task.post_processor.process(target * 0.9, parameters)
    values = task.evaluator.evaluate(segmentation, gt, V2, mask).values
    assert values["foreground__dice"] == 1 and values["accuracy"] == 1
    wrong = task.evaluator.evaluate(1 - segmentation, gt, V2, mask).values
    assert wrong["foreground__dice"] == 0


# -- configs ------------------------------------------------------------------------------

CONFIGS = [
    AffinitiesTaskConfig(
        name="affs",
        neighborhood=[[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -4]],
        lsds=True,
        grow_boundary_iterations=1,
    ),
    OneHotTaskConfig(name="semantic", classes=["bg", "membrane", "mito"], kernel_size=3),
    DummyTaskConfig(name="dummy", embedding_dims=3, detection_threshold=0.2),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_configs_round_trip(config, tmp_path):
    loaded = load_config(save_config(config, tmp_path / "task.yaml"))
    assert loaded == config and type(loaded) is type(config)
    assert all(help for help in type(config).field_help().values())
    task = loaded.task_type(loaded)
    assert task.predictor.embedding_dims >= 1 and list(task.parameters)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: AffinitiesTaskConfig(name="x", neighborhood=[]), "is empty"),
        (lambda: AffinitiesTaskConfig(name="x", neighborhood=[[0, 1], [1, 0, 0]]), "mixes"),
        (lambda: AffinitiesTaskConfig(name="x", neighborhood=[[0, 1], [0, 0]]), "zero offset"),
        (lambda: AffinitiesTaskConfig(name="x", neighborhood=[[0, 1], [0, 1]]), "repeats"),
        (lambda: AffinitiesTaskConfig(name="x", neighborhood=[[0, 3]]), "one-step"),
        (
            lambda: AffinitiesTaskConfig(
                name="x", neighborhood=[[0, 1]], affs_weight_clipmin=0.9, affs_weight_clipmax=0.1
            ),
            "clipmin",
        ),
        (lambda: AffinitiesTaskConfig(name="x", neighborhood=[[1]], lsds=True), "lsds"),
        (lambda: OneHotTaskConfig(name="x", classes=["only"]), "at least two"),
        (lambda: OneHotTaskConfig(name="x", classes=["a", "a"]), "unique"),
        (lambda: OneHotTaskConfig(name="x", classes=["a", "b"], kernel_size=2), "odd"),
        (lambda: DummyTaskConfig(name="x", embedding_dims=0), "at least 1"),
    ],
)
def test_configs_refuse_bad_values(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_the_first_criterion_is_one_that_picks_sensible_post_processing():
    """Panels default to a task's first criterion: neither half of VOI (voi_split is best
    for everything merged into one object) nor the background's dice."""
    assert InstanceEvaluator().score.criteria[0] == "voi"
    assert OneHotEvaluator(["background", "a", "b"]).score.criteria[0] == "mean_iou"
