"""Small building blocks shared by necks and heads. Nothing here knows about registries or configs."""
from .attention import ChannelAttention, spatial_attention
from .concat import concat_channels
from .conv_bn_act import ACTIVATIONS, ConvBnAct, SeparableConvBnAct, make_activation
from .criss_cross import CrissCrossAttention, criss_cross_attention
from .deformable_attention import MultiScaleDeformableAttention
from .fcn_block import FCNBlock
from .layer_norm import LayerNorm2d

__all__ = ["ACTIVATIONS", "ChannelAttention", "ConvBnAct", "CrissCrossAttention", "FCNBlock", "LayerNorm2d",
           "MultiScaleDeformableAttention", "SeparableConvBnAct", "concat_channels", "criss_cross_attention",
           "make_activation", "spatial_attention"]
