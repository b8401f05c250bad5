"""DeepLabV3+ head (Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
Segmentation", ECCV 2018), in mmsegmentation's form (``DepthwiseSeparableASPPHead``)."""
from __future__ import annotations

from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ConvBnAct, SeparableConvBnAct, concat_channels
from ..upstream import FromCatalogue, Upstream
from .base import SegmentationHead
from .deeplabv3 import ASPP
from .options import check_fraction, check_int, check_ints

__all__ = ["DeepLabV3PlusHead"]


# mmseg's catalogue records -> this head's options (segzoo.upstreams.mmseg builds the entries)
def _mmseg_options(record: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """An mmseg DepthwiseSeparableASPPHead record's width, atrous rates (after the 1x1 branch) and c1 width."""
    decode = record["decode_head"]
    rates = tuple(decode["dilations"])
    if rates[0] != 1:
        return {}, f"ASPP dilations {rates}: the first branch is not 1x1"
    return {"channels": decode["channels"], "rates": rates[1:], "c1_channels": decode["c1_channels"]}, ""


class DeepLabV3PlusHead(SegmentationHead):
    """Separable ASPP on c4 -> 3x3 ConvBnAct; upsampled to c1's size and concatenated with a 1x1 projection of c1;
    two depthwise-separable 3x3 ConvBnAct -> Dropout2d -> 1x1 classifier.

    The ASPP (``deeplabv3.ASPP`` with ``separable=True``) concatenates the image-pooling branch (global average ->
    1x1 ConvBnAct, broadcast back) first, then a plain 1x1 branch and one depthwise-separable branch per rate
    (dilated depthwise 3x3 ConvBnAct, then pointwise 1x1 ConvBnAct); a 3x3 ConvBnAct fuses the concatenation
    without a 1x1 projection. This is mmsegmentation's head; its checkpoints load through its ``Upstream`` form.

    Args:
        in_channels: Channels per feature; reads ``c1`` (the low-level features) and ``c4``.
        num_classes: Number of classes.
        align_corners: Bilinear mode of the upsampling of the ASPP output to c1's size.
        channels: Width of the ASPP branches, its fusion and the decoder (512 in mmseg).
        rates: Dilations of the separable 3x3 branches: (12, 24, 36) for output stride 8 (default; mmseg's D8
            configs). The head cannot see the output stride, so at output stride 16 pass the paper's
            (6, 12, 18) (mmseg's ``-d16`` config).
        c1_channels: Width of the c1 projection: 48 (default; the paper, mmseg's ResNet-50/101 configs); mmseg's
            ResNet-18 configs use 12.
        dropout: Dropout2d before the classifier (mmseg's ``dropout_ratio``).
    """

    citation = """@inproceedings{chen2018deeplabv3plus,
  title={Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation},
  author={Chen, Liang-Chieh and Zhu, Yukun and Papandreou, George and Schroff, Florian and Adam, Hartwig},
  booktitle={ECCV}, year={2018}
}"""

    in_features = ("c1", "c4")
    upstreams = (
        # mmseg's DepthwiseSeparableASPPHead: image_pool = Sequential(pool, ConvModule), aspp_modules.0 (1x1
        # ConvModule), .1-3 (DepthwiseSeparableConvModule: depthwise_conv, pointwise_conv), bottleneck,
        # c1_bottleneck, sep_bottleneck.0-1 (DepthwiseSeparableConvModule), conv_seg; a ConvModule is conv + bn
        Upstream("mmseg", "deeplabv3plus", catalogue="deeplabv3plus", adapter=_mmseg_options,
                 options={"channels": 512, "rates": (12, 24, 36), "c1_channels": 48},
                 classifier="decode_head.conv_seg.weight", rules=(
                     (r"decode_head\.image_pool\.1", "head.aspp.pool_conv"),
                     (r"decode_head\.aspp_modules\.0", "head.aspp.conv1x1"),
                     *(rule for i in range(3) for rule in (
                         (rf"decode_head\.aspp_modules\.{i + 1}\.depthwise_conv", f"head.aspp.atrous.{i}.depthwise"),
                         (rf"decode_head\.aspp_modules\.{i + 1}\.pointwise_conv", f"head.aspp.atrous.{i}.pointwise"))),
                     (r"decode_head\.bottleneck", "head.bottleneck"),
                     (r"decode_head\.c1_bottleneck", "head.c1_projection"),
                     (r"decode_head\.sep_bottleneck\.(\d+)\.depthwise_conv", r"head.decoder.\1.depthwise"),
                     (r"decode_head\.sep_bottleneck\.(\d+)\.pointwise_conv", r"head.decoder.\1.pointwise"),
                     (r"decode_head\.conv_seg", "head.classifier"))),
    )
    pretrained = (FromCatalogue("mmseg"),)

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 channels: int = 512, rates=(12, 24, 36), c1_channels: int = 48, dropout: float = 0.1):
        super().__init__()
        check_int("DeepLabV3+", channels=channels, c1_channels=c1_channels, minimum=1)
        check_ints("DeepLabV3+", rates=rates, minimum=1)
        check_fraction("DeepLabV3+", dropout=dropout)
        self.align_corners = align_corners
        self.aspp = ASPP(in_channels["c4"], channels, rates, pool_first=True, project=False, separable=True)
        self.bottleneck = ConvBnAct(self.aspp.out_channels, channels)
        self.c1_projection = ConvBnAct(in_channels["c1"], c1_channels, kernel_size=1)
        self.decoder = nn.Sequential(SeparableConvBnAct(channels + c1_channels, channels),
                                     SeparableConvBnAct(channels, channels))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        low_level = self.c1_projection(features["c1"])
        x = F.interpolate(self.bottleneck(self.aspp(features["c4"])), low_level.shape[-2:], mode="bilinear",
                          align_corners=self.align_corners)
        x = self.decoder(concat_channels([x, low_level]))
        return self.classifier(self.dropout(x))
