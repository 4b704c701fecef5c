"""Predictor ABC: makes the model's head, and the training target and weight from labels."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import torch
from funlib.geometry import Coordinate

if TYPE_CHECKING:
    from ...architectures.architecture import Architecture
    from ...model import Model


class Predictor(ABC):
    """Turns ground truth into what the network learns.

    Targets and weights are computed by the trainer *after* augmentation, per sample, on
    numpy arrays that cover the output ROI grown by :meth:`padding` (within the network
    input); the trainer then crops them to the output ROI. ``gt`` holds integer labels,
    ``mask`` is 1 where labels are known.
    """

    @property
    @abstractmethod
    def channels(self) -> list[str]:
        """Names of the output channels (used to carry head rows over when fine-tuning)."""

    #: True when the target is *local and grid-covariant*: on a labels crop grown by
    #: :meth:`padding` (zeros outside the labels), the target of the output region equals
    #: that region of the target of the whole labels volume zero-padded by :meth:`padding`,
    #: and mirroring or transposing the labels mirrors or transposes the target. The trainer
    #: may then compute the target once per dataset instead of once per sample.
    precomputable_target: bool = False

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
        from ...model import Model

        conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[architecture.dims]
        head = conv(
            architecture.num_out_channels,
            self.embedding_dims,
            kernel_size=self.head_kernel_size,
            padding=self.head_kernel_size // 2,
        )
        return Model(architecture, head, eval_activation=self.eval_activation())

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        """World context per side and axis that the target and weight of a voxel depend on
        (DaCapo's ``padding``); zero by default.

        The trainer computes targets and weights on the labels around the output ROI grown
        by this much, not on the whole network input, because that is often several times
        larger (27 times in the 3D example). A label ``k`` voxels away along an axis is
        included when ``k * voxel_size <= padding``. Too little context silently changes
        the targets near the output border; more only costs time.
        """
        return Coordinate((0,) * len(gt_voxel_size))

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
        region: tuple[slice, ...] | None = None,
    ) -> np.ndarray:
        """Per-voxel loss weight ``(channels, *spatial)`` float32; zero where ``mask`` is 0.

        ``region`` (spatial slices) is the part of the arrays whose weights are used: the
        network output, the rest being context. Statistics such as class balance are taken
        over the known voxels there, so that the weights the loss sees average to one, and
        weights outside it may be left 0. ``None`` means the whole array.
        """
