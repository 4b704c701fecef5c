"""Prediction: run a model over an array tile by tile, with the network's context.

Each output tile is predicted from an input tile grown by the network's context on every
side, so tiles stitch exactly (a valid-padding network sees no tile border). Voxels outside
the raw data are zero-padded, so the prediction covers the whole input, however small.
Neighbouring tiles are read from the input together (see :data:`GROUP_READ_VOXELS`).

Two levels:

- :func:`predict_blocks` / :func:`predict_array` run a given model over an
  :class:`~napari_dacapo.experiments.datasplits.datasets.arrays.array.Array` (validation
  uses them);
- :func:`predict_tiles`, :func:`predict` and :func:`apply` take a run (or its name), a
  stored checkpoint and a plain numpy, dask or zarr array: what users call.

The generators yield :class:`PredictionStarted` then one :class:`TilePredicted` per tile,
so a viewer can fill a layer tile by tile and cancel by no longer asking for tiles.

Modules, by concern:

- :mod:`.events`: :class:`PredictionStarted`, :class:`TilePredicted`;
- :mod:`.tiling`: :class:`TileGeometry`, :class:`TileGroup`, :data:`GROUP_READ_VOXELS`;
- :mod:`.blocks`: :func:`predict_blocks`, :func:`predict_array`, :func:`assemble`;
- :mod:`.non_finite_values`: :class:`NonFiniteWarning`, :func:`warn_if_non_finite`;
- :mod:`.training_data`: :func:`training_raw`, :func:`training_raws`,
  :func:`training_intensity_range`;
- :mod:`.voxel_sizes`: :class:`VoxelSizeWarning`, :func:`unchecked_voxel_size`;
- :mod:`.intensity_scales`: :class:`IntensityScaleWarning`,
  :func:`intensity_scale_mismatch`, :func:`unchecked_intensity_scale`;
- :mod:`.inputs`: :func:`prediction_input`, :func:`rescale_bounds`, :data:`OWN_RANGE`;
- :mod:`.stored_run`: :func:`predict_tiles`, :func:`predict`, :func:`apply`,
  :func:`post_processing`.

Code in this package looks a name up in the module that defines it: a test that replaces
a name for that code patches it there (e.g. ``napari_dacapo.predict.blocks.RUN_VOXELS``).
Modules outside the package import the names from here.
"""

from .blocks import (
    BATCH_VOXELS,
    RUN_VOXELS,
    assemble,
    batch_size,
    inference_context,
    model_input,
    predict_array,
    predict_blocks,
    read_input,
    tile_dtype,
)
from .events import PredictEvent, PredictionStarted, TilePredicted
from .inputs import (
    OWN_RANGE,
    image_intensity_range,
    input_scale_mismatch,
    prediction_input,
    rescale_bounds,
)
from .intensity_scales import (
    IntensityScaleWarning,
    intensity_scale_mismatch,
    needs_values,
    own_range_fits,
    scale_fix,
    scale_text,
    training_raw_dtypes,
    unchecked_intensity_scale,
)
from .non_finite_values import (
    NON_FINITE_PREDICTION,
    NonFiniteWarning,
    non_finite,
    warn_if_non_finite,
)
from .stored_run import apply, post_processing, predict, predict_tiles, prediction_device_plan
from .tiling import GROUP_READ_VOXELS, TileGeometry, TileGroup
from .training_data import (
    TrainingRaw,
    training_data_record,
    training_intensity_range,
    training_raw,
    training_raw_configs,
    training_raws,
)
from .voxel_sizes import (
    VOXEL_SIZE_FIX,
    VoxelSizeWarning,
    training_voxel_sizes,
    unchecked_voxel_size,
    voxel_size_mismatch,
    voxel_size_text,
)

__all__ = [
    "TileGeometry",
    "TileGroup",
    "PredictionStarted",
    "TilePredicted",
    "PredictEvent",
    "predict_blocks",
    "predict_array",
    "assemble",
    "prediction_input",
    "training_raw",
    "training_raws",
    "TrainingRaw",
    "training_data_record",
    "training_intensity_range",
    "OWN_RANGE",
    "image_intensity_range",
    "rescale_bounds",
    "predict_tiles",
    "predict",
    "apply",
    "post_processing",
    "NON_FINITE_PREDICTION",
    "NonFiniteWarning",
    "non_finite",
    "warn_if_non_finite",
    "VoxelSizeWarning",
    "training_voxel_sizes",
    "voxel_size_mismatch",
    "voxel_size_text",
    "unchecked_voxel_size",
    "IntensityScaleWarning",
    "training_raw_dtypes",
    "intensity_scale_mismatch",
    "input_scale_mismatch",
    "needs_values",
    "own_range_fits",
    "scale_fix",
    "scale_text",
    "unchecked_intensity_scale",
    # Building blocks of the above, for blockwise workers, export and the benchmarks.
    "GROUP_READ_VOXELS",
    "RUN_VOXELS",
    "BATCH_VOXELS",
    "batch_size",
    "inference_context",
    "model_input",
    "read_input",
    "tile_dtype",
    "prediction_device_plan",
    "training_raw_configs",
    "VOXEL_SIZE_FIX",
]
