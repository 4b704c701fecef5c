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


def layer_leading_channels(layer: Any) -> bool:
    """:func:`leading_channels` of an image layer, from its shape, scale, translate and
    the axis names our reader recorded: how the training panel reads its first axis."""
    return leading_channels(layer_data(layer).shape, layer.scale, layer.translate,
                            getattr(layer, "metadata", {}).get("axis_names"))


def channels_last(layer: Any) -> bool:
    """Whether ``layer`` (not RGB) looks like channels-last data, e.g. (Y, X, 2): its last
    axis is short (at most :data:`MAX_CHANNELS`) and shorter than the one before it.
    napari-dacapo reads channels from the first axis only, in training and prediction."""
    shape = layer_data(layer).shape
    return (not getattr(layer, "rgb", False) and len(shape) >= 3
            and shape[-1] <= MAX_CHANNELS and shape[-1] < shape[-2])


def channels_last_problem(layer: Any, channels: int | None = None) -> str:
    """Why a :func:`channels_last` image cannot be used as it is, and how to move its
    channels first: to train on (``channels`` None), or to predict with a network that
    takes ``channels``."""
    shape = tuple(layer_data(layer).shape)
    data = f"viewer.layers['{layer.name}'].data"
    move = f"{data} = np.moveaxis({data}, -1, 0)"
    split = f"viewer.add_image({data}, channel_axis=-1)"
    what = "The raw image" if channels is None else "Image"
    if channels is None:
        fix = (f"Move them first, e.g. in napari's console (the >_ button): {move}; or, to "
               f"train on one channel, add one layer per channel: {split}.")
    elif channels == 1:
        fix = (f"The network takes 1 channel: add one layer per channel, e.g. in napari's "
               f"console (the >_ button): {split}, and pick one.")
    elif channels == shape[-1]:
        fix = (f"The network takes {channels}: move them first, e.g. in napari's console "
               f"(the >_ button): {move}.")
    else:
        fix = (f"The network takes {channels} channels: pick an image with {channels}, "
               f"channels first.")
    return (f"{what} '{layer.name}' has shape {shape}: its last axis looks like "
            f"{shape[-1]} channels, but napari-dacapo reads channels from the first axis "
            f"(channels, [z,] y, x). {fix}")


#: Axis labels that say an axis is time (napari's ``layer.axis_labels``, or the axis names
#: the reader records in a layer's metadata).
TIME_AXIS_NAMES = ("t", "time", "frame", "frames")


def _first_axis_names(layer: Any) -> list[str]:
    """What the layer calls its first axis: napari's axis label (default '-3' and so on)
    and the axis name our reader recorded, lowercase."""
    names = [*(getattr(layer, "axis_labels", None) or ())[:1],
             *(getattr(layer, "metadata", {}).get("axis_names") or ())[:1]]
    return [str(name).strip().lower() for name in names]


def first_axis_is_time(layer: Any) -> bool:
    """Whether the layer's own axis labels (or the axis names our reader recorded) call
    its first axis time, or napari's units for it are a time unit."""
    if any(name in TIME_AXIS_NAMES for name in _first_axis_names(layer)):
        return True
    try:
        return str(layer.units[0].dimensionality) == "[time]"
    except (AttributeError, IndexError, TypeError):
        return False


def frame_split_fix(layer: Any, labels: bool = False, frame: int = 0) -> str:
    """How to put ``frame`` of a stack layer into a layer of its own: in napari's console
    (keeping the layer's scale and translate), or for an image by Split Stack (napari's
    layer menu offers it for images only)."""
    spatial = layer_data(layer).ndim - 1
    add = "add_labels" if labels else "add_image"
    ref = f"viewer.layers['{layer.name}']"
    place = ""
    if any(float(s) != 1.0 for s in layer.scale[-spatial:]):
        place += f", scale={ref}.scale[1:]"
    if any(float(t) != 0.0 for t in layer.translate[-spatial:]):
        place += f", translate={ref}.translate[1:]"
    fix = (f"in napari's console (the >_ button): viewer.{add}({ref}.data[{frame}]{place}, "
           f"name='{layer.name} frame {frame}') for frame {frame}")
    return fix if labels else f"{fix}, or right-click the layer > Split Stack"


def painted_frames(layer: Any, most: int = 2**26) -> list[int] | None:
    """The indices along the first axis of a labels ``layer`` that hold a label; None
    for a layer not in memory or larger than ``most`` voxels (not read on the GUI
    thread)."""
    data = layer_data(layer)
    if not isinstance(data, np.ndarray) or data.ndim < 2 or data.size > most:
        return None
    return [int(i) for i in np.flatnonzero(data.reshape(len(data), -1).any(axis=1))]


def short_first_axis(shape: Sequence[int]) -> bool:
    """Whether a stack's first axis is too short to be a volume's z (:data:`MAX_CHANNELS`
    or fewer): a few frames, not slices for a 3D network."""
    return len(shape) >= 3 and shape[0] <= MAX_CHANNELS


def stack_as_volume(layer: Any) -> bool:
    """Whether a 3D (not RGB) image that a 3D network reads as a volume may be a time
    series or a stack of 2D frames instead: its first axis is labelled time, or it is
    short compared with the others (a quarter of them or less) and nothing says it is z
    (no z spacing as scale, no translate, not named 'z')."""
    shape = tuple(layer_data(layer).shape)
    if getattr(layer, "rgb", False) or len(shape) != 3:
        return False
    if first_axis_is_time(layer):
        return True
    placed = float(layer.scale[0]) != 1.0 or float(layer.translate[0]) != 0.0
    return (not placed and "z" not in _first_axis_names(layer)
            and shape[0] * 4 <= min(shape[1:]))


def dimensions_problem(layer: Any, dims: int) -> str:
    """Why ``layer`` (labels, a mask, or an image read without channels) does not fit a
    ``dims``-D run, with the fix: a layer with one axis more whose first axis is labelled
    time or is short is a stack of frames, for which a 3D network is no answer."""
    shape = tuple(layer_data(layer).shape)
    ndim = len(shape)
    head = f"Layer '{layer.name}' has {ndim} dimensions {shape} but the run is {dims}D"
    if ndim != dims + 1:
        return (f"{head}. Pick a {dims}D layer, or change the network's input shape to "
                f"{ndim}D.")
    labels = hasattr(layer, "selected_label")  # a Labels layer (napari not imported here)
    frames = painted_frames(layer) if labels else None
    frame = frames[0] if frames else 0
    painted = ""
    if frames and len(frames) <= 3:
        painted = f"; labels are painted on frame {', '.join(map(str, frames))}"
        painted += " only" if len(frames) < shape[0] else ""
    split = (f"split the frame {'you painted' if labels else 'to use'} into its own layer and "
             f"pick it, {frame_split_fix(layer, labels, frame)}")
    if labels:
        split += (f"; split the image likewise (right-click it > Split Stack) and pick its "
                  f"frame {frame} as the raw image")
    if first_axis_is_time(layer) or short_first_axis(shape):
        why = ("its first axis is labelled time" if first_axis_is_time(layer) else
               "its first axis is short, like time or a stack of frames")
        return (f"{head}: {why} ({shape[0]} {dims}D frames{painted}), and a {dims}D run "
                f"learns from single frames. To train on a frame, {split}.")
    return (f"{head}. If its first axis is time or a stack of {dims}D frames{painted}, "
            f"{split}. If it is a volume, change the network's input shape to {ndim}D (a "
            f"{ndim}D preset).")


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
            raise ValueError(dimensions_problem(layer, dims))
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
