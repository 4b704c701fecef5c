"""Arrays with geometry and the configs that build them (DaCapo's
``dacapo.experiments.datasplits.datasets.arrays``)."""

from .array import Array, DerivedArray, SourceArray, WrappedArray
from .array_config import ArrayConfig, NumpyArray, NumpyArrayConfig
from .binarize_array import BinarizeArray
from .binarize_array_config import BinarizeArrayConfig
from .concat_array import ConcatArray
from .concat_array_config import ConcatArrayConfig
from .constant_array import ConstantArray
from .constant_array_config import ConstantArrayConfig
from .crop_array import CropArray
from .crop_array_config import CropArrayConfig
from .intensity_array import IntensitiesArray
from .intensity_array_config import IntensitiesArrayConfig
from .label_ids_array import LabelIdsArray
from .zarr_array import ZarrArray, prepare_zarr_array, write_zarr_array
from .zarr_array_config import ZarrArrayConfig

__all__ = [
    "Array",
    "ArrayConfig",
    "BinarizeArray",
    "BinarizeArrayConfig",
    "ConcatArray",
    "ConcatArrayConfig",
    "ConstantArray",
    "ConstantArrayConfig",
    "CropArray",
    "CropArrayConfig",
    "DerivedArray",
    "IntensitiesArray",
    "IntensitiesArrayConfig",
    "LabelIdsArray",
    "NumpyArray",
    "NumpyArrayConfig",
    "SourceArray",
    "WrappedArray",
    "ZarrArray",
    "ZarrArrayConfig",
    "prepare_zarr_array",
    "write_zarr_array",
]
