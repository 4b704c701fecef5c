"""GUI responsiveness while the training panel trains: the longest stall of the GUI thread.

A QTimer on the GUI thread fires every 10 ms and records the gap since its previous tick;
a stall is the part of a gap beyond those 10 ms (time in which the GUI could not react).
Meanwhile the panel trains the 2D example run (synthetic blobs, a 2-level UNet) in a shown
napari window, with snapshots every 2 iterations, validation (prediction and labels
layers), the live view refreshing every 0.5 s, plots and progress.

Besides the overall figures it reports the largest stall away from the moments an output
layer is first added (napari builds its visual and controls then, a one-off cost per
layer and run). Under Xvfb the window is drawn by a software OpenGL renderer (each canvas
redraw then costs tens of milliseconds); ``--hidden`` measures without drawing.

Prints the run's figures and ``max_stall_ms=<x>`` last. Target: < 50 ms.

    xvfb-run -a .venv/bin/python bench/gui_stall.py [--iterations 60] [--hidden]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import napari
import numpy as np
from qtpy.QtCore import QElapsedTimer, QTimer
from qtpy.QtWidgets import QApplication

from napari_dacapo.examples import example_run_config
from napari_dacapo.gui.state import Phase
from napari_dacapo.gui.train_widget import TrainWidget
from napari_dacapo.store.file_store import FileStore

TICK_MS = 10


class StallProbe:
    """Records the gaps between ticks of a 10 ms timer on the GUI thread."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.gaps: list[float] = []
        self.ends: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._on_timer_timeout)

    def start(self) -> None:
        self.gaps.clear()
        self.ends.clear()
        self.clock.start()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _on_timer_timeout(self) -> None:
        self.gaps.append(self.clock.nsecsElapsed() / 1e6)
        self.ends.append(time.perf_counter())
        self.clock.restart()

    @property
    def stalls(self) -> np.ndarray:
        return np.maximum(np.asarray(self.gaps) - TICK_MS, 0.0)

    def during(self, moments: list[float]) -> np.ndarray:
        """Which gaps contain one of ``moments`` (perf_counter seconds)."""
        ends = np.asarray(self.ends)
        begins = ends - np.asarray(self.gaps) / 1000
        hit = np.zeros(len(ends), bool)
        for moment in moments:
            hit |= (begins <= moment) & (moment <= ends)
        return hit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--hidden", action="store_true", help="do not show the window")
    args = parser.parse_args()

    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=not args.hidden)
    panel = TrainWidget(viewer, store=FileStore(tempfile.mkdtemp(prefix="gui_stall_")))
    viewer.window.add_dock_widget(panel)
    panel.set_config(example_run_config(
        2, name="gui_stall", iterations=args.iterations,
        validation_interval=max(args.iterations // 2, 1), snapshot_interval=2,
    ))
    panel.live.period_s = 0.5
    for _ in range(50):  # let the window settle before measuring
        app.processEvents()
        time.sleep(0.01)

    probe = StallProbe()
    started = time.perf_counter()
    added: list[float] = []
    viewer.layers.events.inserted.connect(lambda _: added.append(time.perf_counter()))

    def start() -> None:
        probe.start()
        if not panel.train():
            app.quit()

    def on_phase(phase: Phase) -> None:
        if not phase.busy:  # let the last outputs arrive through the event loop
            QTimer.singleShot(300, app.quit)

    panel.state.events.phase.connect(on_phase)
    QTimer.singleShot(0, start)
    QTimer.singleShot(int(args.timeout * 1000), app.quit)
    app.exec()
    probe.stop()
    seconds = time.perf_counter() - started
    if panel.state.phase is not Phase.FINISHED:
        raise SystemExit(f"training ended as {panel.state.phase.value}: {panel.state.message} "
                         f"{panel.state.reason_disabled}")

    stalls = probe.stalls
    steady = stalls[~probe.during(added)]
    layers = sorted(layer.name for layer in viewer.layers if "gui_stall" in layer.name)
    print(f"device={panel.state.device}")
    print(f"iterations={panel.state.iteration} seconds={seconds:.1f} "
          f"it_per_s={panel.state.iteration / seconds:.2f}")
    print(f"output_layers={layers}")
    print(f"ticks={len(stalls)} p50_stall_ms={np.percentile(stalls, 50):.1f} "
          f"p99_stall_ms={np.percentile(stalls, 99):.1f} "
          f"stalls_over_50ms={int((stalls > 50).sum())}")
    print(f"layers_added={len(added)} max_stall_away_from_layer_adding_ms={steady.max():.1f} "
          f"window={'hidden' if args.hidden else 'shown'}")
    print(f"max_stall_ms={stalls.max():.1f}")


if __name__ == "__main__":
    main()
