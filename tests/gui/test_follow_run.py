"""The runs browser follows a run that another process trains: its curves, best checkpoint
and latest snapshot layers refresh, it never writes to the store it reads, and a run that
is not the training panel's to train (locked by another process, or in another store)
cannot be continued from it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config

from napari_dacapo.gui.layers import layer_name
from napari_dacapo.gui.run_follow import latest_snapshot
from napari_dacapo.gui.runs_widget import RunsWidget
from napari_dacapo.store.file_store import FileStore

pytestmark = pytest.mark.gui

#: Audit events of calls that change files (besides opening one for writing).
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.utime",
           "os.chmod", "os.chown", "os.truncate", "os.link", "os.symlink", "shutil.copyfile",
           "shutil.move"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_watched: list[tuple[Path, list[str]]] = []


def _audit(event: str, args: tuple) -> None:
    if not _watched or (event != "open" and event not in CHANGES):
        return
    if event == "open" and not (isinstance(args[2], int) and args[2] & WRITE_FLAGS):
        return
    for path in args[:2] if event == "os.rename" else args[:1]:
        if isinstance(path, (str, os.PathLike)):
            for root, found in _watched:
                if Path(os.path.abspath(path)).is_relative_to(root):
                    found.append(f"{event} {path}")


sys.addaudithook(_audit)  # hooks cannot be removed: it records only while a test watches


@contextlib.contextmanager
def changes_by_this_process(root: Path):
    """Every file this process (any of its threads) creates, opens for writing, renames,
    removes or touches under ``root`` while the block runs."""
    found: list[str] = []
    _watched.append((root, found))
    try:
        yield found
    finally:
        _watched.remove((root, found))


def listing(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def select(widget, qtbot, row=0):
    widget.table.selectRow(row)
    qtbot.waitUntil(lambda: widget.selected is not None, timeout=20_000)


def test_follows_a_run_training_in_another_process(make_napari_viewer, qtbot, tmp_path,
                                                   monkeypatch):
    root = tmp_path / "cluster"
    monkeypatch.setenv("NAPARI_DACAPO_ROOT", str(root))  # also the training panel's store
    FileStore(root).store_run_config(
        tiny_config(iterations=60, validation_interval=30, snapshot_interval=10))
    viewer = make_napari_viewer()
    with changes_by_this_process(root) as changes:
        widget = RunsWidget(viewer, store=FileStore(root))
        viewer.window.add_dock_widget(widget)
        widget.timer.setInterval(100)
        qtbot.waitUntil(lambda: widget.table.rowCount() == 1, timeout=20_000)
        select(widget, qtbot)
        assert widget.selected.done == 0 and not widget.finetune_button.isEnabled()
        # Made from a config file, as on a cluster: continued with the CLI only.
        assert not widget.continue_button.isEnabled()
        assert "napari-dacapo train --run tiny_2d" in widget.continue_button.toolTip()
        with open(tmp_path / "train.log", "w") as log:
            trainer = subprocess.Popen(
                [sys.executable, "-m", "napari_dacapo.cli", "train", "--run", "tiny_2d",
                 "--store", str(root)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            # While it trains: the trainer is named, Continue and Fine-tune are off, the
            # curves grow and the latest snapshot shows as layers.
            qtbot.waitUntil(lambda: widget.selected.trainer == str(trainer.pid), timeout=60_000)
            assert not widget.continue_button.isEnabled()
            assert not widget.finetune_button.isEnabled()
            assert f"another process (pid {trainer.pid})" in widget.continue_button.toolTip()
            qtbot.waitUntil(lambda: 0 < widget.selected.done < 60, timeout=60_000)
            assert "training in process" in widget.follow_label.text()
            snapshot = layer_name("tiny_2d", "snapshot raw")
            qtbot.waitUntil(lambda: snapshot in viewer.layers, timeout=60_000)
            assert trainer.wait(timeout=120) == 0, (tmp_path / "train.log").read_text()
        finally:
            trainer.kill()
            trainer.wait()
        qtbot.waitUntil(lambda: widget.selected.trainer is None
                        and widget.selected.done == 60, timeout=20_000)
        store = FileStore(root)
        qtbot.waitUntil(lambda: widget.snapshot == latest_snapshot(store, "tiny_2d"),
                        timeout=20_000)
        written = listing(root)
        assert widget.finetune_button.isEnabled() and not widget.continue_button.isEnabled()
        assert widget.continue_button.toolTip().startswith(
            "Run 'tiny_2d' was made from a config file, not from napari layers: train it "
            f"further with 'napari-dacapo train --run tiny_2d --store {root} --iterations N'.")
        widget.plots.redraw()
        xs, _ = widget.plots.loss_curve.getData()
        np.testing.assert_array_equal(xs, np.arange(60))
        iteration, _ = widget.selected.best["blob__dice"]
        assert "best checkpoint: blob__dice " in widget.follow_label.text()
        assert f"@ {iteration}" in widget.follow_label.text()
        assert viewer.layers[snapshot].metadata["iteration"] == widget.snapshot[0]
        # More looks, and all outputs opened: still nothing written.
        widget.open_button.click()
        qtbot.waitUntil(lambda: layer_name("tiny_2d", "validation labels") in viewer.layers,
                        timeout=20_000)
        qtbot.wait(300)
    assert changes == []
    assert listing(root) == written


_HOLD_LOCK = """
import sys, time
from napari_dacapo.store import FileStore
with FileStore(sys.argv[1]).lock("tiny_2d"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_continue_is_off_while_another_process_trains_the_run(make_napari_viewer, qtbot,
                                                              trained_store):
    widget = RunsWidget(make_napari_viewer(), store=trained_store)
    widget.timer.setInterval(50)
    qtbot.waitUntil(lambda: widget.table.rowCount() == 1, timeout=20_000)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(trained_store.root)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        select(widget, qtbot)
        assert widget.selected.trainer == str(holder.pid)
        for button in (widget.continue_button, widget.finetune_button):
            assert not button.isEnabled()
            assert button.toolTip() == (
                f"Run 'tiny_2d' is being trained by another process (pid {holder.pid}); it "
                f"is only followed here until that process ends.")
        assert widget.open_button.isEnabled()  # reading its outputs is fine
        widget.continue_run()  # refused even when called directly
        assert widget.selected.trainer == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    qtbot.waitUntil(widget.finetune_button.isEnabled, timeout=10_000)  # the lock died with it
    assert widget.selected.trainer is None


def test_another_store_folder_is_listed_and_only_followed(make_napari_viewer, qtbot,
                                                         trained_store, tmp_path):
    other = tmp_path / "shared"
    FileStore(other)  # opening a store creates nothing
    assert not other.exists()
    shutil.copytree(trained_store.root, other)
    before = listing(other)
    widget = RunsWidget(make_napari_viewer(), store=FileStore(tmp_path / "empty"))
    qtbot.waitUntil(lambda: "No runs stored" in widget.status.text(), timeout=10_000)
    assert not (tmp_path / "empty").exists()
    with changes_by_this_process(other) as changes:
        widget.store_edit.value = other  # as if chosen in the folder dialog
        qtbot.waitUntil(lambda: widget.table.rowCount() == 1, timeout=10_000)
        assert widget.store.root == other
        select(widget, qtbot)
        reason = widget.continue_button.toolTip()
        assert not widget.continue_button.isEnabled() and not widget.finetune_button.isEnabled()
        assert reason.startswith(f"Runs in {other} are only followed here: the training panel "
                                 f"stores runs in {trained_store.root}.")
        assert f"napari-dacapo train --run tiny_2d --store {other}" in reason
        assert widget.open_button.isEnabled()
        assert "Iteration 6 of 6 (not training)" in widget.follow_label.text()
    assert changes == [] and listing(other) == before


def test_listing_the_runs_again_reads_only_those_that_changed(trained_store, monkeypatch):
    """What the browser's timer does every few seconds: list the store folder, and read
    only the runs that appeared or whose files changed (not the one it follows)."""
    from napari_dacapo.gui import run_info
    from napari_dacapo.gui.run_info import read_runs

    config = trained_store.retrieve_run_config("tiny_2d")
    for i in range(19):
        trained_store.store_run_config(config.replace(name=f"run_{i:02}"))
    reads = []
    read_run_info = run_info.read_run_info
    monkeypatch.setattr(run_info, "read_run_info",
                        lambda store, name, **kw: reads.append(name) or read_run_info(
                            store, name, **kw))
    first = read_runs(trained_store)
    assert len(first.names) == len(first.runs) == len(reads) == 20

    reads.clear()
    again = read_runs(trained_store, first.stamps)
    assert again.names == first.names and again.stamps == first.stamps
    assert reads == [] and again.runs == {}

    stats = trained_store.retrieve_training_stats("tiny_2d")
    trained_store.store_training_stats("run_03", stats)  # trained elsewhere meanwhile
    (trained_store.run_dir("run_05") / "config.yaml").write_text("name: run_05\n")  # damaged
    later = read_runs(trained_store, again.stamps, skip="tiny_2d")
    assert reads == ["run_03", "run_05"] and "tiny_2d" not in later.stamps
    assert later.runs["run_03"].done == 6 and later.runs["run_05"].startswith("unreadable: ")
    assert later.names == first.names


def test_the_write_audit_sees_writes(tmp_path):
    """The control for the tests above: what they count as writing is seen."""
    import zarr

    with changes_by_this_process(tmp_path) as changes:
        (tmp_path / "a.json").write_text("{}")
        os.replace(tmp_path / "a.json", tmp_path / "b.json")
        zarr.open_array(tmp_path / "c.zarr", mode="w", shape=(2,), dtype="u1")[:] = 1
        seen = len(changes)
        (tmp_path / "b.json").read_text()  # reading is not writing
        zarr.open_array(tmp_path / "c.zarr", mode="r")[:]
    assert {c.split()[0] for c in changes} >= {"open", "os.rename", "os.mkdir"}
    assert any("c.zarr" in c for c in changes) and len(changes) == seen
