from __future__ import annotations

import sys
from pathlib import Path

import pytest

from napari_dacapo.store.file_store import FileStore


@pytest.fixture(autouse=True)
def _qt_workers_end_with_their_test():
    """Wait for the Qt thread workers a test started (panels' data checks, intensity
    measures, predictions), and stop the timers that would start more. A superqt worker
    runs in ``warnings.catch_warnings()``; one that ends during a later test restores the
    warning filters of the test that started it, replacing that later test's (a
    ``filterwarnings`` mark then stops applying: a warning became an error, at random)."""
    yield
    if "qtpy.QtCore" in sys.modules:
        from qtpy.QtCore import QThreadPool, QTimer
        from qtpy.QtWidgets import QApplication

        # A panel a test made without docking it lives on (until collected), and its
        # timers would start workers whenever a later test runs Qt's event loop (the runs
        # browser lists its store every few seconds): they stop with their test.
        for widget in QApplication.topLevelWidgets():
            if type(widget).__module__.startswith("napari_dacapo"):
                for timer in widget.findChildren(QTimer):
                    timer.stop()
        QThreadPool.globalInstance().waitForDone(30_000)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A run store in a temporary folder (also the default root for this test)."""
    monkeypatch.setenv("NAPARI_DACAPO_ROOT", str(tmp_path / "runs"))
    return FileStore(tmp_path / "runs")


def tiny_config(dims: int = 2, **overrides):
    """The synthetic example shrunk to run a few iterations in a second or two."""
    from napari_dacapo.examples import example_run_config

    kwargs = dict(
        name=f"tiny_{dims}d", iterations=6, validation_interval=3, snapshot_interval=2,
        input_shape=(32, 32) if dims == 2 else (24, 24, 24), num_fmaps=2, levels=1,
        eval_shape_increase=(0,) * dims,  # small tiles: tiling is what many tests check
    )
    kwargs.update(overrides)
    return example_run_config(dims, **kwargs)


def sparse_config(name: str, iterations: int, **trainer):
    """The tiny 2D run config with one annotated voxel (its mask) and ``min_masked`` 0.5:
    no sample reaches it, so training warns of sparse annotation. ``trainer`` sets more
    trainer fields."""
    import numpy as np

    from napari_dacapo.experiments import NumpyArrayConfig

    config = tiny_config(2, name=name, iterations=iterations)
    split = config.datasplit_config
    train = split.train_configs[0]
    known = np.zeros(train.gt_config.data.shape, np.uint8)
    known[tuple(s // 2 for s in known.shape)] = 1  # one annotated voxel
    mask = NumpyArrayConfig(name="known", data=known, voxel_size=train.gt_config.voxel_size)
    return config.replace(
        trainer_config=config.trainer_config.replace(min_masked=0.5, **trainer),
        datasplit_config=split.replace(train_configs=[train.replace(mask_config=mask)],
                                       validate_configs=[]),
    )


def store_random_weights(store: FileStore, config, iteration: int = 0) -> str:
    """Store ``config`` with a checkpoint at ``iteration`` of large random weights (seeded):
    their output varies strongly in space, which a barely trained tiny model's, or a
    random init's, may not. Returns the run's name."""
    import torch

    from napari_dacapo.experiments.run import Run

    run = Run(config, store=store)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in run.model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    config = store.store_run_config(config)
    store.store_checkpoint(config.name, iteration, run.model, run.optimizer)
    return config.name


FIXTURES = Path(__file__).parent / "fixtures" / "dacapo"


def dacapo_yaml(tmp_path: Path, name: str, replace: dict[str, str] | None = None) -> Path:
    """A DaCapo fixture YAML with its data path pointed at this checkout."""
    text = (FIXTURES / name).read_text()
    text = text.replace("/work/main/tests/fixtures/dacapo/data.zarr", str(FIXTURES / "data.zarr"))
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path
