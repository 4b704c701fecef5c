"""napari layers <-> arrays with geometry.

A napari layer places voxel ``i`` at ``translate + i * scale`` in world coordinates, with
float scales such as 0.5 (µm). The engine uses integer voxel sizes and offsets (funlib
``Coordinate``), as DaCapo does. All layers of one run are therefore expressed in a common
integer unit: world values are multiplied by one power of ten (:func:`world_factor`) that
makes every scale and translate integral, and outputs are mapped back with the same factor.
No layer data is copied here: arrays wrap ``layer.data`` lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_dacapo.experiments.datasplits.datasets.arrays.array import (
    default_axis_names,
    is_channel_axis,
)
from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import NumpyArrayConfig

MAX_FACTOR = 10**6
#: A first axis this short is taken as channels when an image has one axis too many.
MAX_CHANNELS = 8


def world_factor(values: Sequence[float]) -> int:
    """The smallest power of ten that makes all ``values`` integers (to 1e-6 relative)."""
    factor = 1
    while factor <= MAX_FACTOR:
        if all(abs(v * factor - round(v * factor)) <= 1e-6 * max(1.0, abs(v * factor))
               for v in values):
            return factor
        factor *= 10
    raise ValueError(
        f"Layer scale/translate values {list(values)} cannot be expressed on a common integer "
        f"grid; round the layers' scale and translate (Layer > Properties) to at most six "
        f"decimals."
    )


def layer_geometry_values(layer: Any, dims: int) -> list[float]:
    return [float(v) for v in (*layer.scale[-dims:], *layer.translate[-dims:])]


def layer_data(layer: Any) -> Any:
    """The array of ``layer``: the full-resolution level of a multiscale layer (as the
    plugin's writer saves it). napari's ``MultiScaleData`` is a list of levels that cannot
    be indexed with a tuple of slices, and ``layer.scale`` is the scale of level 0."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def spatial_dims(layer: Any) -> int:
    """Spatial dimensions of a layer (an RGB(A) layer's last axis is its channels)."""
    return layer_data(layer).ndim - (1 if getattr(layer, "rgb", False) else 0)


def leading_channels(
    shape: Sequence[int],
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    axis_names: Sequence[str] | None = None,
) -> bool:
    """Whether the first axis of a (not RGB) image layer of ``shape`` holds channels,
    without a network to say how many spatial axes it has. The plugin's writer saves
    layers by it. It is the training panel's reading from its default 2D network (a short
    first axis is channels, ``SettingsPanel.match_image``), plus what the layer itself says
    about that axis:

    - ``axis_names`` of every axis (the reader records an array's in the layer's
      metadata) decide: a first axis named ``'c^'`` is channels, ``'z'`` is not.
    - Otherwise a 4D image is channels, z, y, x (the engine has at most 3 spatial axes).
    - A 3D image is channels, y, x when its first axis is short (at most
      :data:`MAX_CHANNELS`) and unplaced (``scale`` 1 and ``translate`` 0, as napari and
      the reader give a channel axis), like a (2, Y, X) two-channel image. A (5, Y, X)
      image at unit scale is therefore 5 channels; give its first axis a scale (its z
      spacing) to make it a 5-slice volume.
    """
    if axis_names is not None and len(axis_names) == len(shape):
        return is_channel_axis(str(axis_names[0]))
    if len(shape) == 4:
        return True
    return (
        len(shape) == 3 and shape[0] <= MAX_CHANNELS
        and (scale is None or float(scale[0]) == 1.0)
        and (translate is None or float(translate[0]) == 0.0)
    )


def layer_array_config(
    layer: Any, name: str, dims: int, factor: int, channels_first: bool = False
) -> NumpyArrayConfig:
    """A :class:`NumpyArrayConfig` wrapping ``layer.data`` (no copy; of a multiscale layer,
    its full-resolution level) with its geometry in the common integer unit ``factor``.

    ``dims`` is the number of spatial dimensions the run uses; a layer with one more axis
    has its first axis as channels (``channels_first``), an RGB layer its last.
    """
    data = layer_data(layer)
    if getattr(layer, "rgb", False):
        data = np.moveaxis(np.asarray(data), -1, 0)
        channels = True
    else:
        channels = data.ndim == dims + 1 and channels_first
        if data.ndim != dims + (1 if channels else 0):
            raise ValueError(
                f"Layer '{layer.name}' has {data.ndim} dimensions {tuple(data.shape)} but the "
                f"run is {dims}D. Pick a {dims}D layer, or change the network's input shape "
                f"to {data.ndim}D."
            )
    scale = [round(float(s) * factor) for s in layer.scale[-dims:]]
    translate = [round(float(t) * factor) for t in layer.translate[-dims:]]
    return NumpyArrayConfig(
        name=name,
        data=data,
        voxel_size=scale,
        offset=translate,
        axis_names=default_axis_names(dims, channels=channels),
    )


def napari_geometry(voxel_size: Sequence[int], offset: Sequence[int], factor: int) -> dict:
    """``scale`` and ``translate`` keyword arguments for an output layer."""
    return {
        "scale": tuple(v / factor for v in voxel_size),
        "translate": tuple(o / factor for o in offset),
    }
