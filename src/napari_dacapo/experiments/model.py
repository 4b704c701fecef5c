"""A trainable model: an Architecture followed by a prediction head."""

from __future__ import annotations

import torch
from funlib.geometry import Coordinate

from .architectures.architecture import Architecture


class Model(torch.nn.Module):
    """Architecture + prediction head (+ an activation applied in eval mode only, so a
    logits loss trains on raw outputs while prediction sees probabilities)."""

    num_in_channels: int
    num_out_channels: int

    def __init__(
        self,
        architecture: Architecture,
        prediction_head: torch.nn.Module,
        eval_activation: torch.nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        self.prediction_head = prediction_head
        self.chain = torch.nn.Sequential(architecture, prediction_head)
        self.num_in_channels = architecture.num_in_channels
        self.input_shape = Coordinate(architecture.input_shape)
        self.eval_input_shape = self.input_shape + architecture.eval_shape_increase
        self.num_out_channels, self.output_shape = self.compute_output_shape(self.input_shape)
        self.eval_activation = eval_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.chain(x)
        if not self.training and self.eval_activation is not None:
            result = self.eval_activation(result)
        return result

    def compute_output_shape(self, input_shape: Coordinate) -> tuple[int, Coordinate]:
        """Channels and spatial output shape for a spatial input shape, computed from the
        architecture's geometry (a 1x1 head keeps the spatial shape)."""
        assert isinstance(input_shape, Coordinate), "input_shape must be a Coordinate"
        spatial = self.architecture.output_shape_for(input_shape)
        channels = _out_channels(self.prediction_head, self.architecture.num_out_channels)
        return channels, Coordinate(spatial)

    def scale(self, voxel_size: Coordinate) -> Coordinate:
        """Output voxel size for an input voxel size."""
        assert isinstance(voxel_size, Coordinate), "voxel_size must be a Coordinate"
        return self.architecture.scale(voxel_size)


def _out_channels(head: torch.nn.Module, default: int) -> int:
    channels = default
    for module in head.modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            channels = module.out_channels
    return channels
