"""DaCapo's run model (``dacapo.experiments``), Qt-free.

Every config class is importable from here, and importing this package registers them all,
so that ``load_config`` can build any of them from a ``__type__`` tag.
"""

from .architectures import CNNectomeUNetConfig
from .configs import Config, ConfigError, load_config, save_config
from .datasplits import DummyDataSplitConfig, TrainValidateDataSplitConfig
from .datasplits.datasets import RawGTDatasetConfig
from .datasplits.datasets.arrays import (
    BinarizeArrayConfig,
    ConcatArrayConfig,
    ConstantArrayConfig,
    CropArrayConfig,
    IntensitiesArrayConfig,
    NumpyArrayConfig,
    ZarrArrayConfig,
)
from .run_config import RunConfig
from .starts.start_config import StartConfig
from .tasks import (
    AffinitiesTaskConfig,
    DistanceTaskConfig,
    DummyTaskConfig,
    HotDistanceTaskConfig,
    InnerDistanceTaskConfig,
    OneHotTaskConfig,
)
from .trainers import DefaultTrainerConfig
from .trainers.augments import (
    ElasticAugmentConfig,
    GammaAugmentConfig,
    IntensityAugmentConfig,
    IntensityScaleShiftAugmentConfig,
    NoiseAugmentConfig,
    SimpleAugmentConfig,
)

__all__ = [
    "AffinitiesTaskConfig",
    "BinarizeArrayConfig",
    "CNNectomeUNetConfig",
    "ConcatArrayConfig",
    "Config",
    "ConfigError",
    "ConstantArrayConfig",
    "CropArrayConfig",
    "DefaultTrainerConfig",
    "DistanceTaskConfig",
    "DummyDataSplitConfig",
    "DummyTaskConfig",
    "ElasticAugmentConfig",
    "GammaAugmentConfig",
    "HotDistanceTaskConfig",
    "InnerDistanceTaskConfig",
    "IntensitiesArrayConfig",
    "IntensityAugmentConfig",
    "IntensityScaleShiftAugmentConfig",
    "NoiseAugmentConfig",
    "NumpyArrayConfig",
    "OneHotTaskConfig",
    "RawGTDatasetConfig",
    "RunConfig",
    "SimpleAugmentConfig",
    "StartConfig",
    "TrainValidateDataSplitConfig",
    "ZarrArrayConfig",
    "load_config",
    "save_config",
]
