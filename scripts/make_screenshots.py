"""Screenshots of the napari plugin at work, for the user guide (docs/user-guide.md).

Drives napari the way a user would: open the 2D sample, dock the training panel, draw a
validation region, train a short run (pausing half-way), predict the image with the best
checkpoint, browse the stored runs and predict a large zarr image blockwise; after each step the window is saved as a PNG in
docs/images/.

Run it on a desktop, or headless under Xvfb (about a minute on 2 CPU cores)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/make_screenshots.py

Runs are stored in a temporary folder (``NAPARI_DACAPO_ROOT``), so the user's runs are
neither read nor touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
WINDOW = (1500, 950)
PANEL_WIDTH = 460
#: PNGs above this size are stored with a 256-colour palette (GUI screenshots stay sharp).
MAX_BYTES = 400_000
RUN = "blobs_2d"
ITERATIONS = 600
VALIDATION_INTERVAL = 50
SNAPSHOT_INTERVAL = 25
#: Ten times the 2D preset's rate, so that a short run learns to separate the blobs.
LEARNING_RATE = 1e-3
#: The seed of the training samples (threads and bf16 still make runs differ a little).
SEED = 1
#: The validation region: this many pixels square in the image's lower right corner.
REGION = 96
#: The validation criterion whose best checkpoint (and post-processing) predicts.
CRITERION = "object_f1"
RAW, LABELS = "blobs 2D", "blobs 2D labels"


def settle(seconds: float = 0.6) -> None:
    """Process Qt events for ``seconds``: timers fire (plots, progress, output layers)
    and the window repaints."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Process Qt events until ``condition()`` holds; exit naming ``what`` after
    ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            sys.exit(f"Timed out after {timeout:.0f} s waiting for {what}.")
        settle(0.05)


def save(image: Any, path: Path) -> None:
    """Write a PIL image as PNG (with a 256-colour palette when it would be large)."""
    from PIL import Image

    image.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {image.size[0]}x{image.size[1]}, {path.stat().st_size // 1000} kB",
          flush=True)


def window_shot(viewer: Any, path: Path) -> None:
    """The whole napari window (canvas, layer list and dock widgets)."""
    from PIL import Image

    settle()
    pixels = viewer.screenshot(canvas_only=False, flash=False)
    save(Image.fromarray(np.asarray(pixels)[..., :3]), path)


def widget_shot(widget: Any, path: Path) -> None:
    """One widget, as it is drawn in the window."""
    from PIL import Image

    settle()
    widget.grab().save(str(path), "PNG")
    with Image.open(path) as grabbed:
        image = grabbed.convert("RGB")
    save(image, path)


def scroll_to(panel: Any, widget: Any | None) -> None:
    """Scroll the training panel so that the group holding ``widget`` is at the top
    (None: to the end)."""
    from qtpy.QtCore import QPoint
    from qtpy.QtWidgets import QScrollArea

    settle(0.3)  # the layout settles first (the reason label shown or hidden)
    scroll = panel.findChild(QScrollArea)
    bar = scroll.verticalScrollBar()
    top = bar.maximum() if widget is None else widget.parentWidget().mapTo(
        scroll.widget(), QPoint(0, 0)).y()
    bar.setValue(min(bar.maximum(), top))


def show_only(viewer: Any, *names: str) -> None:
    """Show the layers ``names`` and hide the others (the eye icons of the layer list)."""
    for layer in viewer.layers:
        layer.visible = layer.name in names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images",
                        help="folder for the PNGs (default: docs/images)")
    parser.add_argument("--iterations", type=int, default=ITERATIONS,
                        help=f"iterations to train (default {ITERATIONS})")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE,
                        help=f"learning rate (default {LEARNING_RATE})")
    parser.add_argument("--seed", type=int, default=SEED,
                        help=f"seed of the training samples (default {SEED})")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="napari-dacapo-screenshots-") as store_root:
        os.environ["NAPARI_DACAPO_ROOT"] = store_root  # before any panel makes its store
        take_screenshots(args, out)
    print(f"done in {time.monotonic() - started:.0f} s")


def take_screenshots(args: argparse.Namespace, out: Path) -> None:
    """Open napari, train, predict and browse, saving a screenshot after each step."""
    import napari

    from napari_dacapo.gui.layers import layer_name
    from napari_dacapo.gui.live_view import LivePredictionReady
    from napari_dacapo.gui.state import Phase

    def output(name: str) -> str:
        return layer_name(RUN, name)

    viewer = napari.Viewer(title="napari-dacapo", show=True)
    viewer.window.resize(*WINDOW)

    # 1. The sample and the training panel, as `make run` opens them.
    viewer.open_sample("napari-dacapo", "blobs_2d")
    _, train = viewer.window.add_plugin_dock_widget("napari-dacapo", "DaCapo training")
    train.setMinimumWidth(PANEL_WIDTH)
    settle(1.0)
    viewer.reset_view()
    window_shot(viewer, out / "01_training_panel.png")

    # 2. A new, empty Labels layer: Train is disabled and says why.
    empty = viewer.add_labels(np.zeros_like(viewer.layers[LABELS].data), name="Labels")
    train.data.labels.value = empty
    wait_until(lambda: "empty" in train.state.reason_disabled, 10, "the disabled reason")
    widget_shot(train.status.parentWidget(), out / "02_train_disabled.png")  # "Train" group
    viewer.layers.remove(empty)
    train.data.labels.value = viewer.layers[LABELS]

    # 3. A validation region, a short run; paused half-way.
    h, w = viewer.layers[RAW].data.shape
    corner = [[h - REGION, w - REGION], [h - REGION, w], [h, w], [h, w - REGION]]
    region = viewer.add_shapes([corner], shape_type="rectangle", name="validation region",
                               edge_color="#ffd54f", face_color="transparent", edge_width=2)
    train.data.validation_region.value = region
    train.settings.set_settings({"name": RUN, "num_iterations": args.iterations,
                                 "validation_interval": VALIDATION_INTERVAL})
    train.settings.trainer_form.set_value({"snapshot_interval": SNAPSHOT_INTERVAL,
                                           "learning_rate": args.learning_rate,
                                           "seed": args.seed})
    settle(0.5)
    if train.state.reason_disabled:
        sys.exit(f"Train is disabled: {train.state.reason_disabled}")
    live_iteration = [-1]  # the iteration of the latest live prediction

    def on_received(event: Any) -> None:
        if isinstance(event, LivePredictionReady):
            live_iteration[0] = event.iteration

    train.controller.received.connect(on_received)
    train.train_button.click()
    # Half-way, with a live prediction (refreshed every few seconds) made since 40 %.
    wait_until(lambda: not train.state.phase.busy or (
        train.state.iteration >= args.iterations // 2
        and live_iteration[0] >= args.iterations * 2 // 5
        and output("snapshot prediction") in viewer.layers), 240, "mid-training")
    if not train.state.phase.busy:
        sys.exit(f"Training ended ({train.state.phase.value}: {train.state.message}) before "
                 f"a live prediction of its second half came.")
    train.pause_button.click()
    wait_until(lambda: train.state.phase is Phase.PAUSED, 60, "the pause")
    settle(1.5)  # output layers are updated at most once a second
    show_only(viewer, "validation region", output("live"))
    scroll_to(train, train.status)
    window_shot(viewer, out / "03_training.png")
    train.resume_button.click()

    # 4. Finished: the validation curve and the validation region's labels.
    wait_until(lambda: not train.state.phase.busy, 240, "training to finish")
    if train.state.phase is not Phase.FINISHED:
        sys.exit(f"Training ended {train.state.phase.value}: {train.state.message}")
    wait_until(lambda: output("validation labels") in viewer.layers, 30,
               "the validation layers")
    settle(1.5)
    show_only(viewer, RAW, "validation region", output("validation labels"))
    scroll_to(train, None)  # the curves, down to the best iteration
    window_shot(viewer, out / "04_trained.png")

    # 5. The predict panel: the best checkpoint on the whole image.
    _, predict = viewer.window.add_plugin_dock_widget("napari-dacapo", "DaCapo predict",
                                                      tabify=True)
    wait_until(lambda: predict.info is not None, 30, "the run to be read")
    # Separate objects: the checkpoint and threshold that found the objects best.
    predict.checkpoint_choice.value = next(
        c for c in predict.checkpoint_choice.choices if c.endswith(CRITERION))
    predict.image_choice.value = viewer.layers[RAW]
    settle(0.3)
    if not predict.predict_button.enabled:
        sys.exit(f"Predict is disabled: {predict.reason_disabled()}")
    predict.predict_button.native.click()
    wait_until(lambda: predict.worker is None, 120, "the prediction")
    show_only(viewer, RAW, output(f"labels {RAW}"))
    window_shot(viewer, out / "05_prediction.png")

    # 6. The runs browser with the run selected.
    _, runs = viewer.window.add_plugin_dock_widget("napari-dacapo", "DaCapo runs",
                                                   tabify=True)
    wait_until(lambda: runs.table.rowCount() >= 1, 30, "the runs list")
    runs.table.selectRow(0)
    wait_until(lambda: runs.selected is not None, 30, "the selected run")
    show_only(viewer, output(f"prediction {RAW}"))
    settle(1.0)
    window_shot(viewer, out / "06_runs_browser.png")

    # 7. A large image stored as zarr, predicted blockwise by daisy workers into zarr.
    from qtpy.QtWidgets import QDockWidget

    from napari_dacapo.examples import synthetic_blobs
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        write_zarr_array,
    )

    container = Path(os.environ["NAPARI_DACAPO_ROOT"]) / "large.zarr"
    write_zarr_array(container, "raw", synthetic_blobs((1024, 1024), seed=7)[0],
                     voxel_size=(1, 1))
    large = viewer.open(str(container), plugin="napari-dacapo")[0]
    for dock in viewer.window._qt_window.findChildren(QDockWidget):
        if dock.widget() is predict.native or predict.native.isAncestorOf(dock):
            dock.raise_()
    predict.image_choice.value = large
    predict.checkpoint_choice.value = next(
        c for c in predict.checkpoint_choice.choices if c.endswith(CRITERION))
    predict.blockwise.workers_spin.value = 2
    settle(0.3)
    if not predict.predict_button.enabled:
        sys.exit(f"Predict is disabled: {predict.reason_disabled()}")
    predict.predict_button.native.click()
    wait_until(lambda: predict.blockwise.worker is None, 300, "the blockwise prediction")
    show_only(viewer, large.name, output(f"prediction {large.name}"))
    viewer.reset_view()
    settle(1.0)
    window_shot(viewer, out / "07_blockwise.png")

    viewer.close()


if __name__ == "__main__":
    main()
