"""Convolution + BatchNorm + activation, the unit every head is made of."""
from __future__ import annotations

from torch import nn

__all__ = ["ConvBnAct"]


class ConvBnAct(nn.Sequential):
    """``conv (no bias) -> BatchNorm2d -> activation``; keys ``conv.*`` and ``bn.*``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size; padding keeps the spatial size (times ``dilation``).
        stride: Convolution stride.
        dilation: Convolution dilation.
        act: Whether to apply ReLU (``False`` leaves ``conv -> bn`` only).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        act: bool = True,
    ):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride,
            padding=padding, dilation=dilation, bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
