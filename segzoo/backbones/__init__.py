"""Backbones: timm feature extractors (segzoo never re-implements one)."""
from .timm_backbone import FEATURE_NAMES, BackboneInfo, check_backbone_name, create_backbone, pretrained_tag

__all__ = ["FEATURE_NAMES", "BackboneInfo", "check_backbone_name", "create_backbone", "pretrained_tag"]
