from .threshold_post_processor import ThresholdPostProcessor, ThresholdPostProcessorParameters
from .connected_components_post_processor import (
    ConnectedComponentsPostProcessor,
    ConnectedComponentsPostProcessorParameters,
)
from .argmax_post_processor import ArgmaxPostProcessor, ArgmaxPostProcessorParameters
from .dummy_post_processor import DummyPostProcessor, DummyPostProcessorParameters
from .watershed_post_processor import WatershedPostProcessor, WatershedPostProcessorParameters
from .mutex_watershed_post_processor import (
    MutexWatershedPostProcessor,
    MutexWatershedPostProcessorParameters,
)
