"""Prediction: run a model over an array tile by tile, with the network's context.

Each output tile is predicted from an input tile grown by the network's context on every
side, so tiles stitch exactly (a valid-padding network sees no tile border). Voxels outside
the raw data are zero-padded.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from funlib.geometry import Coordinate, Roi

from napari_dacapo.experiments.datasplits.datasets.arrays.array import Array, raw_as_float32
from napari_dacapo.experiments.model import Model


@dataclass(frozen=True)
class TileGeometry:
    """World-unit geometry of prediction tiles for one model and input voxel size."""

    input_voxel_size: Coordinate
    output_voxel_size: Coordinate
    input_size: Coordinate  # world units
    output_size: Coordinate
    context: Coordinate  # world units on each side

    @classmethod
    def for_model(cls, model: Model, input_voxel_size: Coordinate, eval_mode: bool = True):
        input_shape = model.eval_input_shape if eval_mode else model.input_shape
        _, output_shape = model.compute_output_shape(Coordinate(input_shape))
        output_voxel_size = model.scale(Coordinate(input_voxel_size))
        input_size = Coordinate(input_shape) * input_voxel_size
        output_size = output_shape * output_voxel_size
        diff = input_size - output_size
        if any(d % 2 for d in diff) or not (diff / 2).is_multiple_of(input_voxel_size):
            raise ValueError(
                f"The network's context {tuple(diff)} (input {tuple(input_size)} minus output "
                f"{tuple(output_size)}, world units) is not an even number of input voxels; "
                f"choose an input_shape whose output is centred on the input."
            )
        return cls(input_voxel_size, output_voxel_size, input_size, output_size, diff / 2)

    def tiles(self, roi: Roi) -> Iterator[tuple[Roi, Roi]]:
        """(input ROI, output ROI) pairs covering ``roi``; the last tiles may overhang."""
        steps = [
            range(b, e, s) for b, e, s in zip(roi.begin, roi.end, self.output_size)
        ]
        for begin in itertools.product(*steps):
            out_roi = Roi(begin, self.output_size)
            yield out_roi.grow(self.context, self.context), out_roi


def inference_context(device: torch.device, autocast_dtype: torch.dtype | None):
    if autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=autocast_dtype)


def predict_array(
    model: Model,
    raw: Array,
    roi: Roi | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> tuple[np.ndarray, Roi, Coordinate]:
    """Predict ``roi`` (world units; default: all of ``raw``) tile by tile.

    Returns the prediction ``(channels, *spatial)`` as float32, its ROI and voxel size.
    The model is put in eval mode (its eval activation applies).
    """
    device = torch.device(device)
    geometry = TileGeometry.for_model(model, raw.voxel_size)
    roi = (roi or raw.roi).snap_to_grid(geometry.output_voxel_size, mode="grow")
    channels = model.num_out_channels
    out = np.zeros((channels, *(roi.shape / geometry.output_voxel_size)), dtype=np.float32)
    memory_format = _memory_format(raw.dims) if channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), inference_context(device, autocast_dtype):
            for in_roi, out_roi in geometry.tiles(roi):
                data = raw_as_float32(raw.read(in_roi))
                if raw.channel_dims == 0:
                    data = data[None]
                x = torch.from_numpy(np.ascontiguousarray(data))[None].to(device)
                x = x.contiguous(memory_format=memory_format)
                y = model(x)[0].float().cpu().numpy()
                write = out_roi.intersect(roi)
                src = _slices(write, out_roi.begin, geometry.output_voxel_size)
                dst = _slices(write, roi.begin, geometry.output_voxel_size)
                out[(slice(None), *dst)] = y[(slice(None), *src)]
    finally:
        model.train(was_training)
    return out, roi, geometry.output_voxel_size


def _slices(roi: Roi, origin: Coordinate, voxel_size: Coordinate) -> tuple[slice, ...]:
    begin = (roi.begin - origin) / voxel_size
    shape = roi.shape / voxel_size
    return tuple(slice(int(b), int(b + s)) for b, s in zip(begin, shape))


def _memory_format(dims: int) -> torch.memory_format:
    return {2: torch.channels_last, 3: torch.channels_last_3d}.get(dims, torch.contiguous_format)
