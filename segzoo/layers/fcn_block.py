"""The FCN block (SPEC.md): the FCN head, the auxiliary head of every model and BiSeNet's heads."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .conv_bn_act import ConvBnAct

__all__ = ["FCNBlock"]


class FCNBlock(nn.Module):
    """``3x3 ConvBnAct in -> hidden``, ``Dropout(0.1)``, ``1x1 conv -> num_classes`` (with bias).

    The last layer is named ``classifier`` so that checkpoints with another number of classes
    can be loaded with only that layer re-initialised.

    Args:
        in_channels: Channels of the feature map the block reads.
        num_classes: Output channels (classes).
        hidden_channels: Width of the 3x3 layer; default ``in_channels // 4``.
        dropout: Dropout probability before the classifier.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden_channels: Optional[int] = None,
                 dropout: float = 0.1):
        super().__init__()
        hidden_channels = hidden_channels or in_channels // 4
        self.block = ConvBnAct(in_channels, hidden_channels, kernel_size=3)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(hidden_channels, num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.block(x)))
