"""Where runs live on disk: configs, checkpoints, stats, scores and arrays."""

from .array_store import LocalArrayIdentifier, LocalContainerIdentifier
from .file_store import CheckpointError, FileStore, RunDeletedError, RunLockedError, StoreError

__all__ = [
    "FileStore",
    "StoreError",
    "CheckpointError",
    "RunLockedError",
    "RunDeletedError",
    "LocalContainerIdentifier",
    "LocalArrayIdentifier",
]
