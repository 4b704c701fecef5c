"""Fixtures of the GUI tests: a tiny run trained once per session, copied per test.

``tests/gui`` is a package (it has ``__init__.py``), so ``from conftest import
tiny_config`` in these modules still finds ``tests/conftest.py``.
"""

from __future__ import annotations

import shutil

import pytest

from napari_dacapo.store.file_store import FileStore


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory):
    """The root of a store holding ``tiny_2d``, trained (6 iterations, validated at 3 and
    6, snapshots every 2) once for the whole session. Read it only: use
    ``trained_store`` to change a run."""
    from conftest import tiny_config

    from napari_dacapo.experiments.run import Run
    from napari_dacapo.train import train_run

    root = tmp_path_factory.mktemp("trained") / "runs"
    store = FileStore(root)
    list(train_run(Run(tiny_config(), store=store), store=store))
    return root


@pytest.fixture
def trained_store(trained_runs, tmp_path, monkeypatch):
    """A copy of :func:`trained_runs` for one test (also the default store root)."""
    root = tmp_path / "runs"
    shutil.copytree(trained_runs, root)
    monkeypatch.setenv("NAPARI_DACAPO_ROOT", str(root))
    return FileStore(root)


@pytest.fixture
def predict_panel(make_napari_viewer, trained_store, qtbot):
    """A viewer with the predict panel docked on :func:`trained_store`, its run read."""
    from napari_dacapo.gui.predict_widget import PredictWidget

    viewer = make_napari_viewer()
    widget = PredictWidget(viewer, store=trained_store)
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(lambda: widget.info is not None, timeout=20_000)
    return viewer, widget


@pytest.fixture
def errors(monkeypatch):
    """Error notifications of the training panel and its controller, as text."""
    from napari_dacapo.gui import controller, train_widget

    shown: list[str] = []
    for module in (train_widget, controller):
        monkeypatch.setattr(module, "show_error", shown.append)
    return shown
