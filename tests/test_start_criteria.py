"""A start config's ``best:<criterion>`` names one of the starter run's criteria."""

from __future__ import annotations

import pytest
from conftest import tiny_config

from napari_dacapo.experiments.run import Run
from napari_dacapo.experiments.starts.start_config import StartConfig
from napari_dacapo.store.file_store import CheckpointError
from napari_dacapo.train import train_run


def test_a_start_criterion_is_resolved_among_the_starter_runs_criteria(store):
    base = tiny_config(2, name="base", iterations=2, validation_interval=2)
    list(train_run(Run(base, store=store), store=store))
    best = store.retrieve_best("base", "blob__dice")["iteration"]

    def start(criterion: str) -> Run:
        config = tiny_config(2, name=f"tuned_{abs(hash(criterion))}").replace(
            start_config=StartConfig(run="base", criterion=criterion))
        return Run(config, store=store)

    # A bare name, as DaCapo writes it, and a channel's criterion by its suffix.
    assert start("dice").start.checkpoint_iteration() == best
    assert start("best:blob__dice").start.checkpoint_iteration() == best
    with pytest.raises(CheckpointError, match=r"'foo' is not a criterion of run 'base', "
                       r"which is scored by: .*blob__dice.*'best:"):
        start("foo")
