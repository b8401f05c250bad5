"""DeepLabv3 head (Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017)."""
from __future__ import annotations

from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ConvBnAct, SeparableConvBnAct, concat_channels
from ..upstream import FromCatalogue, KeyRule, PretrainedSpec, Upstream, conv_bn_act_keys
from .base import SegmentationHead
from .options import check_bool, check_fraction, check_int, check_ints

__all__ = ["ASPP", "DeepLabV3Head"]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, one 3x3 branch per rate and an image-pooling branch,
    concatenated and projected by a 1x1 ConvBnAct.

    Args:
        in_channels: Input channels.
        channels: Width of each branch (and of the projection).
        rates: Dilation of each 3x3 branch.
        pool_first: Put the image-pooling branch first in the concatenation (mmsegmentation) instead of last.
        project: Project the concatenation by a 1x1 ConvBnAct (the paper, the reference, torchvision); without
            it the output is the concatenation itself (mmsegmentation, whose head fuses it by a 3x3 layer).
        separable: Make each 3x3 branch depthwise-separable (``SeparableConvBnAct``: dilated depthwise 3x3, then
            pointwise 1x1; DeepLabV3+); the 1x1 and pooling branches stay as they are.
    """

    def __init__(self, in_channels: int, channels: int = 256, rates=(12, 24, 36), pool_first: bool = False,
                 project: bool = True, separable: bool = False):
        super().__init__()
        self.pool_first = pool_first
        self.conv1x1 = ConvBnAct(in_channels, channels, kernel_size=1)
        atrous = SeparableConvBnAct if separable else ConvBnAct
        self.atrous = nn.ModuleList(atrous(in_channels, channels, dilation=rate) for rate in rates)
        self.pool_conv = ConvBnAct(in_channels, channels, kernel_size=1)
        concatenated = channels * (len(rates) + 2)
        self.project = ConvBnAct(concatenated, channels, kernel_size=1) if project else None
        self.out_channels = channels if project else concatenated

    def forward(self, x: Tensor) -> Tensor:
        # The pooled branch is 1x1, so "upsampling" it is a broadcast: exact for any interpolation mode, and
        # free of the adaptive-pooling shapes that break ONNX export with dynamic sizes.
        pooled = self.pool_conv(F.adaptive_avg_pool2d(x, 1)).expand(-1, -1, *x.shape[-2:])
        branches = [self.conv1x1(x), *(branch(x) for branch in self.atrous)]
        branches = [pooled, *branches] if self.pool_first else [*branches, pooled]
        out = concat_channels(branches)
        return self.project(out) if self.project is not None else out


def _aspp_keys(branch: str, pool: str, project: str) -> tuple[KeyRule, ...]:
    """An upstream ASPP's keys: the 1x1 branch ``branch.format(0)`` and the atrous ones ``branch.format(1..3)``
    (each Sequential(conv, bn, relu)), the pooling branch ``pool`` = Sequential(pool, conv, bn, relu), and the
    projection (Sequential(conv, bn, relu))."""
    return (conv_bn_act_keys(branch.format(0), "head.aspp.conv1x1")
            + tuple(rule for i in range(3) for rule in conv_bn_act_keys(branch.format(i + 1), f"head.aspp.atrous.{i}"))
            + ((rf"{pool}\.1", "head.aspp.pool_conv.conv"), (rf"{pool}\.2", "head.aspp.pool_conv.bn"))
            + conv_bn_act_keys(project, "head.aspp.project"))


# mmseg's catalogue records -> this head's options (segzoo.upstreams.mmseg builds the entries)
def _mmseg_options(record: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """An mmseg ASPPHead record's width and atrous rates (its first branch must be the 1x1 one)."""
    decode = record["decode_head"]
    rates = tuple(decode["dilations"])
    if rates[0] != 1:
        return {}, f"ASPP dilations {rates}: the first branch is not 1x1"
    return {"channels": decode["channels"], "rates": rates[1:]}, ""


class DeepLabV3Head(SegmentationHead):
    """ASPP -> Dropout(0.5) -> 3x3 ConvBnAct -> Dropout(0.1) -> 1x1 classifier.

    mmsegmentation's form (``pool_first=True, project=False, channels=512``) concatenates the image-pooling
    branch first and fuses the concatenation by the 3x3 layer directly, without the 1x1 projection.

    Args:
        in_channels: Channels per feature; reads ``c4``.
        num_classes: Number of classes.
        align_corners: Unused (no resampling here).
        rates: Atrous rates: (12, 24, 36) at output stride 8 (default, the reference); the paper halves them
            to (6, 12, 18) at output stride 16.
        channels: ASPP width.
        pool_first: The image-pooling branch first in the concatenation (mmseg).
        project: The ASPP's 1x1 projection of the concatenation (False in mmseg).
        aspp_dropout: Dropout after the ASPP (0.5; mmseg has none).
    """

    citation = """@article{chen2017deeplabv3,
  title={Rethinking Atrous Convolution for Semantic Image Segmentation},
  author={Chen, Liang-Chieh and Papandreou, George and Schroff, Florian and Adam, Hartwig},
  journal={arXiv preprint arXiv:1706.05587}, year={2017}
}"""

    in_features = ("c4",)
    aliases = ("deeplab",)  # the reference zoo's spelling
    upstreams = (
        # the reference's head: aspp (b0 1x1, b1..b3 atrous, b4.gap pooling), block = Sequential(conv, bn, relu,
        # dropout, classifier)
        Upstream("reference", "deeplabv3", classifier="head.block.4.weight", rules=(
            _aspp_keys(r"head\.aspp\.b{}", r"head\.aspp\.b4\.gap", r"head\.aspp\.project")
            + conv_bn_act_keys(r"head\.block", "head.block") + ((r"head\.block\.4", "head.classifier"),))),
        # torchvision's DeepLabHead = Sequential(ASPP (convs.0..4, project), conv, bn, relu, conv)
        Upstream("torchvision", "deeplabv3", classifier="classifier.4.weight", rules=(
            _aspp_keys(r"classifier\.0\.convs\.{}", r"classifier\.0\.convs\.4", r"classifier\.0\.project")
            + ((r"classifier\.1", "head.block.conv"), (r"classifier\.2", "head.block.bn"),
               (r"classifier\.4", "head.classifier")))),
        # mmseg's ASPPHead: image_pool = Sequential(pool, ConvModule), aspp_modules.0 (1x1), .1-3 (atrous),
        # bottleneck (3x3 straight from the concatenation), conv_seg; 512 channels, the pooled branch first
        Upstream("mmseg", "deeplabv3", catalogue="deeplabv3", adapter=_mmseg_options,
                 options={"channels": 512, "pool_first": True, "project": False, "aspp_dropout": 0.0},
                 classifier="decode_head.conv_seg.weight", rules=(
                     (r"decode_head\.image_pool\.1", "head.aspp.pool_conv"),
                     (r"decode_head\.aspp_modules\.0", "head.aspp.conv1x1"),
                     *((rf"decode_head\.aspp_modules\.{i + 1}", f"head.aspp.atrous.{i}") for i in range(3)),
                     (r"decode_head\.bottleneck", "head.block"), (r"decode_head\.conv_seg", "head.classifier"))),
    )
    pretrained = (
        PretrainedSpec.reference("deeplabv3_resnet101s_jpu.ref_voc", "deeplabv3", "voc", 78.75, pixacc=94.81,
                                 short_name="deeplabv3_resnet101_voc", drive_id="1R0C6qwCxOLztps4odVWLiZpe57n5TuDX"),
        PretrainedSpec.reference("deeplabv3_resnet101s_jpu.ref_citys", "deeplabv3", "citys", 79.03, pixacc=96.23,
                                 short_name="deeplabv3_resnet101_citys",
                                 drive_id="1_XIIeIKEMbg4M2SO49Vq756d20zjeXxk"),
        PretrainedSpec.reference("deeplabv3_resnet101s_jpu.ref_ade", "deeplabv3", "ade", None,
                                 short_name="deeplabv3_resnet101_ade"),
        PretrainedSpec.torchvision("deeplabv3_resnet50.tv_coco_voc", "deeplabv3", "resnet50", 66.4, 92.4,
                                   "deeplabv3_resnet50_coco-cd0a2569.pth"),
        PretrainedSpec.torchvision("deeplabv3_resnet101.tv_coco_voc", "deeplabv3", "resnet101", 67.4, 92.4,
                                   "deeplabv3_resnet101_coco-586e9e4e.pth"),
        FromCatalogue("mmseg"),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 rates=(12, 24, 36), channels: int = 256, pool_first: bool = False, project: bool = True,
                 aspp_dropout: float = 0.5):
        super().__init__()
        check_int("DeepLabV3", channels=channels, minimum=1)
        check_ints("DeepLabV3", rates=rates, minimum=1)
        check_bool("DeepLabV3", pool_first=pool_first, project=project)
        check_fraction("DeepLabV3", aspp_dropout=aspp_dropout)
        self.aspp = ASPP(in_channels["c4"], channels, rates, pool_first=pool_first, project=project)
        self.aspp_dropout = nn.Dropout(aspp_dropout)
        self.block = ConvBnAct(self.aspp.out_channels, channels)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        x = self.aspp_dropout(self.aspp(features["c4"]))
        return self.classifier(self.dropout(self.block(x)))
