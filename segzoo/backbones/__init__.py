"""Backbones: timm feature extractors (segzoo never re-implements one; SegFormer's MiT is timm's PVT v2 at MiT's
sizes, registered in timm under MiT's names: ``mit``)."""
from .mit import MIT_SIZES, import_timm
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
from .vit_positions import POSITION_RESIZES, set_position_resize

__all__ = ["FEATURE_NAMES", "BackboneInfo", "check_backbone_name", "create_backbone", "default_output_stride",
           "pretrained_tag", "stem_conv_names", "RESNET_STYLES", "resnet_style", "set_block_dilations",
           "contracted_dilations", "MIT_SIZES", "import_timm", "POSITION_RESIZES", "set_position_resize"]
