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
