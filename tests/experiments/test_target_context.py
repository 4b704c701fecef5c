"""Targets and weights are computed on the output ROI grown by the predictor's padding, not
on the whole network input, or (distance tasks) once per dataset: the batches must be
exactly those of the whole input."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate
from scipy import ndimage

from napari_dacapo.experiments.datasplits.datasets.arrays.array import SourceArray
from napari_dacapo.experiments.datasplits.datasets.dataset import Dataset
from napari_dacapo.experiments.tasks.predictors import (
    AffinitiesPredictor,
    DistancePredictor,
    HotDistancePredictor,
    InnerDistancePredictor,
    OneHotPredictor,
)
from napari_dacapo.experiments.tasks.predictors.predictor import Predictor
from napari_dacapo.experiments.trainers import BatchProvider, SimpleAugmentConfig


class LabelsDataset(Dataset):
    def __init__(
        self, gt: np.ndarray, mask: np.ndarray, voxel_size: tuple[int, ...], border: int = 0
    ) -> None:
        """Raw is ``border`` voxels larger than the labels on every side."""
        self.name = "random labels"
        dims = len(voxel_size)
        channels = gt.ndim > dims
        raw = np.pad((gt[0] if channels else gt).astype(np.float32), border, mode="reflect")
        self.raw = SourceArray(raw, voxel_size)
        axes = ["c^"] + ["z", "y", "x"][-dims:] if channels else None
        offset = [border * v for v in voxel_size]
        self.gt = SourceArray(gt, voxel_size, offset=offset, axis_names=axes)
        self.mask = SourceArray(mask, voxel_size, offset=offset)
        self.weight = 1.0
        self.sample_points = None


class Geometry:
    """What the batch provider reads from a model: shapes, channels, voxel size scaling."""

    def __init__(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> None:
        self.input_shape = Coordinate(input_shape)
        self.output_shape = Coordinate(output_shape)
        self.num_in_channels = 1

    def scale(self, voxel_size: Coordinate) -> Coordinate:
        return voxel_size


def random_labels(
    shape: tuple[int, ...], classes: int, block: int, seed: int
) -> tuple[np.ndarray, ...]:
    """Random labels (0 is background) in cubes of ``block`` voxels, and a mask with an
    unknown slab. Large blocks give voxels far from any boundary (distances up to the clip
    distance), small ones many boundaries (affinities): a padding too small then shows."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, tuple(-(-s // block) for s in shape))
    labels = ndimage.zoom(coarse, block, order=0)[tuple(slice(0, s) for s in shape)]
    mask = np.ones(shape, np.uint8)
    mask[(slice(None),) * (len(shape) - 1) + (slice(shape[-1] // 2, shape[-1] // 2 + 3),)] = 0
    return labels.astype(np.uint32), mask


def assert_crop_equals_whole_input(
    predictor: Predictor,
    voxel_size: tuple[int, ...],
    input_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    classes: int = 4,
    block: int = 12,
    exact: bool = True,
    gt_channels: int = 0,
    precompute: bool = True,
    border: int = 0,
) -> None:
    dims = len(voxel_size)
    labels, mask = random_labels((48,) * dims, classes, block, seed=dims)
    if gt_channels:  # a leading channel axis: one label image per channel
        labels = np.stack([np.roll(labels, 5 * c, axis=-1) for c in range(gt_channels)])
    provider = BatchProvider(
        [LabelsDataset(labels, mask, voxel_size, border)], Geometry(input_shape, output_shape),
        predictor, batch_size=3, augments=[SimpleAugmentConfig(name="s").augment()],
        sample_from="anywhere", rng=np.random.default_rng(0), precompute_targets=precompute,
    )
    assert provider.precompute_targets == (precompute and predictor.precomputable_target)
    samples = []
    draw = provider.sample
    provider.sample = lambda: samples.append(draw()) or samples[-1]
    batch = provider.batch()

    vs = Coordinate(voxel_size)
    begin = provider.margin // vs
    output = tuple(slice(b, b + s) for b, s in zip(begin, output_shape))
    for i, (sample, _, _) in enumerate(samples):
        gt, known = sample["gt"].data, sample["mask"].data
        assert gt.shape[-dims:] == tuple(input_shape)  # the whole input, as before the crop
        target = predictor.create_target(gt, vs)
        weight = predictor.create_weight(gt, target, known, vs, region=output)
        np.testing.assert_array_equal(batch.mask[i], known[output])
        np.testing.assert_array_equal(batch.weight[i], weight[(Ellipsis, *output)])
        if exact:
            np.testing.assert_array_equal(batch.target[i], target[(Ellipsis, *output)])
        else:
            np.testing.assert_allclose(batch.target[i], target[(Ellipsis, *output)], atol=1e-5)


DISTANCE_CASES = [
    # predictor, voxel size, input shape, output shape (padding below the margin: real crop)
    (DistancePredictor(["fg"], 3.0, False, 6.0), (1, 1, 1), (30, 30, 30), (10, 10, 10)),
    (DistancePredictor(["fg"], 3.0, True, 7.5), (3, 2, 2), (20, 30, 30), (10, 10, 10)),
    (DistancePredictor(["fg"], 2.0, True, 5.0), (1, 1), (36, 36), (12, 12)),
    (InnerDistancePredictor(["fg"], 2.0, 4.0), (2, 1), (30, 30), (10, 10)),
    (HotDistancePredictor(["fg"], 2.0, True, 4.5), (1, 1, 1), (24, 24, 24), (8, 8, 8)),
]


@pytest.mark.parametrize("precompute", [True, False], ids=["per dataset", "per sample"])
@pytest.mark.parametrize("predictor, voxel_size, input_shape, output_shape", DISTANCE_CASES)
def test_distance_targets_and_weights_from_the_padded_crop_equal_the_whole_input(
    predictor, voxel_size, input_shape, output_shape, precompute
):
    margin = [(i - o) // 2 * v for i, o, v in zip(input_shape, output_shape, voxel_size)]
    assert all(p < m for p, m in zip(predictor.padding(Coordinate(voxel_size)), margin))
    assert_crop_equals_whole_input(
        predictor, voxel_size, input_shape, output_shape, precompute=precompute
    )


@pytest.mark.parametrize("predictor, voxel_size, input_shape, output_shape", DISTANCE_CASES[2:])
def test_precomputed_targets_near_the_labels_border_equal_the_whole_input(
    predictor, voxel_size, input_shape, output_shape
):
    # Labels with an offset inside a larger raw; samples reach the labels' border, where the
    # target made once from the zero-padded labels must still equal a sample's own.
    assert_crop_equals_whole_input(
        predictor, voxel_size, input_shape, output_shape, border=20
    )


def test_targets_are_made_per_sample_when_an_augment_moves_voxels_off_the_grid(monkeypatch):
    from napari_dacapo.experiments.trainers import ElasticAugmentConfig
    from napari_dacapo.experiments.trainers import batch_provider

    labels, mask = random_labels((48, 48), 3, 12, seed=1)
    dataset = LabelsDataset(labels, mask, (1, 1))
    predictor = DistancePredictor(["fg"], 2.0, False, 5.0)

    def provider(augments, **kwargs):
        return BatchProvider(
            [dataset], Geometry((36, 36), (12, 12)), predictor, 2, augments=augments,
            rng=np.random.default_rng(0), **kwargs,
        )

    elastic = ElasticAugmentConfig(
        name="e", control_point_spacing=(8, 8), control_point_displacement_sigma=(2.0, 2.0),
        rotation_interval=(0.0, 1.0),
    ).augment()
    assert not provider([elastic]).precompute_targets
    assert not provider([], clip_raw=False).precompute_targets  # samples may leave the labels
    assert provider([]).precompute_targets
    # A dataset too large to keep its target falls back to per-sample targets.
    monkeypatch.setattr(batch_provider, "PRECOMPUTE_MAX_VOXELS", 48 * 48 - 1)
    small_budget = provider([])
    assert small_budget._precomputed_target(small_budget.sources[0]) is None
    np.testing.assert_array_equal(small_budget.batch().target, provider([]).batch().target)


def test_ground_truth_with_a_channel_axis_is_cropped_on_its_spatial_axes():
    predictor = DistancePredictor(["a", "b"], 2.0, True, 5.0)
    assert_crop_equals_whole_input(predictor, (1, 1), (36, 36), (12, 12), gt_channels=2)


def test_padding_beyond_the_input_is_clipped_to_it():
    predictor = DistancePredictor(["fg"], 3.0, True, 40.0)
    assert_crop_equals_whole_input(predictor, (1, 1), (30, 30), (10, 10))


AFFINITY_CASES = [
    (AffinitiesPredictor([[1, 0, 0], [0, 3, 0], [0, 0, -2]]), (1, 1, 1)),
    (AffinitiesPredictor([[1, 0, 0], [0, 1, 0], [0, 0, 4]], grow_boundary_iterations=2),
     (2, 1, 1)),
    (AffinitiesPredictor([[-1, 0], [0, 5]], background_as_object=True), (1, 1)),
]


@pytest.mark.parametrize("predictor, voxel_size", AFFINITY_CASES)
def test_affinities_and_weights_from_the_padded_crop_equal_the_whole_input(
    predictor, voxel_size
):
    shapes = ((20, 30, 30), (8, 10, 10)) if len(voxel_size) == 3 else ((30, 30), (10, 10))
    assert_crop_equals_whole_input(predictor, voxel_size, *shapes, block=3)


def test_lsds_from_the_padded_crop_match_the_whole_input():
    # Each object's descriptors are computed in its bounding box, which the crop may cut:
    # the same sums in another order, so equal up to float32 rounding.
    predictor = AffinitiesPredictor([[1, 0], [0, 1]], lsds=True, num_lsd_voxels=2)
    assert predictor.padding(Coordinate(1, 1)) == Coordinate(7, 7)  # 3 sigma, rounded, + 1
    assert_crop_equals_whole_input(predictor, (1, 1), (40, 40), (12, 12), exact=False)


def test_one_hot_has_no_padding_and_balances_over_the_output():
    predictor = OneHotPredictor(["a", "b", "c"])
    assert predictor.padding(Coordinate(2, 1)) == Coordinate(0, 0)
    assert_crop_equals_whole_input(predictor, (2, 1), (20, 20), (10, 10), classes=3)
