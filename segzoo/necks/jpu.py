"""Joint Pyramid Upsampling (FastFCN, Wu et al. 2019): an /8 feature map from an output-stride-32 backbone."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ConvBnAct, concat_channels
from ..layers.depthwise import depthwise_conv2d
from ..upstream import Upstream, conv_bn_act_keys
from .base import SegmentationNeck

__all__ = ["JPU", "JPU_CITATION"]

JPU_CITATION = """@article{wu2019fastfcn,
  title={FastFCN: Rethinking Dilated Convolution in the Backbone for Semantic Segmentation},
  author={Wu, Huikai and Zhang, Junge and Huang, Kaiqi and Liang, Kongming and Yu, Yizhou},
  journal={arXiv preprint arXiv:1903.11816}, year={2019}
}"""


class SeparableDilatedBranch(nn.Module):
    """Depthwise dilated 3x3 (no bias) -> BN -> pointwise 1x1 (no bias) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=dilation, dilation=dilation,
                                   groups=in_channels, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = depthwise_conv2d(x, self.depthwise.weight, self.depthwise.dilation[0])
        return self.act(self.bn(self.pointwise(self.depthwise_bn(x))))


def _reference_keys() -> tuple:
    """The reference zoo's / FastFCN's JPU: ``conv5/4/3`` as Sequential(conv, bn, relu) and ``dilation1..4`` as
    Sequential(SeparableConv2d(conv1, bn, pointwise), bn, relu)."""
    rules = conv_bn_act_keys(r"conv5", "conv5") + conv_bn_act_keys(r"conv4", "conv4") \
        + conv_bn_act_keys(r"conv3", "conv3")
    for i in range(4):
        src, dst = rf"dilation{i + 1}", f"dilations.{i}"
        rules += ((rf"{src}\.0\.conv1", f"{dst}.depthwise"), (rf"{src}\.0\.bn", f"{dst}.depthwise_bn"),
                  (rf"{src}\.0\.pointwise", f"{dst}.pointwise"), (rf"{src}\.1", f"{dst}.bn"))
    return rules


class JPU(SegmentationNeck):
    """JPU neck: replaces ``c4`` by a ``4 * width`` channel map at ``c2``'s resolution. Use it on an
    output-stride-32 backbone.

    Args:
        in_channels: Channels of c2, c3 and c4.
        width: Channels of each projection and each dilated branch (512 in FastFCN).
        dilations: Dilations of the four separable branches.
        align_corners: Bilinear upsampling mode (the reference uses True).
    """

    output_stride = 32
    display_name = "JPU"
    citation = JPU_CITATION
    upstreams = (Upstream("reference", "jpu", rules=_reference_keys()),)

    def __init__(self, in_channels: dict[str, int], width: int = 512, dilations=(1, 2, 4, 8),
                 align_corners: bool = True):
        super().__init__()
        self.align_corners = align_corners
        self.conv5 = ConvBnAct(in_channels["c4"], width)
        self.conv4 = ConvBnAct(in_channels["c3"], width)
        self.conv3 = ConvBnAct(in_channels["c2"], width)
        self.dilations = nn.ModuleList(SeparableDilatedBranch(3 * width, width, d) for d in dilations)
        self.out_channels = {**in_channels, "c4": width * len(dilations)}

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """Return ``features`` with ``c4`` replaced by the JPU output (c1..c3 stay raw for aux heads)."""
        c2 = self.conv3(features["c2"])
        size = c2.shape[-2:]
        c4 = F.interpolate(self.conv5(features["c4"]), size, mode="bilinear", align_corners=self.align_corners)
        c3 = F.interpolate(self.conv4(features["c3"]), size, mode="bilinear", align_corners=self.align_corners)
        joint = concat_channels([c4, c3, c2])
        out = concat_channels([branch(joint) for branch in self.dilations])
        return {**features, "c4": out}
