"""The default trainer: device and precision choice, augments, sampling, batches, the
prefetch thread, the training step and snapshots. Tiny shapes, CPU only."""

from __future__ import annotations

import math
import multiprocessing
import threading
import time

import numpy as np
import pytest
import torch
from funlib.geometry import Coordinate

from napari_dacapo.experiments.architectures.architecture import Architecture
from napari_dacapo.experiments.configs import ConfigError, from_dict, to_dict
from napari_dacapo.experiments.datasplits.datasets.arrays.array import SourceArray
from napari_dacapo.experiments.datasplits.datasets.dataset import Dataset
from napari_dacapo.experiments.device import (
    choose_device,
    choose_precision,
    cpu_has_fast_bf16,
    describe_device,
    device_plan_for,
)
from napari_dacapo.experiments.tasks.losses.loss import Loss
from napari_dacapo.experiments.tasks.predictors.predictor import Predictor
from napari_dacapo.experiments.tasks.task import Task
from napari_dacapo.experiments.trainers import (
    BatchProvider,
    DefaultTrainer,
    DefaultTrainerConfig,
    ElasticAugmentConfig,
    GammaAugmentConfig,
    IntensityAugmentConfig,
    IntensityScaleShiftAugmentConfig,
    NoiseAugmentConfig,
    SimpleAugmentConfig,
)
from napari_dacapo.experiments.trainers import default_trainer, snapshot
from napari_dacapo.experiments.trainers.augments import AugmentPipeline, SampleArray, crop_center
from napari_dacapo.experiments.datasplits.datasets.arrays.array import raw_as_float32
from napari_dacapo.experiments.trainers.prefetch import Prefetcher
from napari_dacapo.experiments.trainers.process_prefetch import can_fork

CPU = torch.device("cpu")


# -- fakes: a one-layer network, a foreground task and an in-memory dataset ------------------


class ConvNet(Architecture):
    """A valid 3x3 convolution (the output is 2 voxels smaller) and a ReLU."""

    def __init__(self, input_shape: tuple[int, ...], in_channels: int = 1) -> None:
        super().__init__()
        self._input_shape = Coordinate(input_shape)
        self._in_channels = in_channels
        conv = {2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[len(input_shape)]
        self.layers = torch.nn.Sequential(conv(in_channels, 4, 3), torch.nn.ReLU())

    @property
    def input_shape(self) -> Coordinate:
        return self._input_shape

    @property
    def num_in_channels(self) -> int:
        return self._in_channels

    @property
    def num_out_channels(self) -> int:
        return 4

    def output_shape_for(self, input_shape: Coordinate) -> Coordinate:
        return Coordinate(s - 2 for s in input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ForegroundPredictor(Predictor):
    """Target: labels > 0; weight: the mask."""

    channels = ["foreground"]

    def eval_activation(self) -> torch.nn.Module:
        return torch.nn.Sigmoid()

    def create_target(self, gt: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        return (gt > 0).astype(np.float32)[None]

    def create_weight(self, gt, target, mask, voxel_size, region=None) -> np.ndarray:
        return mask.astype(np.float32)[None]


class WeightedBCE(Loss):
    def compute(self, prediction, target, weight=None):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            prediction, target, reduction="none"
        )
        return (loss * weight).sum() / weight.sum().clamp(min=1)


class ForegroundTask(Task):
    def __init__(self) -> None:
        self.predictor = ForegroundPredictor()
        self.loss = WeightedBCE()


class FakeDataset(Dataset):
    def __init__(self, raw, gt, mask=None, voxel_size=None, name="data", weight=1.0,
                 sample_points=None, gt_offset=None, channels=False) -> None:
        dims = gt.ndim
        voxel_size = voxel_size or (1,) * dims
        raw_axes = (["c^"] if channels else []) + ["z", "y", "x"][-dims:]
        self.name = name
        self.raw = SourceArray(raw, voxel_size, axis_names=raw_axes)
        self.gt = SourceArray(gt, voxel_size, offset=gt_offset)
        self.mask = SourceArray(mask, voxel_size, offset=gt_offset) if mask is not None else None
        self.weight = weight
        self.sample_points = sample_points


def blobs(shape, seed=0):
    """Raw with bright squares on a dark noisy background, and their labels."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, dtype=np.uint32)
    for label in range(1, 9):
        corner = [rng.integers(0, s - 6) for s in shape]
        gt[tuple(slice(c, c + 5) for c in corner)] = label
    raw = ((gt > 0) * 0.6 + 0.2 + rng.normal(0, 0.05, shape)).astype(np.float32)
    return raw, gt


def setup_trainer(dataset, input_shape, **config):
    config.setdefault("seed", 0)
    config.setdefault("min_masked", 0.0)
    trainer = DefaultTrainer(DefaultTrainerConfig(name="trainer", **config))
    task = ForegroundTask()
    model = task.create_model(ConvNet(input_shape, in_channels=dataset.raw.num_channels or 1))
    trainer.build_batch_provider([dataset], model, task)
    return trainer, model, task


# -- device and precision ---------------------------------------------------------------------


def test_choose_device_honours_cpu_and_refuses_unknown_or_missing_devices():
    assert choose_device("cpu") == CPU
    assert choose_device(None).type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="not a device name"):
        choose_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available.*'cpu'"):
            choose_device("cuda:1")


def test_a_device_given_for_one_call_is_checked_like_the_configs_own():
    # device= of train_run, validate and predict overrides the trainer config's choice.
    config = DefaultTrainerConfig(name="t", device="cpu")
    assert device_plan_for(config, "cpu")[0] == CPU
    with pytest.raises(ValueError, match="'banana' is not a device name. Use 'cpu'"):
        device_plan_for(config, "banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            device_plan_for(config, "cuda")


def test_choose_precision_on_cpu():
    fp32 = choose_precision(CPU, "fp32")
    assert fp32.autocast_dtype is None and not fp32.channels_last
    assert describe_device(CPU, fp32) == "cpu (fp32)"
    bf16 = choose_precision(CPU, "bf16")
    assert bf16.autocast_dtype is torch.bfloat16 and bf16.channels_last
    assert describe_device(CPU, bf16) == "cpu (bf16 autocast, channels-last)"
    assert bf16.memory_format(3) is torch.channels_last_3d
    assert bf16.memory_format(2) is torch.channels_last
    assert not choose_precision(CPU, "bf16", channels_last="off").channels_last
    auto = choose_precision(CPU)
    assert auto.autocast_dtype is (torch.bfloat16 if cpu_has_fast_bf16() else None)
    with pytest.raises(ValueError, match="fp16 precision needs a CUDA GPU"):
        choose_precision(CPU, "fp16")


# -- augments ---------------------------------------------------------------------------------


def sample_of(gt: np.ndarray, voxel_size=None) -> dict[str, SampleArray]:
    """A sample whose raw encodes the labels, so alignment can be checked exactly."""
    voxel_size = Coordinate(voxel_size or (1,) * gt.ndim)
    return {
        "raw": SampleArray(gt[None].astype(np.float32), voxel_size, True),
        "gt": SampleArray(gt, voxel_size, False),
        "mask": SampleArray(np.ones_like(gt, dtype=np.uint8), voxel_size, False),
    }


def run_augments(configs, sample, output_shape, seed=0):
    voxel_size = sample["raw"].voxel_size
    pipeline = AugmentPipeline(
        [c.augment() for c in configs], Coordinate(output_shape) * voxel_size, voxel_size,
        voxel_size,
    )
    return pipeline(crop_center(sample, pipeline.read_size), np.random.default_rng(seed))


def test_mirror_and_transpose_move_raw_and_labels_together():
    gt = np.arange(64, dtype=np.uint32).reshape(8, 8)
    simple = SimpleAugmentConfig(name="simple")
    changed = 0
    for seed in range(12):
        out = run_augments([simple], sample_of(gt), (8, 8), seed)
        np.testing.assert_array_equal(out["raw"].data[0], out["gt"].data)
        assert sorted(out["gt"].data.ravel()) == list(range(64))
        changed += not np.array_equal(out["gt"].data, gt)
    assert changed > 6
    # Axes of different extent are never swapped, so the shape is kept.
    rect = np.arange(48, dtype=np.uint32).reshape(6, 8)
    for seed in range(5):
        assert run_augments([simple], sample_of(rect), (6, 8), seed)["gt"].data.shape == (6, 8)
    only_x = SimpleAugmentConfig(name="x", mirror_only=[1], mirror_probs=[0, 1],
                                 transpose_probs=[0, 0])
    np.testing.assert_array_equal(run_augments([only_x], sample_of(gt), (8, 8))["gt"].data,
                                  gt[:, ::-1])


@pytest.mark.parametrize("voxel_size", [(1, 1), (2, 1)])
def test_elastic_keeps_labels_and_shape_and_has_no_empty_corners(voxel_size):
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 4, (60, 60)).astype(np.uint64) * 1000
    elastic = ElasticAugmentConfig(
        name="elastic", control_point_spacing=[4], control_point_displacement_sigma=[2.0],
        rotation_interval=(0, 2 * math.pi), subsample=2,
    )
    out = run_augments([elastic], sample_of(gt, voxel_size), (16, 16), seed=3)
    assert out["gt"].data.shape == (16, 16) and out["raw"].data.shape == (1, 16, 16)
    assert out["gt"].data.dtype == np.uint64
    assert set(np.unique(out["gt"].data)) <= set(np.unique(gt))
    assert out["mask"].data.min() == 1  # the context covered every rotated corner
    assert not np.array_equal(out["gt"].data, gt[22:38, 22:38])


def test_elastic_without_displacement_or_rotation_is_a_centred_crop():
    gt = np.arange(30 * 30, dtype=np.uint32).reshape(30, 30)
    still = ElasticAugmentConfig(name="still", control_point_spacing=[5],
                                 control_point_displacement_sigma=[0], rotation_interval=(0, 0))
    out = run_augments([still], sample_of(gt), (10, 10))
    np.testing.assert_array_equal(out["gt"].data, gt[10:20, 10:20])
    np.testing.assert_array_equal(out["raw"].data[0], gt[10:20, 10:20])


def test_gamma_really_changes_values():
    gt = np.zeros((6, 6), dtype=np.uint8)
    sample = sample_of(gt)
    raw = np.linspace(0.1, 0.9, 36, dtype=np.float32).reshape(1, 6, 6)
    sample["raw"] = sample["raw"].with_data(raw)
    out = run_augments([GammaAugmentConfig(name="g", gamma_range=(2.0, 2.0))], sample, (6, 6))
    np.testing.assert_allclose(out["raw"].data, raw**2, rtol=1e-6)
    # Outside [0, 1] the range is kept.
    sample["raw"] = sample["raw"].with_data(raw * 10 - 3)
    out = run_augments([GammaAugmentConfig(name="g", gamma_range=(0.5, 0.5))], sample, (6, 6))
    assert out["raw"].data.min() == pytest.approx(-2) and out["raw"].data.max() == pytest.approx(6)
    assert not np.allclose(out["raw"].data, raw * 10 - 3)


@pytest.mark.parametrize("config", [
    IntensityAugmentConfig(name="i", scale=(0.5, 0.6), shift=(0.1, 0.2)),
    IntensityScaleShiftAugmentConfig(name="s", scale=2.0, shift=-1.0),
    NoiseAugmentConfig(name="n", var=0.05),
    NoiseAugmentConfig(name="sp", mode="s&p", amount=0.3),
])
def test_intensity_augments_change_only_raw(config):
    gt = np.arange(64, dtype=np.uint32).reshape(8, 8) % 5
    sample = sample_of(gt)
    sample["raw"] = sample["raw"].with_data(np.full((1, 8, 8), 0.5, np.float32))
    out = run_augments([config], sample, (8, 8))
    np.testing.assert_array_equal(out["gt"].data, gt)
    np.testing.assert_array_equal(out["mask"].data, 1)
    assert out["raw"].data.dtype == np.float32 and not np.allclose(out["raw"].data, 0.5)


def test_augments_are_reproducible_with_a_seed():
    gt = np.random.default_rng(0).integers(0, 5, (40, 40)).astype(np.uint32)
    configs = [
        ElasticAugmentConfig(name="e", control_point_spacing=[5],
                             control_point_displacement_sigma=[1.5],
                             rotation_interval=(0, math.pi)),
        SimpleAugmentConfig(name="s"),
        IntensityAugmentConfig(name="i", scale=(0.8, 1.2), shift=(-0.1, 0.1), clip=False),
        NoiseAugmentConfig(name="n"),
        GammaAugmentConfig(name="g", gamma_range=(0.7, 1.4)),
    ]
    first, again, other = (run_augments(configs, sample_of(gt), (12, 12), seed)
                           for seed in (7, 7, 8))
    for key in first:
        np.testing.assert_array_equal(first[key].data, again[key].data)
    assert not np.array_equal(first["raw"].data, other["raw"].data)


def test_augmentation_probability_zero_leaves_the_sample_alone():
    gt = np.arange(100, dtype=np.uint32).reshape(10, 10)
    never = GammaAugmentConfig(name="g", gamma_range=(3, 3), augmentation_probability=0)
    out = run_augments([never], sample_of(gt), (10, 10))
    np.testing.assert_array_equal(out["raw"].data[0], gt)


def test_dacapo_trainer_yaml_loads_with_its_augments():
    ignored: list[str] = []
    cfg = from_dict({
        "__type__": "GunpowderTrainerConfig", "name": "dacapo", "num_data_fetchers": 5,
        "snapshot_interval": 100, "min_masked": 0.2,
        "augments": [
            {"__type__": "ElasticAugmentConfig", "name": "e", "control_point_spacing": [10, 10],
             "control_point_displacement_sigma": [2.0, 2.0], "rotation_interval": [0, 1.57],
             "augmentation_probability": 0.5},
            {"__type__": "SimpleAugmentConfig", "p": 0.7},  # DaCapo's augments have no name
            {"__type__": "NoiseAugmentConfig", "name": "n", "kwargs": {"mode": "speckle",
                                                                         "var": 0.02}},
            {"__type__": "GammaAugmentConfig", "name": "g", "gamma_range": [0.5, 1.5]},
        ],
    }, ignored=ignored)
    assert isinstance(cfg, DefaultTrainerConfig) and ignored == ["num_data_fetchers"]
    elastic, simple, noise, _ = cfg.augments
    assert elastic.rotation_interval == (0, 1.57) and elastic.augmentation_probability == 0.5
    assert simple.augmentation_probability == 0.7 and simple.name == "SimpleAugment"
    assert noise.mode == "speckle" and noise.var == 0.02 and noise.kwargs is None
    assert from_dict(to_dict(cfg)) == cfg


def test_bad_augment_and_trainer_values_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="gamma_range.*greater than 0"):
        GammaAugmentConfig(name="g", gamma_range=(0, 1))
    with pytest.raises(ConfigError, match="radians, not degrees"):
        ElasticAugmentConfig(name="e", control_point_spacing=[4],
                             control_point_displacement_sigma=[1], rotation_interval=(0, 360))
    with pytest.raises(ConfigError, match="Swap"):
        IntensityAugmentConfig(name="i", scale=(2, 1), shift=(0, 0))
    with pytest.raises(ConfigError, match="unsupported keys"):
        NoiseAugmentConfig(name="n", kwargs={"sigma": 1})
    with pytest.raises(ConfigError, match="sample_from"):
        DefaultTrainerConfig(name="t", sample_from="everywhere")
    with pytest.raises(ConfigError, match="device"):
        DefaultTrainerConfig(name="t", device="gpu please")


# -- sampling and batches ---------------------------------------------------------------------


def centre_voxels(provider: BatchProvider, count: int):
    """World positions of the middle output voxel of ``count`` samples."""
    for _ in range(count):
        _, _, output_roi = provider.sample()
        yield output_roi.begin + provider.half_output


def test_samples_are_centred_on_sparse_painted_labels():
    gt = np.zeros((300, 300), dtype=np.uint8)
    gt[200:203, 40:44] = 1  # one small stroke in a large image
    raw = np.random.default_rng(0).random((300, 300)).astype(np.float32)
    trainer, _, _ = setup_trainer(FakeDataset(raw, gt), (12, 12))
    for centre in centre_voxels(trainer.provider, 40):
        assert gt[tuple(centre)] == 1


def test_samples_follow_the_mask_and_sample_points():
    gt = np.ones((40, 40), dtype=np.uint8)
    mask = np.zeros_like(gt)
    mask[30:33, 5:8] = 1
    raw = np.zeros((40, 40), np.float32)
    trainer, _, _ = setup_trainer(FakeDataset(raw, gt, mask), (8, 8))
    for centre in centre_voxels(trainer.provider, 20):
        assert mask[tuple(centre)] == 1
    points = [Coordinate(10, 12), Coordinate(20, 25), Coordinate(0, 0)]  # (0, 0): no room
    trainer, _, _ = setup_trainer(FakeDataset(raw, gt, sample_points=points), (8, 8))
    assert {tuple(c) for c in centre_voxels(trainer.provider, 20)} == {(10, 12), (20, 25)}


def _sparse_dataset() -> FakeDataset:
    """Labels known at one voxel only: no sample reaches a min_masked of 0.5."""
    gt = np.ones((60, 60), dtype=np.uint8)
    sparse = np.zeros_like(gt)
    sparse[30, 30] = 1
    return FakeDataset(np.zeros((60, 60), np.float32), gt, sparse)


def test_min_masked_rejects_sparsely_annotated_samples():
    gt = np.ones((60, 60), dtype=np.uint8)
    mask = np.zeros_like(gt)
    mask[:, :20] = 1
    raw = np.zeros((60, 60), np.float32)
    trainer, _, _ = setup_trainer(FakeDataset(raw, gt, mask), (10, 10), min_masked=1.0,
                                  sample_from="anywhere")
    for _ in range(10):
        batch = trainer.provider.batch()
        assert batch.mask.min() == 1 and batch.warning == ""
    # Impossible to satisfy: used anyway, and each such batch says so (for the training
    # loop to warn: the batch may be made in another thread or process).
    trainer, _, _ = setup_trainer(_sparse_dataset(), (10, 10), min_masked=0.5)
    for _ in range(3):
        batch = trainer.provider.batch()
        assert batch.warning.startswith("No location among 50 tries had 50% of its output")
        assert "(last: 1.6%)" in batch.warning  # one voxel of the 8x8 output
        assert batch.warning.endswith("Annotate more densely or lower min_masked.")
    assert batch.mask.sum() == 2  # one annotated voxel in each of the two samples


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_sparse_annotation_is_warned_once_per_training_wherever_batches_are_made(worker):
    """The warning was logged where the batch was made (a worker process's stderr): no
    notification in napari, no 'Warning:' line of the CLI. It is warned (a DataWarning) by
    the training loop, once per training."""
    from napari_dacapo.experiments.datasplits.datasets.checks import DataWarning

    if worker == "process" and not can_fork():
        pytest.skip("worker processes are forked on Linux only")
    trainer, model, _ = setup_trainer(_sparse_dataset(), (10, 10), min_masked=0.5,
                                      prefetch_worker=worker)
    optimizer = trainer.create_optimizer(model)
    for _ in range(2):  # each training says it once
        with pytest.warns(DataWarning) as said:
            with trainer:
                list(trainer.iterate(4, model, optimizer, CPU))
        assert len(said) == 1
        assert "of its output annotated (min_masked)" in str(said[0].message)


def test_labels_of_datasets_with_different_dtypes_keep_their_ids_in_one_batch():
    raw, small = blobs((40, 40))
    large = small.astype(np.uint32) * 100  # ids up to 800 do not fit the other's uint8
    trainer = DefaultTrainer(DefaultTrainerConfig(name="t", batch_size=8, seed=0, min_masked=0))
    task = ForegroundTask()
    model = task.create_model(ConvNet((10, 10)))
    datasets = [FakeDataset(raw, small.astype(np.uint8), name="a"),
                FakeDataset(raw, large, name="b")]
    trainer.build_batch_provider(datasets, model, task)
    allowed = set(range(9)) | set(range(100, 900, 100))
    mixed = 0
    for _ in range(8):
        ids = set(np.unique(trainer.provider.batch().gt).tolist())
        assert ids <= allowed  # no id wrapped around (800 as uint8 is 32)
        mixed += bool(ids & set(range(1, 9))) and max(ids) > 255
    assert mixed  # some batches held samples of both datasets


def test_the_known_share_from_geometry_equals_that_of_the_known_mask():
    raw, gt = blobs((30, 30))
    trainer, _, _ = setup_trainer(FakeDataset(raw, gt, gt_offset=(5, 0)), (10, 10))
    provider = trainer.provider
    source = provider.sources[0]
    for begin in [(-8, -3), (0, 0), (10, 25), (28, 12), (-20, -20)]:
        begin = np.asarray(begin, dtype=np.int64)
        end = begin + 6
        expected = float(provider._known(source, begin, end).mean())
        assert provider._known_fraction(source, begin, end) == pytest.approx(expected)


def test_input_larger_than_the_data_names_sizes_and_fix():
    raw, gt = np.zeros((20, 30), np.float32), np.ones((20, 30), np.uint8)
    with pytest.raises(ValueError, match=r"\(20, 30\) voxels.*input_shape is \(24, 24\).*"
                                         r"smaller input_shape.*larger region"):
        setup_trainer(FakeDataset(raw, gt), (24, 24))


def test_small_annotated_crop_needs_clip_raw_off_and_then_reads_context():
    raw = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    gt = np.ones((6, 6), np.uint8)
    dataset = FakeDataset(raw, gt, gt_offset=(17, 17))
    with pytest.raises(ValueError, match="clip_raw=False"):
        setup_trainer(dataset, (12, 12))
    trainer, _, _ = setup_trainer(dataset, (12, 12), clip_raw=False)
    batch = trainer.provider.batch()
    assert batch.raw.shape == (2, 1, 12, 12) and batch.mask.shape == (2, 10, 10)
    begin = batch.input_rois[0].begin
    np.testing.assert_array_equal(batch.raw[0, 0], raw[begin[0]:begin[0] + 12,
                                                       begin[1]:begin[1] + 12])
    assert 0 < batch.mask[0].sum() < 100  # unknown outside the crop


def test_raw_channels_dims_and_masks_must_match_the_model():
    raw, gt = np.zeros((2, 30, 30), np.float32), np.ones((30, 30), np.uint8)
    task = ForegroundTask()
    trainer = DefaultTrainer(DefaultTrainerConfig(name="t"))
    with pytest.raises(ValueError, match="2 channel.*expects 1 input channel"):
        trainer.build_batch_provider([FakeDataset(raw, gt, channels=True)],
                                     task.create_model(ConvNet((8, 8))), task)
    with pytest.raises(ValueError, match="has 3 axes.*2 spatial axes"):
        trainer.build_batch_provider([FakeDataset(raw[0], gt)],
                                     task.create_model(ConvNet((8, 8, 8))), task)
    trainer = DefaultTrainer(DefaultTrainerConfig(name="t", sample_from="mask"))
    with pytest.raises(ValueError, match="no mask.*'auto' or 'labels'"):
        trainer.build_batch_provider([FakeDataset(raw[0], gt)],
                                     task.create_model(ConvNet((8, 8))), task)
    unlabelled = FakeDataset(raw[0], gt)
    unlabelled.gt = None
    assert trainer.can_train([FakeDataset(raw[0], gt)]) and not trainer.can_train([unlabelled])
    assert not trainer.can_train([])


def test_raw_as_float32_divides_integers_by_their_maximum():
    assert raw_as_float32(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert raw_as_float32(np.array([65535], np.uint16)).tolist() == [1.0]
    floats = np.array([-3.5, 7.0], np.float32)
    assert raw_as_float32(floats) is floats


def test_2d_batches_are_truly_2d():
    raw, gt = blobs((40, 40))
    elastic = ElasticAugmentConfig(name="e", control_point_spacing=[4],
                                   control_point_displacement_sigma=[1],
                                   rotation_interval=(0, math.pi))
    trainer, _, _ = setup_trainer(
        FakeDataset((raw * 255).astype(np.uint8), gt), (12, 12), batch_size=3,
        augments=[elastic, SimpleAugmentConfig(name="s")],
    )
    batch = trainer.provider.batch()
    assert batch.raw.shape == (3, 1, 12, 12) and batch.raw.dtype == np.float32
    assert batch.target.shape == batch.weight.shape == (3, 1, 10, 10)
    assert batch.gt.shape == batch.mask.shape == (3, 10, 10)
    assert 0 <= batch.raw.min() and batch.raw.max() <= 1


def test_3d_batches_with_anisotropic_voxels_and_elastic_augment():
    raw, gt = blobs((16, 40, 40))
    elastic = ElasticAugmentConfig(name="e", control_point_spacing=[4],
                                   control_point_displacement_sigma=[2],
                                   rotation_interval=(0, math.pi))
    trainer, _, _ = setup_trainer(FakeDataset(raw, gt, voxel_size=(4, 1, 1)), (6, 12, 12),
                                  augments=[elastic, SimpleAugmentConfig(name="s")])
    batch = trainer.provider.batch()
    assert batch.raw.shape == (2, 1, 6, 12, 12)
    assert batch.target.shape == (2, 1, 4, 10, 10) and batch.gt.shape == (2, 4, 10, 10)
    assert batch.output_rois[0].begin - batch.input_rois[0].begin == Coordinate(4, 1, 1)
    assert batch.grid_steps == [None, None]  # a warp cannot be undone


@pytest.mark.parametrize("shape, voxel_size, input_shape", [
    ((30, 30), (1, 1), (10, 10)),
    ((12, 30, 30), (3, 1, 1), (6, 10, 10)),  # y and x may swap, z (anisotropic) never
])
def test_snapshots_of_mirrored_and_transposed_samples_line_up_with_the_source(
    shape, voxel_size, input_shape, monkeypatch
):
    raw, gt = blobs(shape, seed=3)
    dims = len(shape)
    moved = []  # the non-trivial mirror-and-transpose steps the snapshots undid
    undo = default_trainer.undo_grid_steps

    def recording_undo(data, steps, dims):
        moved.extend(s for s in steps if s[0] or s[1] != tuple(range(dims)))
        return undo(data, steps, dims)

    monkeypatch.setattr(default_trainer, "undo_grid_steps", recording_undo)
    trainer, model, _ = setup_trainer(
        FakeDataset(raw, gt, voxel_size=voxel_size), input_shape, snapshot_interval=1,
        augments=[SimpleAugmentConfig(name="s")],
    )
    with trainer:
        for _ in trainer.iterate(12, model, trainer.create_optimizer(model), CPU):
            arrays = trainer.latest_snapshot.arrays
            begin = np.asarray(arrays["raw"].offset) // voxel_size
            window = tuple(slice(b, b + s) for b, s in zip(begin, input_shape))
            np.testing.assert_array_equal(arrays["raw"].data[0], raw[window])
            out_begin = np.asarray(arrays["gt"].offset) // voxel_size
            out = tuple(slice(b, b + s) for b, s in zip(out_begin, arrays["gt"].data.shape))
            np.testing.assert_array_equal(arrays["gt"].data, gt[out])
    # Samples were mirrored or transposed (so the checks above are not vacuous); the
    # anisotropic z axis was never swapped.
    assert moved
    assert dims == 2 or all(p[0] == 0 for _, p in moved)


# -- the prefetch thread ----------------------------------------------------------------------


def test_prefetch_propagates_exceptions_and_stops_without_hanging():
    calls = iter(range(3))

    def produce():
        value = next(calls)
        if value == 2:
            raise KeyError("broken sample")
        return value

    with Prefetcher(produce, size=4) as prefetcher:
        assert [prefetcher.get(), prefetcher.get()] == [0, 1]
        with pytest.raises(KeyError, match="broken sample"):
            prefetcher.get()
    # A full queue nobody reads must not block stopping.
    slow = Prefetcher(lambda: time.sleep(0.01) or 1, size=1, name="full-queue")
    slow.start()
    time.sleep(0.1)
    started = time.perf_counter()
    slow.stop()
    assert time.perf_counter() - started < 1.0
    assert "full-queue" not in {t.name for t in threading.enumerate()}


def test_items_made_in_the_training_thread_come_in_bursts_and_in_order():
    made = []

    def produce():
        made.append(len(made))
        if len(made) == 14:  # in the burst after 8, 9, 10, 11
            raise KeyError("broken sample")
        return made[-1]

    prefetcher = Prefetcher(produce, size=0, burst=4)
    assert prefetcher.get() == 0 and len(made) == 4  # made four in a row, gave the first
    assert [prefetcher.get() for _ in range(3)] == [1, 2, 3] and len(made) == 4
    assert prefetcher.get() == 4 and len(made) == 8
    prefetcher.stop()  # drops what was made ahead
    assert prefetcher.get() == 8
    with pytest.raises(KeyError, match="broken sample"):
        [prefetcher.get() for _ in range(4)]


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_trainer_prefetches_inside_with_and_errors_reach_the_training_loop(worker):
    raw, gt = blobs((30, 30))
    trainer, model, _ = setup_trainer(FakeDataset(raw, gt), (10, 10), prefetch_worker=worker)
    optimizer = trainer.create_optimizer(model)

    def preparing() -> set[str]:  # a thread, or a worker process (read without a thread)
        if worker == "thread":
            return {t.name for t in threading.enumerate()}
        return {p.name for p in multiprocessing.active_children()}

    with trainer:
        assert "napari-dacapo batches" in preparing()
    assert "napari-dacapo batches" not in preparing()
    # Broken from the next start on (a worker process copies the trainer when it starts).
    trainer.provider.predictor.create_target = lambda gt, vs: 1 / 0
    with trainer:
        with pytest.raises(ZeroDivisionError):
            list(trainer.iterate(10, model, optimizer, CPU))
    assert "napari-dacapo batches" not in {t.name for t in threading.enumerate()}
    assert not multiprocessing.active_children()


def test_auto_makes_batches_in_a_worker_only_where_a_core_is_free(monkeypatch):
    from napari_dacapo.experiments import device as device_module

    monkeypatch.setattr(device_module.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(device_module.torch, "get_num_threads", lambda: 2)
    assert not device_module.has_spare_core(CPU)
    assert device_module.has_spare_core(torch.device("cuda"))  # the step runs elsewhere
    monkeypatch.setattr(device_module.torch, "get_num_threads", lambda: 1)
    assert device_module.has_spare_core(CPU)

    raw, gt = blobs((40, 40))
    for spare, expected in [(False, "in the training thread"), (True, "in a worker process")]:
        monkeypatch.setattr(default_trainer, "has_spare_core", lambda device, s=spare: s)
        trainer, _, _ = setup_trainer(FakeDataset(raw, gt), (10, 10))
        if expected.endswith("process") and not can_fork():
            expected = "in a thread"
        assert trainer.batches_made == expected
    trainer, _, _ = setup_trainer(FakeDataset(raw, gt), (10, 10), prefetch_worker="thread")
    assert trainer.batches_made == "in a thread"


@pytest.mark.skipif(not can_fork(), reason="worker processes need Linux")
def test_lazily_read_data_is_read_in_a_spawned_worker_never_a_forked_one(tmp_path, monkeypatch):
    """zarr and dask read with threads a forked worker does not have: it waited for them
    forever (training never started). Such data is read by a spawned worker, which opens it
    again, or in a thread when it cannot be sent there (it does not pickle)."""
    import dask.array as da
    import zarr

    from napari_dacapo.experiments.datasplits.datasets.arrays.array import reads_in_process
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        reopened_for_reading,
        write_zarr_array,
    )

    raw, gt = blobs((40, 40))
    write_zarr_array(tmp_path / "d.zarr", "raw", raw)
    lazy = {
        "zarr": reopened_for_reading(zarr.open_array(str(tmp_path / "d.zarr"), path="raw")),
        "dask": da.from_array(raw, chunks=(20, 20)),
    }
    assert reads_in_process(SourceArray(raw, (1, 1)))
    monkeypatch.setattr(default_trainer, "has_spare_core", lambda device: True)
    for name, data in lazy.items():
        assert not reads_in_process(SourceArray(data, (1, 1))), name
        for worker in ("auto", "process"):
            trainer, _, _ = setup_trainer(FakeDataset(data, gt), (10, 10), prefetch_worker=worker)
            assert trainer.batches_made == "in a worker process", (name, worker)
            assert trainer._prefetcher.start_method == "spawn", (name, worker)

    class Lazy:  # a local class: it does not pickle
        def __init__(self, data):
            self.data, self.shape, self.dtype = data, data.shape, data.dtype

        def __getitem__(self, key):
            return self.data[key]

    trainer, _, _ = setup_trainer(FakeDataset(Lazy(raw), gt), (10, 10))  # auto
    assert trainer.batches_made == "in a thread"
    with pytest.raises(ValueError, match="cannot be sent there.*local object.*'auto' or 'thread'"):
        setup_trainer(FakeDataset(Lazy(raw), gt), (10, 10), prefetch_worker="process")


@pytest.mark.skipif(not can_fork(), reason="worker processes need Linux")
def test_a_spawned_worker_trains_on_zarr_data_and_stops_quickly(tmp_path):
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import write_zarr_array

    raw, gt = blobs((40, 40))
    on_disk = FakeDataset(raw, gt)
    on_disk.raw = write_zarr_array(tmp_path / "d.zarr", "raw", raw).array()  # a ZarrArray
    on_disk.gt = write_zarr_array(tmp_path / "d.zarr", "gt", gt).array()
    trainer, model, _ = setup_trainer(on_disk, (10, 10), prefetch_worker="process")
    assert trainer._prefetcher.start_method == "spawn"
    with trainer:
        stats = list(trainer.iterate(3, model, trainer.create_optimizer(model), CPU))
        spawned = trainer._prefetcher.get()[0].raw
        stopping = time.perf_counter()
    assert time.perf_counter() - stopping < 2.0
    assert not multiprocessing.active_children()
    assert [s.iteration for s in stats] == [0, 1, 2]
    assert all(math.isfinite(s.loss) for s in stats)
    # Seeded like a forked worker: the same batches as from the same data in memory.
    forked, _, _ = setup_trainer(FakeDataset(raw, gt), (10, 10), prefetch_worker="process")
    assert forked._prefetcher.start_method == "fork"
    with forked:
        in_memory = [forked._prefetcher.get()[0].raw for _ in range(4)]
    np.testing.assert_array_equal(spawned, in_memory[3])


def test_batches_from_a_worker_process_are_reproducible_and_not_repeated():
    raw, gt = blobs((40, 40))

    def first_raws(count):
        trainer, _, _ = setup_trainer(FakeDataset(raw, gt), (10, 10), prefetch_worker="process")
        raws = []
        for _ in range(2):  # a restarted worker continues, it does not start over
            with trainer:
                raws += [trainer._prefetcher.get()[0].raw for _ in range(count)]
        return raws

    runs = first_raws(2), first_raws(2)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(runs[0][0], runs[0][2])


# -- training ---------------------------------------------------------------------------------


def test_training_decreases_the_loss():
    torch.manual_seed(0)
    raw, gt = blobs((48, 48))
    trainer, model, _ = setup_trainer(FakeDataset(raw, gt), (16, 16), batch_size=4,
                                      learning_rate=0.02, optimizer="adamw", precision="fp32")
    optimizer = trainer.create_optimizer(model)
    with trainer:
        stats = list(trainer.iterate(30, model, optimizer, CPU))
    assert [s.iteration for s in stats] == list(range(30)) and trainer.iteration == 30
    losses = [s.loss for s in stats]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert all(s.time > 0 for s in stats)
    assert trainer.device_description == "cpu (fp32)"


def test_bf16_channels_last_step_runs_on_cpu():
    raw, gt = blobs((10, 20, 20))
    trainer, model, _ = setup_trainer(FakeDataset(raw, gt), (6, 8, 8), precision="bf16")
    optimizer = trainer.create_optimizer(model)
    with trainer:
        stats = list(trainer.iterate(2, model, optimizer, CPU))
    assert all(np.isfinite(s.loss) for s in stats)
    assert trainer.device_description == "cpu (bf16 autocast, channels-last)"
    weight = model.architecture.layers[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert weight.dtype == torch.float32  # autocast keeps fp32 master weights


def test_warmup_raises_the_learning_rate_linearly():
    raw, gt = blobs((30, 30))
    trainer, model, _ = setup_trainer(FakeDataset(raw, gt), (10, 10), warmup_iterations=4,
                                      learning_rate=0.01)
    optimizer = trainer.create_optimizer(model)
    assert trainer.create_scheduler(optimizer) is trainer.scheduler
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)
    with trainer:
        rates = [optimizer.param_groups[0]["lr"] for _ in trainer.iterate(5, model, optimizer, CPU)]
    assert rates == pytest.approx([0.005, 0.0075, 0.01, 0.01, 0.01])
    plain = DefaultTrainer(DefaultTrainerConfig(name="t"))
    assert plain.create_scheduler(plain.create_optimizer(model)) is None


def test_snapshots_at_the_interval_are_kept_and_written(monkeypatch, tmp_path):
    written = []
    fake_writer = lambda *args: written.append(args)  # noqa: E731
    monkeypatch.setattr(snapshot, "snapshot_writer", lambda: fake_writer)
    monkeypatch.setattr(default_trainer, "snapshot_writer", lambda: fake_writer)
    from napari_dacapo.store.array_store import LocalContainerIdentifier

    raw, gt = blobs((30, 30))
    trainer = DefaultTrainer(DefaultTrainerConfig(name="t", snapshot_interval=3, seed=0))
    task = ForegroundTask()
    model = task.create_model(ConvNet((10, 10)))
    container = LocalContainerIdentifier(tmp_path / "snapshots.zarr")
    trainer.build_batch_provider([FakeDataset(raw, gt)], model, task, container)
    seen = set()
    with trainer:
        for _ in trainer.iterate(7, model, trainer.create_optimizer(model), CPU):
            if trainer.latest_snapshot is not None:
                seen.add(trainer.latest_snapshot.iteration)
    assert seen == {0, 3, 6}
    arrays = trainer.latest_snapshot.arrays
    assert set(arrays) == {"raw", "gt", "mask", "target", "weight", "prediction"}
    assert arrays["raw"].data.shape == (1, 10, 10) and arrays["prediction"].data.shape == (1, 8, 8)
    assert 0 <= arrays["prediction"].data.min() and arrays["prediction"].data.max() <= 1
    assert arrays["gt"].offset == arrays["raw"].offset + Coordinate(1, 1)
    assert {w[1] for w in written} == {f"{i}/{n}" for i in (0, 3, 6) for n in arrays}
    raw_call = next(w for w in written if w[1] == "6/raw")
    assert raw_call[0] == container.container and raw_call[5] == ["c^", "y", "x"]


def test_stats_of_a_sync_window_are_yielded_after_its_steps(monkeypatch):
    """With the loss read every 4 iterations, ``trainer.iteration == i + 1`` marks the stats
    whose iteration matches the model and optimizer state; each loss is its own step's."""
    raw, gt = blobs((30, 30))

    def train(**config):
        torch.manual_seed(0)
        trainer, model, _ = setup_trainer(FakeDataset(raw, gt), (10, 10), **config)
        optimizer = trainer.create_optimizer(model)
        with trainer:
            for stats in trainer.iterate(10, model, optimizer, CPU):
                yield stats, trainer.iteration, {int(s["step"]) for s in optimizer.state.values()}

    reference = [stats.loss for stats, _, _ in train()]
    # Read the loss as on an asynchronous accelerator.
    monkeypatch.setattr(default_trainer, "_sync_interval", lambda device, every: every)
    seen = list(train(loss_sync_interval=4))
    assert [(stats.iteration, done) for stats, done, _ in seen] == [
        (0, 4), (1, 4), (2, 4), (3, 4), (4, 8), (5, 8), (6, 8), (7, 8), (8, 10), (9, 10)
    ]
    for stats, done, steps in seen:
        if done == stats.iteration + 1:
            assert steps == {done}
    assert [stats.loss for stats, _, _ in seen] == reference


def test_a_stop_request_flushes_a_sync_window_after_the_current_step(monkeypatch):
    """Where losses are read in windows (CUDA), a stop request still reaches the caller
    within one iteration: the pending stats are reported right after the current step."""
    import threading

    raw, gt = blobs((30, 30))
    monkeypatch.setattr(default_trainer, "_sync_interval", lambda device, every: every)
    trainer, model, _ = setup_trainer(FakeDataset(raw, gt), (10, 10), loss_sync_interval=10)
    optimizer = trainer.create_optimizer(model)
    def first_two(stop):
        seen = []
        with trainer:
            for stats in trainer.iterate(20, model, optimizer, CPU, stop=stop):
                seen.append((stats.iteration, trainer.iteration))
                if len(seen) == 2:
                    break
        return seen

    assert first_two(None) == [(0, 10), (1, 10)]  # a whole window of steps, then its stats
    stop = threading.Event()
    stop.set()
    start = trainer.iteration
    assert first_two(stop) == [(start, start + 1), (start + 1, start + 2)]


def test_snapshots_are_stored_as_zarr_with_their_geometry(tmp_path):
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )
    from napari_dacapo.store.array_store import LocalContainerIdentifier

    raw, gt = blobs((30, 30))
    trainer = DefaultTrainer(DefaultTrainerConfig(name="t", snapshot_interval=1, seed=0))
    task = ForegroundTask()
    model = task.create_model(ConvNet((10, 10)))
    container = LocalContainerIdentifier(tmp_path / "snapshots.zarr")
    trainer.build_batch_provider([FakeDataset(raw, gt, voxel_size=(2, 2))], model, task,
                                 container)
    with trainer:
        list(trainer.iterate(1, model, trainer.create_optimizer(model), CPU))
    for name, expected in trainer.latest_snapshot.arrays.items():
        stored = ZarrArrayConfig(name=name, file_name=container.container,
                                 dataset=f"0/{name}").array()
        np.testing.assert_array_equal(stored.data, expected.data)
        assert stored.voxel_size == Coordinate(2, 2) and stored.offset == expected.offset
