"""The loss plot marks and names a loss that is not finite instead of leaving it out."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from napari_dacapo.gui.plots import TrainingPlots


def test_a_nan_loss_is_marked_and_named_under_the_plot(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    for iteration, loss in enumerate([0.5, 0.4, float("nan"), float("nan")]):
        plots.add_loss(iteration, loss)
    plots.redraw()
    x, y = plots.loss_curve.getData()
    assert list(x) == [0, 1] and list(y) == [0.5, 0.4]
    assert not plots.loss_note.isHidden() and plots.nonfinite_line.isVisible()
    assert plots.nonfinite_line.value() == 2
    assert plots.loss_note.text().startswith("loss nan at iteration 2")
    assert "1 later loss(es) not finite" in plots.loss_note.text()
    plots.reset()
    plots.redraw()
    assert plots.loss_note.isHidden() and not plots.nonfinite_line.isVisible()


def test_a_stored_runs_nan_loss_is_marked_too(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    curve = SimpleNamespace(iterations=np.arange(4), values=np.array([0.5, np.inf, 0.3, 0.2]))
    plots.show_run(SimpleNamespace(name="run", loss=curve, scores={}, best={}))
    plots.redraw()
    assert plots.loss_note.text().startswith("loss inf at iteration 1")
    assert plots.nonfinite_line.value() == 1
