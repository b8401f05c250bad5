"""Backbones (timm feature extractors) and necks."""
from .jpu import JPU
from .timm_backbone import FEATURE_NAMES, BackboneInfo, create_backbone, pretrained_tag

__all__ = ["FEATURE_NAMES", "BackboneInfo", "JPU", "create_backbone", "pretrained_tag"]
