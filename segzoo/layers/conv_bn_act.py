"""Convolution + BatchNorm + activation, the unit every head is made of."""
from __future__ import annotations

from typing import Optional

from torch import nn

__all__ = ["ConvBnAct", "SeparableConvBnAct", "make_activation", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "leaky_relu", None)


def make_activation(name: Optional[str]) -> nn.Module:
    """``"relu"``, ``"leaky_relu"`` (slope 0.01, as in-place ABN in the OCNet/CCNet originals) or None."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if name is None:
        return nn.Identity()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


class ConvBnAct(nn.Sequential):
    """``conv -> BatchNorm2d -> activation``; keys ``conv.*`` and ``bn.*``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size; padding keeps the spatial size (times ``dilation``).
        stride: Convolution stride.
        dilation: Convolution dilation.
        act: ``"relu"``, ``"leaky_relu"`` or None (``conv -> bn`` only).
        bias: Give the convolution a bias (OCNet's layers have one before their BN).
        groups: Convolution groups (``in_channels`` for a depthwise convolution).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        act: Optional[str] = "relu",
        bias: bool = False,
        groups: int = 1,
    ):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride,
            padding=padding, dilation=dilation, groups=groups, bias=bias,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = make_activation(act)


class SeparableConvBnAct(nn.Sequential):
    """A depthwise-separable ``ConvBnAct``: depthwise ``kernel_size`` ConvBnAct (``groups = in_channels``), then
    pointwise 1x1 ConvBnAct, each with its own BatchNorm and activation (mmcv's
    ``DepthwiseSeparableConvModule``); keys ``depthwise.*`` and ``pointwise.*``.

    Args:
        in_channels: Input channels (and the depthwise layer's output channels).
        out_channels: Output channels of the pointwise layer.
        kernel_size: Square kernel size of the depthwise layer; padding keeps the spatial size.
        dilation: Dilation of the depthwise layer.
        act: Activation after each BatchNorm (see ``ConvBnAct``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 act: Optional[str] = "relu"):
        super().__init__()
        self.depthwise = ConvBnAct(in_channels, in_channels, kernel_size, dilation=dilation, act=act,
                                   groups=in_channels)
        self.pointwise = ConvBnAct(in_channels, out_channels, kernel_size=1, act=act)
