"""Where a run's arrays live: a zarr container and a dataset inside it
(``dacapo.store.array_store``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalArrayIdentifier:
    """One array: the ``dataset`` path inside the zarr ``container``.

    Attributes
    ----------
    container
        Path of the zarr container (e.g. ``<run>/snapshots.zarr``).
    dataset
        Path of the array inside the container (e.g. ``"100/raw"``).
    """

    container: Path
    dataset: str


@dataclass(frozen=True)
class LocalContainerIdentifier:
    """A zarr container on the local file system, holding several arrays.

    Attributes
    ----------
    container
        Path of the zarr container.
    """

    container: Path

    def array_identifier(self, dataset: str) -> LocalArrayIdentifier:
        """The array ``dataset`` inside this container."""
        return LocalArrayIdentifier(self.container, dataset)
