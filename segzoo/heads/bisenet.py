"""BiSeNet head (Yu et al., "BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation",
ECCV 2018), with the backbone (ResNet-18 in the paper) as context path and a spatial path on the image."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ConvBnAct, FCNBlock, concat_channels
from ..upstream import PretrainedSpec, Upstream
from .base import SegmentationHead

__all__ = ["SpatialPath", "AttentionRefinement", "FeatureFusion", "BiSeNetHead"]


class SpatialPath(nn.Module):
    """Three stride-2 ConvBnActs (7x7, 3x3, 3x3) and a 1x1 ConvBnAct: a wide /8 map of the image."""

    def __init__(self, out_channels: int = 128):
        super().__init__()
        self.conv1 = ConvBnAct(3, 64, kernel_size=7, stride=2)
        self.conv2 = ConvBnAct(64, 64, stride=2)
        self.conv3 = ConvBnAct(64, 64, stride=2)
        self.conv_out = ConvBnAct(64, out_channels, kernel_size=1)

    def forward(self, image: Tensor) -> Tensor:
        return self.conv_out(self.conv3(self.conv2(self.conv1(image))))


class AttentionRefinement(nn.Module):
    """3x3 ConvBnAct, then a channel attention (global pool, 1x1 conv, BN, sigmoid) multiplied in."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBnAct(in_channels, out_channels)
        self.attention = ConvBnAct(out_channels, out_channels, kernel_size=1, act=None)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return x * torch.sigmoid(self.attention(F.adaptive_avg_pool2d(x, 1)))


class FeatureFusion(nn.Module):
    """1x1 ConvBnAct on the concatenated paths; ``out = f + f * attention(f)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBnAct(in_channels, out_channels, kernel_size=1)
        self.attention_reduce = nn.Conv2d(out_channels, out_channels, 1)
        self.attention_expand = nn.Conv2d(out_channels, out_channels, 1)

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        fused = self.conv(concat_channels([spatial, context]))
        attention = F.adaptive_avg_pool2d(fused, 1)
        attention = torch.sigmoid(self.attention_expand(F.relu(self.attention_reduce(attention))))
        return fused + fused * attention


class BiSeNetHead(SegmentationHead):
    """Context path on c3/c4 (global context + attention refinement), spatial path on the image, feature
    fusion, and a 3x3 + 1x1 head; with ``aux`` two more heads on the /16 and /8 context outputs (all loss
    weights 1 in the paper). Use it on an output-stride-32 backbone.

    Args:
        in_channels: Channels per feature; reads ``c3`` and ``c4``.
        num_classes: Number of classes.
        align_corners: Upsampling mode of the context path.
        aux: Build the two auxiliary heads (returned in training after the main output).
        context_channels: Width of the context path (128).
    """

    citation = """@inproceedings{yu2018bisenet,
  title={BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation},
  author={Yu, Changqian and Wang, Jingbo and Peng, Chao and Gao, Changxin and Yu, Gang and Sang, Nong},
  booktitle={ECCV}, year={2018}
}"""

    in_features = ("c3", "c4")
    needs_image = True
    handles_aux = True
    aux_loss_weight = 1.0  # the paper weights its two aux losses like the main one
    output_stride = 32  # the context path is a plain (undilated) backbone
    # The reference zoo reports a BiSeNet (ResNet-18 context path, the defaults) but published no checkpoint.
    upstreams = (Upstream("reference", "bisenet"),)
    pretrained = (
        PretrainedSpec.reference("bisenet_resnet18.ref_voc", "bisenet", "voc", 67.11, backbone="resnet18",
                                 output_stride=32, short_name="bisenet_resnet18_voc"),
        PretrainedSpec.reference("bisenet_resnet18.ref_citys", "bisenet", "citys", None, backbone="resnet18",
                                 output_stride=32, short_name="bisenet_resnet18_citys"),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 aux: bool = False, context_channels: int = 128):
        super().__init__()
        self.align_corners = align_corners
        width = context_channels
        self.spatial_path = SpatialPath(width)
        self.global_context = ConvBnAct(in_channels["c4"], width, kernel_size=1)
        self.arm_c4 = AttentionRefinement(in_channels["c4"], width)
        self.arm_c3 = AttentionRefinement(in_channels["c3"], width)
        self.refine_c4 = ConvBnAct(width, width)
        self.refine_c3 = ConvBnAct(width, width)
        self.fusion = FeatureFusion(2 * width, 2 * width)
        self.main_head = FCNBlock(2 * width, num_classes, hidden_channels=64)
        self.aux_heads = nn.ModuleList(FCNBlock(width, num_classes, hidden_channels=256) for _ in range(2)) \
            if aux else None

    def _upsample(self, x: Tensor, size) -> Tensor:
        return F.interpolate(x, size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None):
        c3, c4 = features["c3"], features["c4"]
        spatial = self.spatial_path(image)
        global_context = self.global_context(F.adaptive_avg_pool2d(c4, 1))
        out16 = self.refine_c4(self._upsample(self.arm_c4(c4) + global_context, c3.shape[-2:]))
        out8 = self.refine_c3(self._upsample(self.arm_c3(c3) + out16, spatial.shape[-2:]))
        main = self.main_head(self.fusion(spatial, out8))
        if not (self.training and self.aux_heads is not None):
            return main
        return main, self.aux_heads[0](out16), self.aux_heads[1](out8)
