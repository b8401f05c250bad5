"""Backbones: timm feature extractors (segzoo never re-implements one)."""
from .resnet_styles import RESNET_STYLES, contracted_dilations, resnet_style, set_block_dilations
from .timm_backbone import (
    FEATURE_NAMES,
    BackboneInfo,
    check_backbone_name,
    create_backbone,
    default_output_stride,
    pretrained_tag,
    stem_conv_names,
)

__all__ = ["FEATURE_NAMES", "BackboneInfo", "check_backbone_name", "create_backbone", "default_output_stride",
           "pretrained_tag", "stem_conv_names", "RESNET_STYLES", "resnet_style", "set_block_dilations",
           "contracted_dilations"]
