"""Weights: checkpoint files, the Hub, the one name resolver, weight sources, model cards and the converter."""
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_pretrained, load_weights, read_weights, save_pretrained
from .hub import download_model_files, parse_hub_name, push_to_hub
from .resolver import ResolvedModel, model_names, parse_model_name, resolve_model_name
from .sources import HubOptions, HubSource, LocalDirSource

__all__ = [
    "CONFIG_NAME", "WEIGHTS_NAME", "load_pretrained", "load_weights", "read_weights", "save_pretrained",
    "download_model_files", "parse_hub_name", "push_to_hub",
    "ResolvedModel", "model_names", "parse_model_name", "resolve_model_name",
    "HubOptions", "HubSource", "LocalDirSource",
]
