"""Network bodies and their configs (``dacapo.experiments.architectures``)."""

from .architecture import Architecture
from .architecture_config import ArchitectureConfig
from .cnnectome_unet import CNNectomeUNet
from .cnnectome_unet_config import CNNectomeUNetConfig
from .unet_geometry import InputShapeError, UNetGeometry

__all__ = [
    "Architecture",
    "ArchitectureConfig",
    "CNNectomeUNet",
    "CNNectomeUNetConfig",
    "InputShapeError",
    "UNetGeometry",
]
