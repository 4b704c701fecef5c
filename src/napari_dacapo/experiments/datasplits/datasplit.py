from __future__ import annotations

from abc import ABC

from .datasets.dataset import Dataset


class DataSplit(ABC):
    """Training datasets and (optional) validation datasets."""

    train: list[Dataset]
    validate: list[Dataset] | None
