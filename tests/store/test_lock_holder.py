"""FileStore.lock_holder: who trains a run, found without writing to the store, and without
making a trainer that starts at that instant fail."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from napari_dacapo.store.file_store import LOCK_FILE, FileStore


def test_lock_holder_reads_without_creating_anything(tmp_path):
    store = FileStore(tmp_path / "runs")
    assert store.lock_holder("run") is None
    assert not (tmp_path / "runs").exists()  # no folder, no lock file made by looking
    with store.lock("run"):
        assert FileStore(store.root).lock_holder("run") == str(os.getpid())
        before = (store.root / "run" / LOCK_FILE).stat()
    assert store.lock_holder("run") is None
    after = (store.root / "run" / LOCK_FILE).stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.mark.skipif(sys.platform == "win32", reason="shared flock probes are POSIX")
def test_a_trainer_waits_for_a_probe_instead_of_failing(tmp_path):
    import fcntl

    store = FileStore(tmp_path)
    with store.lock("run"):
        pass
    # A probe that holds its shared lock for longer than a real one does (an instant).
    probe = open(store.root / "run" / LOCK_FILE)  # noqa: SIM115
    fcntl.flock(probe.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    threading.Timer(0.05, probe.close).start()
    with store.lock("run"):
        assert store.lock_holder("run") == str(os.getpid())
