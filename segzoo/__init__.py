"""segzoo: a plug-in model zoo for semantic segmentation on timm backbones.

``import segzoo`` imports the core and the model-building API only. The tools (``predict``, ``export``,
``benchmark``, ``model_info``, ``optimize_for_inference``) are imported on first use, so importing segzoo stays
fast and works where they could not (``benchmark`` needs the POSIX ``resource`` module).
"""
from .config import ModelConfig
from .errors import (
                     CheckpointError,
                     ConfigError,
                     DatasetError,
                     HeadPluginError,
                     ImageReadError,
                     SegzooError,
                     TrainingDivergedError,
                     UnknownModelError,
                     WeightsUnavailableError,
)
from .factory import create_model, list_models
from .lazy import lazy_attributes
from .model import SegmentationModel
from .registry import get_head, get_neck, list_heads, list_necks, refresh_heads
from .version import __version__
from .weights import download_model_files, load_pretrained, parse_model_name, push_to_hub, save_pretrained
from .zoo import get_pretrained, list_pretrained

_LAZY = {
    "predict": ".inference.predict",
    "optimize_for_inference": ".inference.optimize",
    "optimize": ".inference.paths",
    "export": ".inference.export",
    "benchmark": ".tools.benchmark",
    "model_info": ".tools.info",
}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "__version__", "ModelConfig", "SegmentationModel",
    "create_model", "list_models", "list_pretrained", "get_pretrained", "parse_model_name",
    "save_pretrained", "load_pretrained", "list_heads", "get_head", "list_necks", "get_neck", "refresh_heads",
    "push_to_hub", "download_model_files", *_LAZY,
    "SegzooError", "UnknownModelError", "ConfigError", "HeadPluginError", "CheckpointError",
    "WeightsUnavailableError", "ImageReadError", "DatasetError", "TrainingDivergedError",
]
