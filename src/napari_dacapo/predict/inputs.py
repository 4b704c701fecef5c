"""The input of a prediction with a stored run: a plain array or an array config, checked
against the run's model and given its geometry and intensity rescaling
(:func:`prediction_input`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from funlib.geometry import Coordinate

from napari_dacapo.experiments.datasplits.datasets.arrays.array import (
    Array,
    default_axis_names,
)

from .intensity_scales import (
    _CHECK_INTENSITY_SCALE,
    IntensityScaleWarning,
    intensity_scale_mismatch,
    needs_values,
    own_range_fits,
    sampled_data,
    scale_text,
    training_raw_dtypes,
)
from .training_data import training_intensity_range, training_raw, training_raws
from .voxel_sizes import (
    _CHECK_VOXEL_SIZE,
    VoxelSizeWarning,
    training_voxel_sizes,
    voxel_size_mismatch,
)

if TYPE_CHECKING:
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        IntensityRange,
    )
    from napari_dacapo.experiments.run import Run

__all__ = ["OWN_RANGE", "image_intensity_range", "input_scale_mismatch", "prediction_input",
           "rescale_bounds"]


#: The ``rescale`` that scales an input from its own intensities (see
#: :func:`image_intensity_range`).
OWN_RANGE = "image"


def image_intensity_range(run: Run | str, raw: Any) -> IntensityRange:
    """The intensities of ``raw`` (a numpy, dask or zarr array, or an ArrayConfig) that
    become 0 and 1 when it is predicted with its own range instead of the training data's:
    its 1st-99.8th percentiles over the whole array (every block or region of it is then
    scaled alike), from a bounded sample (:func:`.intensity_range.intensity_range`).

    For an image brighter or dimmer than the data the run learned from, or stored in
    another dtype. The run must have been trained with a range, or on uint8 data without
    one (divided by 255, which spans about 0-1 too); one trained without a range on wider
    integers or floats saw a span of 0-1 that its dtype does not tell.

    Raises
    ------
    ValueError
        If the run was trained without a range on data other than uint8 (or data that
        cannot be opened to see which), or ``raw`` holds no range (a constant image, or
        no finite value).
    """
    from napari_dacapo.checkpoints import load_run
    from napari_dacapo.experiments.datasplits.datasets.arrays.array import SourceArray
    from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import ArrayConfig
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        intensity_range,
    )

    run = load_run(run)[0]  # or a stored run's name, as predict takes
    training = training_raw_dtypes(run) if training_intensity_range(run) is None else None
    if training is not None and not own_range_fits(training):
        how = ("; ".join(scale_text(t) for t in training) if training else
               "its training data cannot be opened to see how they were scaled")
        raise ValueError(
            f"Run '{run.name}' was trained on intensities as stored ({how}), not on a range "
            f"of them, so an image's own range scaled to 0-1 is not what its network "
            f"learned: predict with the training scaling (rescale=True, --intensities "
            f"training), or give the range (rescale=(low, high), --intensities LOW,HIGH)."
        )
    if isinstance(raw, ArrayConfig):
        array = raw.array()
        raw = array.source if isinstance(array, SourceArray) else array.data
    return intensity_range(raw)


def prediction_input(
    run: Run,
    raw: Any,
    voxel_size: Sequence[int] | None = None,
    offset: Sequence[int] | None = None,
    rescale: bool | str | tuple[float, float] = True,
) -> Array:
    """``raw`` as the Array the run's model reads, with geometry and intensity rescaling.

    Parameters
    ----------
    run
        The run whose model will predict.
    raw
        A numpy, dask or zarr array, ``(*spatial)`` or ``(channels, *spatial)`` (the array
        has a channel axis exactly when it has one more dimension than the model), or an
        :class:`ArrayConfig` (which carries its own geometry).
    voxel_size, offset
        World geometry of a plain array (default: the training raw data's voxel size, and
        offset 0). The offset must lie on the voxel grid.
    rescale
        True: rescale intensities as the training raw data was (its
        IntensitiesArrayConfig, if any); False: none; ``(min, max)``: map min to 0 and
        max to 1; ``"image"`` (:data:`OWN_RANGE`): ``raw``'s own range
        (:func:`image_intensity_range`, for a run trained with a range or on uint8
        data). Integer data without a range is divided by its dtype's maximum, as in
        training, floats are used as they are.

    Raises
    ------
    ValueError, TypeError
        Naming the mismatch (dimensions, channels, geometry) and the fix.

    Warns
    -----
    VoxelSizeWarning
        If the input's voxel size is none of the training raw data's (unless it was taken
        from them, the training data cannot be opened, or within
        :func:`unchecked_voxel_size`): the network would see structures at another size
        than it learned. A warning, not an error: it may be meant.
    IntensityScaleWarning
        With ``rescale=True``, if the run was trained without a range and the input's
        intensities reach the network on another scale than its training data's (see
        :func:`input_scale_mismatch`; not within :func:`unchecked_intensity_scale`): e.g.
        a uint16 image on a run trained on uint8 images.
    """
    from napari_dacapo.experiments.datasplits.datasets.arrays.array_config import (
        ArrayConfig,
        NumpyArrayConfig,
    )
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_array_config import (
        IntensitiesArrayConfig,
    )
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        reopened_for_reading,
    )

    model = run.model
    dims, channels = model.architecture.dims, model.num_in_channels
    expected = (
        f"the model of run '{run.name}' takes {dims}D images with {channels} channel(s): "
        f"{'(*spatial) or ' if channels == 1 else ''}(channels, *spatial) with "
        f"{dims} spatial axes"
    )
    checked = True  # whether to compare the input's voxel size with the training data's
    if isinstance(raw, ArrayConfig):
        if voxel_size is not None or offset is not None:
            raise ValueError(
                f"raw is an array config ({type(raw).__name__}), which carries its own "
                f"geometry; set voxel_size and offset on the config instead."
            )
        config = raw
    elif isinstance(raw, Array):
        raise TypeError(
            f"raw is an opened {type(raw).__name__}; pass its data with voxel_size= and "
            f"offset=, or the ArrayConfig that opens it."
        )
    elif all(hasattr(raw, a) for a in ("shape", "dtype", "__getitem__")):
        ndim = len(raw.shape)
        if ndim not in (dims, dims + 1):
            raise ValueError(f"raw has shape {tuple(raw.shape)}, but {expected}.")
        if 0 in tuple(raw.shape):
            raise ValueError(
                f"raw has shape {tuple(raw.shape)}: an empty axis, nothing to predict. Pass "
                f"the image's data."
            )
        shape = tuple(int(n) for n in raw.shape)
        if ndim == dims + 1 and shape[0] != channels and shape[-1] == channels != 1 or (
            ndim == dims + 1 and channels == 1 and shape[-1] in (3, 4) and shape[0] > 4
        ):
            raise ValueError(
                f"raw has shape {shape}: its last axis looks like colour channels, but "
                f"channels come first here, and {expected}. "
                + ("Move them first: numpy.moveaxis(raw, -1, 0)." if channels > 1 else
                   "Convert it to one channel, e.g. raw.mean(axis=-1), or train a run on "
                   "images with these channels.")
            )
        if voxel_size is None:
            known = training_raws(run)
            voxel_size = (known[0] if known else training_raw(
                run, "the voxel size", "Pass voxel_size= explicitly (the input's).")).voxel_size
            checked = False  # the training data's: nothing to compare
        config = NumpyArrayConfig(
            name="input",
            data=reopened_for_reading(raw),
            voxel_size=Coordinate(voxel_size),
            offset=Coordinate(offset if offset is not None else (0,) * dims),
            axis_names=default_axis_names(dims, channels=ndim == dims + 1),
        )
    else:
        raise TypeError(
            f"raw must be a numpy, dask or zarr array (or an ArrayConfig), not "
            f"{type(raw).__name__}."
        )
    if rescale is True:
        bounds = training_intensity_range(run)
    elif rescale is False or rescale is None:
        bounds = None
    elif isinstance(rescale, str):
        if rescale != OWN_RANGE:
            raise ValueError(
                f"rescale={rescale!r} is not understood: give True (the training data's "
                f"scaling), False (none), {OWN_RANGE!r} (the input's own range) or "
                f"(low, high)."
            )
        measured = image_intensity_range(run, config)
        bounds = (measured.low, measured.high)
    else:
        bounds = rescale_bounds(rescale)
    if bounds is not None:
        config = IntensitiesArrayConfig(
            name=f"{config.name}_rescaled", source_array_config=config,
            min=bounds[0], max=bounds[1],
        )
    array = config.array()
    if array.dims != dims:
        raise ValueError(
            f"raw has {array.dims} spatial axes ({', '.join(array.axis_names)}), but "
            f"{expected}."
        )
    if (array.num_channels or 1) != channels:
        stack = (
            f" A stack of {dims}D images must be predicted image by image."
            if channels == 1 and array.channel_dims else ""
        )
        raise ValueError(
            f"raw has {array.num_channels or 1} channel(s) (shape {array.shape}, axes "
            f"{array.axis_names}), but {expected}.{stack}"
        )
    if not array.offset.is_multiple_of(array.voxel_size):
        raise ValueError(
            f"offset {tuple(array.offset)} is not on the voxel grid of voxel_size "
            f"{tuple(array.voxel_size)}; give an offset that is a multiple of the voxel size."
        )
    if rescale is True and bounds is None and _CHECK_INTENSITY_SCALE.get():
        mismatch = input_scale_mismatch(run, array)
        if mismatch:
            warnings.warn(mismatch, IntensityScaleWarning, stacklevel=2)
    if checked and _CHECK_VOXEL_SIZE.get():
        mismatch = voxel_size_mismatch(
            array.voxel_size, training_voxel_sizes(run), run.name
        )
        if mismatch:
            warnings.warn(mismatch, VoxelSizeWarning, stacklevel=2)
    return array


def input_scale_mismatch(run: Run, array: Array) -> str:
    """Why ``array`` (an input opened by :func:`prediction_input`, unscaled) reaches the
    network of ``run``, trained without a recorded range, on another intensity scale than
    the training data did, with the fix ('' when it does not, or that is not known): see
    :func:`.intensity_scales.intensity_scale_mismatch`. A float input of a run trained on
    integers is judged by a bounded sample of its values."""
    from napari_dacapo.experiments.datasplits.datasets.arrays.intensity_range import (
        percentile_range,
    )

    training = training_raw_dtypes(run)
    values = None
    if needs_values(array.dtype, training):
        data = sampled_data(array)
        values = None if data is None else percentile_range(data)
    return intensity_scale_mismatch(array.dtype, training, run.name, values=values)


def rescale_bounds(rescale: Any) -> tuple[float, float]:
    """``rescale=(low, high)`` checked: two finite numbers, low below high."""
    try:
        low, high = (float(v) for v in rescale)
    except (TypeError, ValueError):
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(
            f"rescale={rescale!r} is not a range: give (low, high), two finite numbers with "
            f"low below high (the intensities that become 0 and 1), or True (the training "
            f"data's scaling), False (none) or {OWN_RANGE!r} (the input's own range)."
        )
    return low, high
