"""Predictor ABC: makes the model's head, and the training target and weight from labels."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import torch
from funlib.geometry import Coordinate

if TYPE_CHECKING:
    from napari_dacapo.experiments.architectures.architecture import Architecture
    from napari_dacapo.experiments.model import Model


class Predictor(ABC):
    """Turns ground truth into what the network learns.

    Targets and weights are computed by the trainer *after* augmentation, per sample, on
    numpy arrays whose spatial shape is the network input shape; the trainer then crops them
    to the output ROI. ``gt`` holds integer labels, ``mask`` is 1 where labels are known.
    """

    @property
    @abstractmethod
    def channels(self) -> list[str]:
        """Names of the output channels (used to carry head rows over when fine-tuning)."""

    #: Size of the prediction head's convolution; odd, zero-padded so the head keeps the
    #: architecture's output shape (which :meth:`Architecture.output_shape_for` gives).
    head_kernel_size: int = 1

    @property
    def embedding_dims(self) -> int:
        return len(self.channels)

    def eval_activation(self) -> torch.nn.Module | None:
        """Applied to the output in eval mode only (e.g. sigmoid after a logits loss)."""
        return None

    def create_model(self, architecture: Architecture) -> Model:
        from napari_dacapo.experiments.model import Model

        conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[architecture.dims]
        head = conv(
            architecture.num_out_channels,
            self.embedding_dims,
            kernel_size=self.head_kernel_size,
            padding=self.head_kernel_size // 2,
        )
        return Model(architecture, head, eval_activation=self.eval_activation())

    @abstractmethod
    def create_target(self, gt: np.ndarray, voxel_size: Coordinate) -> np.ndarray:
        """Target ``(channels, *spatial)`` float32 from labels ``gt`` ``(*spatial)``."""

    @abstractmethod
    def create_weight(
        self,
        gt: np.ndarray,
        target: np.ndarray,
        mask: np.ndarray,
        voxel_size: Coordinate,
    ) -> np.ndarray:
        """Per-voxel loss weight ``(channels, *spatial)`` float32; zero where ``mask`` is 0."""
