"""Small building blocks shared by necks and heads. Nothing here knows about registries or configs."""
from .conv_bn_act import ConvBnAct
from .fcn_block import FCNBlock

__all__ = ["ConvBnAct", "FCNBlock"]
