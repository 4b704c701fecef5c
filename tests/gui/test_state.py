"""The training state and the run controls show a loss that is not finite as such."""

from __future__ import annotations

import math

from napari_dacapo.gui.state import TrainingState
from napari_dacapo.gui.train_status import StatusPanel
from napari_dacapo.train import IterationDone, RunStarted


def test_a_nan_loss_is_shown_not_hidden_behind_the_last_finite_one(qtbot):
    state = TrainingState()
    status = StatusPanel(state)
    qtbot.addWidget(status)
    state.begin("run", 10)
    state.apply(RunStarted("run", 0, 10, "cpu (fp32)"))
    state.apply(IterationDone(0, 0.25, 0.1, 2.0))
    status._render_progress()
    assert "loss 0.25" in status.speed.text()
    state.apply(IterationDone(1, float("nan"), 0.1, 2.0))
    assert math.isnan(state.last_loss)
    status._render_progress()
    assert "loss nan" in status.speed.text() and "0.25" not in status.speed.text()
    state.apply(IterationDone(2, float("inf"), 0.1, 2.0))
    status._render_progress()
    assert "loss inf" in status.speed.text()


def test_a_new_run_shows_its_preparation_not_the_last_runs_progress(qtbot):
    """Between Train and the new run's RunStarted the panel showed the last run's
    iteration as the new run's."""
    from napari_dacapo.gui.state import Phase
    from napari_dacapo.train import RunFinished

    state = TrainingState()
    status = StatusPanel(state)
    qtbot.addWidget(status)
    state.begin("old", 6)
    state.apply(RunStarted("old", 0, 6, "cpu (fp32)"))
    state.apply(IterationDone(5, 0.25, 0.1, 2.0))
    state.apply(RunFinished(6))
    state.begin("new", 10)
    status._render_progress()
    assert status.progress.format() == "preparing ..." and status.progress.value() == 0
    assert status.speed.text() == ""  # no speed, ETA or loss of the old run
    assert (state.iteration, state.start_iteration, state.preparing) == (0, 0, True)
    assert status.message.text() == "training: preparing run 'new' ..."
    state.apply(RunStarted("new", 4, 10, "cpu (fp32)"))  # resumed: now its iteration is known
    status._render_progress()
    assert not state.preparing and status.progress.format() == "iteration 4 / 10"
    state.worker_ended()
    state.begin("refused", 10)
    state.phase = Phase.CRASHED  # e.g. its data refused before it started
    state.worker_ended()
    assert not state.preparing
