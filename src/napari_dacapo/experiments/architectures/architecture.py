"""The Architecture ABC: a torch module that knows its spatial input shape."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from funlib.geometry import Coordinate


class Architecture(torch.nn.Module, ABC):
    """A network body. Subclasses give their shapes; :meth:`output_shape_for` is analytic so
    nobody needs a dummy forward pass to learn the output shape (DaCapo does one)."""

    @property
    @abstractmethod
    def input_shape(self) -> Coordinate:
        """Spatial input shape for training (no batch or channel axes)."""

    @property
    def eval_shape_increase(self) -> Coordinate:
        """How much larger than :attr:`input_shape` the input is when predicting."""
        return Coordinate((0,) * self.dims)

    @property
    @abstractmethod
    def num_in_channels(self) -> int: ...

    @property
    @abstractmethod
    def num_out_channels(self) -> int: ...

    @property
    def dims(self) -> int:
        return len(self.input_shape)

    def scale(self, input_voxel_size: Coordinate) -> Coordinate:
        """Voxel size of the output for a given input voxel size (upsampling shrinks it)."""
        return input_voxel_size

    @abstractmethod
    def output_shape_for(self, input_shape: Coordinate) -> Coordinate:
        """Spatial output shape for a spatial input shape, computed without running the
        network. Raises ``ValueError`` (naming the nearest valid shapes) when the input
        shape does not fit the network's downsampling."""

    def check_input_shape(self, input_shape: Coordinate) -> None:
        """Raise ``ValueError`` with the nearest valid shapes if ``input_shape`` is invalid."""
        self.output_shape_for(Coordinate(input_shape))
