"""Loss of the dummy task."""

from __future__ import annotations

from .mse_loss import MSELoss


class DummyLoss(MSELoss):
    """The dummy task's loss: weighted mean squared error, normalised by the sum of the
    weights (DaCapo's dummy loss is an unweighted L1)."""
