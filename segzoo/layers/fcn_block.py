"""The FCN block, ConvBnAct layers then dropout and a 1x1 classifier: the FCN head, the auxiliary head of every
model and BiSeNet's heads."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .concat import concat_channels
from .conv_bn_act import ConvBnAct

__all__ = ["FCNBlock"]


class FCNBlock(nn.Module):
    """``3x3 ConvBnAct in -> hidden``, ``Dropout(0.1)``, ``1x1 conv -> num_classes`` (with bias).

    mmsegmentation's ``FCNHead`` generalises it, and so does this block: ``num_convs`` ConvBnAct layers
    (``block``, then ``more``), each ``kernel_size`` x ``kernel_size`` with ``dilation``, and with
    ``concat_input`` a last ConvBnAct (``conv_cat``, undilated) over the concatenation of the input and their output.

    The last layer is named ``classifier`` so that checkpoints with another number of classes
    can be loaded with only that layer re-initialised.

    Args:
        in_channels: Channels of the feature map the block reads.
        num_classes: Output channels (classes).
        hidden_channels: Width of the hidden layers; default ``in_channels // 4``.
        dropout: Dropout probability before the classifier.
        num_convs: Number of hidden ConvBnAct layers (>= 1).
        kernel_size: Their kernel size (odd).
        dilation: Their dilation (mmseg's ``fcn-d6`` models use 6).
        concat_input: Concatenate the input with the hidden layers' output and fuse them with ``conv_cat``.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden_channels: Optional[int] = None,
                 dropout: float = 0.1, num_convs: int = 1, kernel_size: int = 3, dilation: int = 1,
                 concat_input: bool = False):
        super().__init__()
        hidden_channels = hidden_channels or in_channels // 4
        self.block = ConvBnAct(in_channels, hidden_channels, kernel_size=kernel_size, dilation=dilation)
        self.more = nn.ModuleList(ConvBnAct(hidden_channels, hidden_channels, kernel_size=kernel_size,
                                            dilation=dilation) for _ in range(num_convs - 1))
        self.conv_cat = (ConvBnAct(in_channels + hidden_channels, hidden_channels, kernel_size=kernel_size)
                         if concat_input else None)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(hidden_channels, num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        for layer in self.more:
            out = layer(out)
        if self.conv_cat is not None:
            out = self.conv_cat(concat_channels([x, out]))
        return self.classifier(self.dropout(out))
