"""Atomic file writes: write a temporary file beside the target, then rename over it, so a
crash (or SIGKILL) never leaves a half-written config, stats file or checkpoint."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a temporary binary file in ``path``'s folder, fsync, rename.

    The file gets the mode a plain ``open(path, "w")`` would give it (0o666 less the
    umask), not ``mkstemp``'s 0o600: a store on a shared disk is read by colleagues.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # Windows has no permission bits to give
            os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def umask() -> int:
    """The process's current umask, read without setting it: ``os.umask`` can only read it
    by setting it, for every thread at once, so a file another thread creates meanwhile
    would get the wrong mode. Linux tells it in /proc; elsewhere it is read once."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _umask_once()


@functools.cache
def _umask_once() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
