"""Bad input is refused before any work starts, names the problem and the fix, and leaves
the store untouched."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_config

from napari_dacapo.experiments import (
    DefaultTrainerConfig,
    DistanceTaskConfig,
    NumpyArrayConfig,
    RawGTDatasetConfig,
    TrainValidateDataSplitConfig,
)
from napari_dacapo.experiments.configs import ConfigError
from napari_dacapo.experiments.run import Run
from napari_dacapo.store.file_store import CheckpointError, StoreError
from napari_dacapo.train import train_run


def with_data(config, raw, labels, raw_kwargs=None, gt_kwargs=None):
    dataset = RawGTDatasetConfig(
        name="data",
        raw_config=NumpyArrayConfig(name="raw", data=raw, **(raw_kwargs or {})),
        gt_config=NumpyArrayConfig(name="labels", data=labels, **(gt_kwargs or {})),
    )
    split = TrainValidateDataSplitConfig(name="split", train_configs=[dataset],
                                         validate_configs=[])
    return config.replace(datasplit_config=split)


def blobs(shape=(64, 64)):
    from napari_dacapo.examples import synthetic_blobs

    return synthetic_blobs(shape, seed=3)


def refused(store, config, match):
    with pytest.raises(Exception, match=match) as info:
        list(train_run(Run(config, store=store), store=store))
    assert not store.has_run(config.name), "the store was written for refused input"
    return info.value


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda raw, gt: (raw, np.zeros_like(gt)), r"0 everywhere.*annotate"),
        (lambda raw, gt: (raw, gt.astype(np.float32) + 0.5), r"non-integer value.*threshold"),
        (lambda raw, gt: (np.where(gt > 0, np.nan, raw.astype(np.float32)), gt), r"(?i)nan"),
        (lambda raw, gt: (raw, gt[None].repeat(3, 0)), r"2 spatial axes.*but gt has 3"),
    ],
    ids=["empty labels", "float labels", "nan in raw", "3D labels on 2D raw"],
)
def test_bad_data_is_refused(store, change, match):
    raw, gt = change(*blobs())
    refused(store, with_data(tiny_config(2), raw, gt), match)


def test_labels_that_do_not_overlap_the_image_are_refused(store):
    raw, gt = blobs()
    config = with_data(tiny_config(2), raw, gt, gt_kwargs={"offset": (1000, 1000)})
    refused(store, config, r"(?i)overlap")


def test_input_shape_larger_than_the_data_is_refused(store):
    raw, gt = blobs((20, 20))
    refused(store, with_data(tiny_config(2), raw, gt), r"(?i)input")


def test_input_shape_not_fitting_the_downsampling_names_valid_shapes():
    with pytest.raises(ValueError, match=r"nearest valid shapes"):
        tiny_config(2, input_shape=(33, 33))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: DefaultTrainerConfig(name="t", batch_size=0), r"batch_size must be >= 1"),
        (lambda: DefaultTrainerConfig(name="t", learning_rate=0.0), r"learning_rate"),
        (lambda: DistanceTaskConfig(name="d", channels=[], clip_distance=1, tol_distance=1),
         r"channels"),
    ],
)
def test_out_of_range_config_values_are_refused(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_more_task_channels_than_the_labels_have_are_refused(store):
    config = tiny_config(2)
    task = DistanceTaskConfig(name="two", channels=["a", "b"], clip_distance=8,
                              tol_distance=2, scale_factor=4)
    gt = np.zeros((3, 64, 64), np.uint8)
    gt[:, 10:20, 10:20] = 1
    config = with_data(config.replace(task_config=task), blobs()[0], gt,
                       gt_kwargs={"axis_names": ["c^", "y", "x"]})
    refused(store, config, r"(?i)channel")


def test_a_run_name_stored_with_a_different_config_is_refused(store):
    config = tiny_config(2, iterations=2, validation_interval=2)
    list(train_run(Run(config, store=store), store=store))
    other = config.replace(validation_interval=1)
    with pytest.raises(StoreError, match=r"different config.*validation_interval.*another run"):
        Run(other, store=store)


def test_a_corrupt_checkpoint_is_named(store):
    config = tiny_config(2, iterations=2, validation_interval=2)
    list(train_run(Run(config, store=store), store=store))
    store.checkpoint_path(config.name, 2).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"2\.pt"):
        Run(config, store=store)


def test_a_missing_checkpoint_lists_the_existing_ones(store):
    config = tiny_config(2, iterations=2, validation_interval=2)
    list(train_run(Run(config, store=store), store=store))
    with pytest.raises(CheckpointError, match=r"(?s)7.*2"):
        store.retrieve_checkpoint(config.name, 7)


def test_an_unwritable_store_is_named(tmp_path):
    from napari_dacapo.store.file_store import FileStore

    (tmp_path / "file").write_text("")
    store = FileStore(tmp_path / "file" / "runs")
    with pytest.raises(StoreError, match=r"NAPARI_DACAPO_ROOT"):
        list(train_run(Run(tiny_config(2), store=store), store=store))


def test_the_core_imports_no_gui_toolkit():
    code = (
        "import sys, napari_dacapo.experiments, napari_dacapo.experiments.run, "
        "napari_dacapo.train, napari_dacapo.validate, napari_dacapo.predict, "
        "napari_dacapo.store, napari_dacapo.cli\n"
        "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'magicgui', "
        "'psygnal') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
