"""segzoo: a plug-in model zoo for semantic segmentation on timm backbones."""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("segzoo")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .benchmark import benchmark
from .checkpoint import load_pretrained, save_pretrained
from .config import ModelConfig
from .errors import (CheckpointError, ConfigError, DatasetError, HeadPluginError, ImageReadError, SegzooError,
                     UnknownModelError, WeightsUnavailableError)
from .export import export
from .factory import create_model, list_models, parse_model_name
from .fusion import optimize_for_inference
from .hub import download_model_files, push_to_hub
from .info import model_info
from .model import SegmentationModel
from .predict import predict
from .pretrained import get_pretrained, list_pretrained
from .registry import get_head, list_heads, refresh_heads

__all__ = [
    "__version__", "ModelConfig", "SegmentationModel",
    "create_model", "list_models", "list_pretrained", "get_pretrained", "parse_model_name",
    "save_pretrained", "load_pretrained", "list_heads", "get_head", "refresh_heads",
    "push_to_hub", "download_model_files", "model_info", "predict", "export", "benchmark",
    "optimize_for_inference",
    "SegzooError", "UnknownModelError", "ConfigError", "HeadPluginError", "CheckpointError",
    "WeightsUnavailableError", "ImageReadError", "DatasetError",
]
