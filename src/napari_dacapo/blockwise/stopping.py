"""How a blockwise job stops: whole, and quietly.

A job stops on Ctrl-C (SIGINT) and on SIGTERM, which batch systems send at a job's time
limit or preemption (:func:`stop_signals`): its local worker processes end, and
the parent raises :class:`JobStopped` once they are gone, so that a job requeued after
the parent exits never races with workers of the old one still writing blocks. Finished
blocks keep their done markers; a block that was being written has none and is redone
when the job is run again.

The workers follow their parent through a :class:`WorkerLink`, a Unix socket that each
local worker process connects to (:func:`follow_parent`). When the parent closes it, or
ends in any way (even killed outright: the system closes its sockets then), every worker
ends its block there and exits, after ending the launcher of a ``worker_command`` worker
(its process group, with SIGTERM, as a batch system cancels a job).

daisy's scheduler is compiled code that runs the whole step in one call: it aborts its run
on SIGINT only, and writes its diagnostics (every worker exit, with the traceback of the
process that ran it) straight to the process's standard error. A SIGTERM is therefore
turned into a SIGINT for it, and its diagnostics go to the job's log
(:func:`scheduler_output`), not between the progress bar and the job's own report. While it
runs, it takes SIGINT over and notices it only when a worker next reports: a SIGINT sent to
the parent alone lets the blocks in progress finish. Ctrl-C in a terminal reaches the
workers as well, which end at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "JobStopped",
    "StopRequest",
    "WorkerLink",
    "STOP_SIGNALS",
    "end_process_group",
    "follow_parent",
    "scheduler_output",
    "stop_signals",
]

#: The signals that stop a job: Ctrl-C, and the SIGTERM of a batch system.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Longest socket path to bind (Linux allows 107 bytes, macOS 103).
MAX_SOCKET_PATH = 100
#: Seconds the parent waits for its workers to end once told to.
WORKERS_END_S = 10.0
#: Seconds a worker's launcher gets to end after SIGTERM before it is killed.
LAUNCHER_END_S = 5.0


class JobStopped(KeyboardInterrupt):
    """A stop signal ended a blockwise job: its local workers are gone, its finished
    blocks are kept, and running the same job again does the rest.

    A KeyboardInterrupt, so that code that handles Ctrl-C handles it too.

    Attributes
    ----------
    signum
        The signal's number (SIGINT or SIGTERM).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


class StopRequest:
    """The stop signal received while :func:`stop_signals` was active, if any."""

    signum: int | None = None

    def check(self) -> None:
        """Raise :class:`JobStopped` if a stop signal was received."""
        if self.signum is not None:
            raise JobStopped(self.signum)


class WorkerLink:
    """The parent's end of the link to its local workers: a listening Unix socket in a
    private temporary folder (see the module docstring). Closing it ends the workers and
    waits until they are gone; a worker that connects once it is closed ends at once."""

    def __init__(self) -> None:
        self._folder = _link_folder()
        #: Where workers connect (a short path: Unix sockets allow about 100 characters).
        self.address = os.path.join(self._folder, "link")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        self._server.listen(128)
        # accept() is not woken by close() from another thread on every system.
        self._server.settimeout(0.2)
        self._peers: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closing = False
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="napari-dacapo link",
                                        daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                peer, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if self._closing:
                    peer.close()  # the worker sees the link end: it exits
                    return
                self._peers.append(peer)

    def close(self) -> None:
        """End the workers that follow this link and wait (at most :data:`WORKERS_END_S`)
        until each has exited; safe to call from any thread, and more than once."""
        with self._lock:
            first, self._closing = not self._closing, True
            peers, self._peers = self._peers, []
        if not first:
            self._closed.wait(WORKERS_END_S)
            return
        try:
            self._thread.join()
            for peer in peers:
                with contextlib.suppress(OSError):
                    peer.shutdown(socket.SHUT_WR)  # the worker's recv() ends: it exits
            deadline = time.monotonic() + WORKERS_END_S
            for peer in peers:
                # Its end closes when its process has exited.
                with contextlib.suppress(OSError):
                    peer.settimeout(max(0.0, deadline - time.monotonic()))
                    while peer.recv(64):
                        pass
                peer.close()
            self._server.close()
            shutil.rmtree(self._folder, ignore_errors=True)
        finally:
            self._closed.set()

    def __enter__(self) -> WorkerLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _link_folder() -> str:
    """A private folder for the link's socket: in the temporary folder, or in /tmp where
    that path is too long for a Unix socket (107 bytes; a batch system's TMPDIR may be)."""
    folder = tempfile.mkdtemp(prefix="napari-dacapo-")
    if len(os.path.join(folder, "link").encode()) <= MAX_SOCKET_PATH or not os.path.isdir(
        "/tmp"
    ):
        return folder
    os.rmdir(folder)
    return tempfile.mkdtemp(prefix="napari-dacapo-", dir="/tmp")


def follow_parent(address: str, before_exit: Callable[[], None] = lambda: None) -> None:
    """In a worker process: end this process (exit code 0, after ``before_exit``) as soon
    as the parent's :class:`WorkerLink` at ``address`` ends. A link that is gone already
    means that the job is stopping: exit at once (code 1, so that daisy counts it as a
    failed worker and never restarts workers without end)."""
    link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        link.connect(address)
    except OSError:
        os._exit(1)

    def watch() -> None:
        with contextlib.suppress(OSError):
            while link.recv(64):
                pass
        with contextlib.suppress(Exception):
            before_exit()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(0)

    threading.Thread(target=watch, name="napari-dacapo parent", daemon=True).start()


def end_process_group(process: subprocess.Popen[bytes]) -> None:
    """End ``process`` and what it started (its process group, made with
    ``start_new_session``): SIGTERM, then SIGKILL after :data:`LAUNCHER_END_S`."""
    if process.poll() is not None:
        return
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(LAUNCHER_END_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def stop_signals(link: WorkerLink | None = None) -> Iterator[StopRequest]:
    """While active (in the main thread; elsewhere it does nothing), SIGINT and SIGTERM
    are recorded in the yielded :class:`StopRequest` instead of acting at once, and
    ``link`` is closed right away (the workers end), also while daisy's scheduler runs,
    which Python's signal handlers do not interrupt: the system's signal handler writes
    the signal to a socket that a thread here waits on. A SIGTERM is then passed on to
    the scheduler as the SIGINT on which it aborts its run. The previous handlers are
    restored on exit."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)

    def record(signum: int, frame: object) -> None:
        if request.signum is None:
            request.signum = signum

    def watch() -> None:
        acted = False
        with contextlib.suppress(OSError):
            while data := reader.recv(64):
                stops = [s for s in data if s in STOP_SIGNALS]
                if not stops or acted:  # a second signal (SLURM may send two) changes nothing
                    continue
                acted = True
                if request.signum is None:
                    request.signum = stops[0]
                if link is not None:
                    link.close()
                if signal.SIGTERM in stops:
                    os.kill(os.getpid(), signal.SIGINT)

    previous = {number: signal.signal(number, record) for number in STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="napari-dacapo signals", daemon=True)
    watcher.start()
    try:
        yield request
    finally:
        signal.set_wakeup_fd(previous_fd)
        for number, handler in previous.items():
            signal.signal(number, handler)
        writer.close()  # the watcher's recv() ends
        watcher.join()
        reader.close()


@contextlib.contextmanager
def scheduler_output(log_file: Path) -> Iterator[None]:
    """Send what is written straight to the process's standard error (file descriptor 2:
    daisy's compiled scheduler, and Python loggers that write to the original
    ``sys.stderr``) to ``log_file`` meanwhile; ``sys.stderr`` itself (the progress bar,
    warnings said to the user) keeps its destination."""
    try:
        sys.stderr.flush()
        python_on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced by a stream without a file
        python_on_fd2 = False
    log_file.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    previous_stderr = sys.stderr
    try:
        with open(log_file, "ab") as log:
            os.dup2(log.fileno(), 2)
            if python_on_fd2:
                sys.stderr = open(  # noqa: SIM115 (closed below)
                    os.dup(saved), "w", buffering=1, errors="backslashreplace",
                    encoding=getattr(previous_stderr, "encoding", None) or "utf-8",
                )
            try:
                yield
            finally:
                if python_on_fd2:
                    with contextlib.suppress(Exception):
                        sys.stderr.close()
                    sys.stderr = previous_stderr
                os.dup2(saved, 2)
    finally:
        os.close(saved)
