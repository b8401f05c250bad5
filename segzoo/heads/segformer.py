"""SegFormer's all-MLP head (Xie et al., "SegFormer: Simple and Efficient Design for Semantic Segmentation with
Transformers", NeurIPS 2021), in mmsegmentation's form (``SegformerHead``) and transformers' (``SegformerDecodeHead``).

Its encoder, the Mix Transformer (MiT-B0 .. B5), is the timm model ``mit_b0`` .. ``mit_b5`` (``segzoo.backbones.mit``);
the head works on any backbone with four levels.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ConvBnAct, concat_channels
from ..upstream import Upstream
from .base import SegmentationHead
from .options import check_choice, check_fraction, check_int

__all__ = ["SegFormerHead", "PROJECTIONS"]

PROJECTIONS = ("conv_bn_relu", "linear")


class SegFormerHead(SegmentationHead):
    """Each level projected to ``channels`` by a 1x1 layer, upsampled to c1's size, concatenated (c1 first), fused
    by a 1x1 ConvBnAct -> Dropout2d -> 1x1 classifier. Logits at stride 4.

    Args:
        in_channels: Channels per feature; reads ``c1`` .. ``c4``.
        num_classes: Number of classes.
        align_corners: Bilinear upsampling mode (the upstreams use False).
        channels: Width of the projections and the fusion (mmseg: 256 for every size; the SegFormer authors and
            transformers: 256 for B0 and B1, 768 for B2 .. B5).
        dropout: Dropout before the classifier (0.1 upstream).
        projection: ``"conv_bn_relu"`` (mmseg's ``ConvModule``: convolution without bias, BatchNorm, ReLU) or
            ``"linear"`` (the authors' and transformers' ``MLP``: a linear layer with bias, nothing after it).
    """

    citation = """@inproceedings{xie2021segformer,
  title={SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers},
  author={Xie, Enze and Wang, Wenhai and Yu, Zhiding and Anandkumar, Anima and Alvarez, Jose M and Luo, Ping},
  booktitle={NeurIPS}, year={2021}
}"""

    in_features = ("c1", "c2", "c3", "c4")
    output_stride = 32
    upstreams = (
        # mmseg's SegformerHead: convs.i and fusion_conv are ConvModules (conv + bn), conv_seg the classifier
        Upstream("mmseg", "segformer", options={"channels": 256, "projection": "conv_bn_relu"},
                 classifier="decode_head.conv_seg.weight", rules=(
                     (r"decode_head\.convs", "head.projections"),
                     (r"decode_head\.fusion_conv", "head.fusion"),
                     (r"decode_head\.conv_seg", "head.classifier"))),
        # transformers' SegformerDecodeHead: linear_c.i.proj are Linear layers (stored as 1x1 convolutions and its
        # fusion's input channels in segzoo's level order by the transformers upstream's prepare), linear_fuse +
        # batch_norm the fusion
        Upstream("transformers", "segformer", options={"channels": 256, "projection": "linear"},
                 classifier="decode_head.classifier.weight", rules=(
                     (r"decode_head\.linear_c\.(\d)\.proj", r"head.projections.\1"),
                     (r"decode_head\.linear_fuse", "head.fusion.conv"),
                     (r"decode_head\.batch_norm", "head.fusion.bn"),
                     (r"decode_head\.classifier", "head.classifier"))),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = False,
                 channels: int = 256, dropout: float = 0.1, projection: str = "conv_bn_relu"):
        super().__init__()
        check_int("SegFormer", channels=channels, minimum=1)
        check_fraction("SegFormer", dropout=dropout)
        check_choice("SegFormer", "projection", projection, PROJECTIONS)
        self.align_corners = align_corners
        self.projections = nn.ModuleList(
            ConvBnAct(in_channels[name], channels, kernel_size=1) if projection == "conv_bn_relu"
            else nn.Conv2d(in_channels[name], channels, 1) for name in self.in_features)
        self.fusion = ConvBnAct(channels * len(self.in_features), channels, kernel_size=1)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        levels = [project(features[name]) for name, project in zip(self.in_features, self.projections)]
        size = levels[0].shape[-2:]
        levels = [levels[0], *(F.interpolate(level, size, mode="bilinear", align_corners=self.align_corners)
                               for level in levels[1:])]
        return self.classifier(self.dropout(self.fusion(concat_channels(levels))))

