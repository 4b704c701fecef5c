"""The training controller and the run controls while a worker ends: Train waits, with
the reason shown, until the worker has ended (a last live prediction after Stop), and a
validation in progress is said as such, also after Stop."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from napari_dacapo.gui.controller import TrainingController, WorkerFinishing
from napari_dacapo.gui.state import Phase, TrainingState
from napari_dacapo.gui.train_status import StatusPanel
from napari_dacapo.store.file_store import FileStore
from napari_dacapo.train import CheckpointSaved, IterationDone, RunStarted, RunStopped

WAIT_MS = 60_000


@pytest.fixture
def panel(qtbot, tmp_path):
    """Run controls on a state, and the controller that trains it."""
    state = TrainingState()
    status = StatusPanel(state)
    qtbot.addWidget(status)
    controller = TrainingController(state, FileStore(tmp_path / "runs"))
    yield status, controller
    controller.shutdown()


def test_train_waits_until_the_worker_has_ended_after_stop(panel, qtbot, monkeypatch):
    status, controller = panel
    state = status.state
    release = threading.Event()

    def events(config, store, stop, live, display, train_until):
        yield RunStarted("run", 0, 100, "cpu (fp32)")
        iteration = 0
        while not stop.is_set():
            yield IterationDone(iteration, 0.5, 0.01, 10.0)
            iteration += 1
            time.sleep(0.005)
        yield CheckpointSaved(iteration)
        yield RunStopped(iteration)
        yield WorkerFinishing("the live prediction of the final model")
        release.wait(WAIT_MS / 1000)  # the last live prediction (seconds for a large view)

    monkeypatch.setattr("napari_dacapo.gui.controller.training_events", events)
    assert controller.start(SimpleNamespace(name="run", num_iterations=100))
    qtbot.waitUntil(lambda: state.iteration >= 2, timeout=WAIT_MS)
    controller.stop()
    qtbot.waitUntil(lambda: "live prediction" in state.finishing, timeout=WAIT_MS)
    # The run has stopped, but its worker has not ended: Train says why it waits.
    assert controller.running
    assert state.phase is Phase.STOPPING and state.outcome is Phase.STOPPED
    assert not status.train_button.isEnabled()
    assert status.reason.text().startswith(
        "Stopping: finishing the live prediction of the final model")
    assert status.train_button.toolTip() == status.reason.text()
    assert not status.stop_button.isEnabled() and not status.pause_button.isEnabled()
    assert status.message.text().startswith("stopped at iteration")
    release.set()
    qtbot.waitUntil(lambda: state.phase is Phase.STOPPED, timeout=WAIT_MS)
    assert not controller.running
    assert status.train_button.isEnabled() and status.reason.text() == ""
    assert state.finishing == "" and state.outcome is None


def test_stop_during_validation_says_it_waits_for_the_validation(
    panel, qtbot, monkeypatch, tmp_path
):
    from conftest import tiny_config

    import napari_dacapo.validate

    status, controller = panel
    state = status.state
    release = threading.Event()
    real = napari_dacapo.validate.validate_run

    def slow_validation(*args, **kwargs):
        release.wait(WAIT_MS / 1000)  # a large validation volume
        return real(*args, **kwargs)

    monkeypatch.setattr(napari_dacapo.validate, "validate_run", slow_validation)
    messages: list[str] = []
    state.events.message.connect(messages.append)
    controller.start(tiny_config(iterations=6, validation_interval=3))
    qtbot.waitUntil(lambda: state.message == "validating iteration 3 ...", timeout=WAIT_MS)
    assert messages[-2] == "checkpoint saved at iteration 3"
    assert status.message.text() == "training: validating iteration 3 ..."
    controller.stop()
    assert state.phase is Phase.STOPPING
    assert status.message.text() == "stopping after the validation in progress ..."
    assert status.reason.text().startswith("Stopping: finishing the validation in progress")
    assert not status.train_button.isEnabled()
    release.set()
    qtbot.waitUntil(lambda: state.phase is Phase.STOPPED, timeout=WAIT_MS)
    assert state.iteration == 3 and "validated iteration 3" in messages
    assert status.train_button.isEnabled()


def test_a_diverged_run_shows_its_nan_loss_and_no_advice_to_resume(panel, qtbot, monkeypatch):
    """A diverged run's error says what to do (a new run, a lower learning rate): the
    panel does not add 'press Train again, the run resumes', which would diverge again."""
    import math

    from napari_dacapo.experiments.trainers import TrainingDiverged
    from napari_dacapo.gui import controller as controller_module

    status, controller = panel
    state = status.state

    def events(config, store, stop, live, display, train_until):
        yield RunStarted("run", 0, 100, "cpu (fp32)")
        yield IterationDone(0, 0.5, 0.01, 10.0)
        raise TrainingDiverged("Training stopped at iteration 1: its loss is nan. Fix: train "
                               "a new run with a lower learning_rate.")

    shown = []
    monkeypatch.setattr(controller_module, "show_error", shown.append)
    monkeypatch.setattr("napari_dacapo.gui.controller.training_events", events)
    assert controller.start(SimpleNamespace(name="run", num_iterations=100))
    # `running` ends in the worker thread (finished, direct connection) before the GUI
    # thread has handled the queued events: wait for the GUI's own end of the run.
    qtbot.waitUntil(lambda: state.phase is Phase.CRASHED and not controller.running,
                    timeout=WAIT_MS)
    assert math.isnan(state.last_loss)
    assert shown and "train a new run" in shown[0] and "press Train again" not in shown[0]


def test_a_run_locked_by_a_closed_panel_here_is_said_to_be_stopping_here(
        panel, qtbot, monkeypatch, tmp_path):
    """The run's lock names its holder's pid: napari's own while a closed panel's run
    stops. The refusal says so, not 'another process'."""
    from napari_dacapo.gui import controller as controller_module
    from napari_dacapo.store import RunLockedError

    status, closing = panel
    release = threading.Event()

    def stops_slowly(config, store, stop, live, display, train_until):
        yield RunStarted("run", 0, 100, "cpu (fp32)")
        while not stop.is_set():
            yield IterationDone(0, 0.5, 0.01, 10.0)
            time.sleep(0.005)
        release.wait(WAIT_MS / 1000)  # the last iteration and its checkpoint
        yield RunStopped(1)

    def locked(config, store, stop, live, display, train_until):
        raise RunLockedError("Run 'run' is being trained by another process (pid 1).")
        yield

    shown = []
    monkeypatch.setattr(controller_module, "show_error", shown.append)
    monkeypatch.setattr(controller_module, "training_events", stops_slowly)
    assert closing.start(SimpleNamespace(name="run", num_iterations=100))
    qtbot.waitUntil(lambda: status.state.iteration >= 1, timeout=WAIT_MS)
    began = time.monotonic()
    closing.close()  # its panel was closed: stop, without waiting
    assert time.monotonic() - began < 1.0 and closing.running

    state = TrainingState()
    reopened = TrainingController(state, FileStore(tmp_path / "runs"))
    monkeypatch.setattr(controller_module, "training_events", locked)
    assert reopened.start(SimpleNamespace(name="run", num_iterations=100))
    qtbot.waitUntil(lambda: state.phase is Phase.CRASHED and not reopened.running,
                    timeout=WAIT_MS)
    assert "still stopping in this napari" in shown[-1], shown
    assert "another process" not in shown[-1] and "another process" not in state.message
    release.set()
    assert closing.shutdown()  # napari quitting still waits for the checkpoint
    reopened.shutdown()


def test_continue_says_why_it_is_disabled_while_a_run_trains(panel, qtbot, monkeypatch):
    """Continue's reason was computed before Train was pressed ("not stored yet: press
    Train first") and stayed while the run trained: it says that the run trains."""
    status, controller = panel
    state = status.state
    status.set_continue_reason("Run 'run' is not stored yet: press Train first.")

    def events(config, store, stop, live, display, train_until):
        yield RunStarted("run", 0, 100, "cpu (fp32)")
        iteration = 0
        while not stop.is_set():
            yield IterationDone(iteration, 0.5, 0.01, 10.0)
            iteration += 1
            time.sleep(0.005)
        yield RunStopped(iteration)

    monkeypatch.setattr("napari_dacapo.gui.controller.training_events", events)
    assert controller.start(SimpleNamespace(name="run", num_iterations=100))
    qtbot.waitUntil(lambda: state.iteration >= 1, timeout=WAIT_MS)
    assert not status.continue_button.isEnabled()
    assert status.continue_button.toolTip() == (
        "Run 'run' is training in this panel; Continue is enabled when its training has "
        "ended.")
    controller.pause()
    qtbot.waitUntil(lambda: state.phase is Phase.PAUSED, timeout=WAIT_MS)
    assert "Run 'run' is paused in this panel" in status.continue_button.toolTip()
    controller.stop()
    assert status.continue_button.toolTip().startswith(
        "Stopping: finishing the current iteration and its checkpoint ...; Continue is "
        "enabled when it has ended.")
    qtbot.waitUntil(lambda: state.phase is Phase.STOPPED and not controller.running,
                    timeout=WAIT_MS)
    # Ended: the panel's own reason again (it refreshes it then).
    assert status.continue_button.toolTip() == "Run 'run' is not stored yet: press Train first."


def test_a_sparse_annotation_is_one_warning_notification_per_training(panel, qtbot,
                                                                      monkeypatch):
    """Batches made in a worker process logged 'No location among 50 tries ...' to
    stderr only: the training loop warns it, once per training, and napari shows it."""
    from conftest import sparse_config

    from napari_dacapo.gui import controller as controller_module

    status, controller = panel
    state = status.state
    config = sparse_config("sparse", 4, prefetch_worker="process")
    shown: list[str] = []
    monkeypatch.setattr(controller_module, "show_warning", shown.append)
    assert controller.start(config)
    qtbot.waitUntil(lambda: state.phase is Phase.FINISHED and not controller.running,
                    timeout=WAIT_MS)
    said = [s for s in shown if s.startswith("No location among 50 tries had 50% of its")]
    assert len(said) == 1, shown
    assert said[0].endswith("Annotate more densely or lower min_masked.")
