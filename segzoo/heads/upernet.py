"""UPerNet head (Xiao et al., "Unified Perceptual Parsing for Scene Understanding", ECCV 2018), in
mmsegmentation's form (``UPerHead``)."""
from __future__ import annotations

from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ConvBnAct, concat_channels
from ..upstream import FromCatalogue, Upstream
from .base import SegmentationHead
from .options import check_fraction, check_int, check_ints
from .pspnet import PyramidPooling

__all__ = ["UPerNetHead"]


# mmseg's catalogue records -> this head's options (segzoo.upstreams.mmseg builds the entries)
def _mmseg_options(record: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """An mmseg UPerHead record's width and pooling bins."""
    decode = record["decode_head"]
    return {"channels": decode["channels"], "bins": tuple(decode["pool_scales"])}, ""


class UPerNetHead(SegmentationHead):
    """A feature pyramid over c1..c4 whose top is a pyramid-pooling module, fused at c1's resolution.

    Pyramid pooling on c4 (``pspnet.PyramidPooling``: one 1x1 ConvBnAct per bin, ``channels`` wide) -> 3x3
    ConvBnAct to ``channels``: the top level. c1..c3 each get a lateral 1x1 ConvBnAct; top-down, each level adds
    the bilinear upsampling of the level above; c1..c3 then pass a 3x3 ConvBnAct (the top level does not). The
    four levels, upsampled to c1's size and concatenated from c1 to the top, are fused by a 3x3 ConvBnAct ->
    Dropout2d -> 1x1 classifier. This is mmsegmentation's head; its checkpoints load through its ``Upstream``
    form. Every upsampling is bilinear with the head's ``align_corners``.

    Designed for a plain backbone (output stride 32, the default of ``upernet_<backbone>`` names; mmseg's
    recipe); at 16 or 8 the upper levels share c3's or c2's resolution and it still works.

    Args:
        in_channels: Channels per feature; reads ``c1`` .. ``c4``.
        num_classes: Number of classes.
        align_corners: Bilinear upsampling mode.
        channels: Width of every branch, lateral and fusion layer (512 in mmseg).
        bins: Pyramid pooling bins: (1, 2, 3, 6) (the paper, mmseg). Bins change outputs, not parameters.
        dropout: Dropout2d before the classifier (mmseg's ``dropout_ratio``).
    """

    citation = """@inproceedings{xiao2018upernet,
  title={Unified Perceptual Parsing for Scene Understanding},
  author={Xiao, Tete and Liu, Yingcheng and Zhou, Bolei and Jiang, Yuning and Sun, Jian},
  booktitle={ECCV}, year={2018}
}"""

    in_features = ("c1", "c2", "c3", "c4")
    output_stride = 32
    upstreams = (
        # mmseg's UPerHead: psp_modules.i = Sequential(pool, ConvModule), bottleneck (over [c4, pooled...]),
        # lateral_convs.0-2 and fpn_convs.0-2 (c1..c3), fpn_bottleneck, conv_seg; a ConvModule is conv + bn
        Upstream("mmseg", "upernet", catalogue="upernet", adapter=_mmseg_options,
                 options={"channels": 512, "bins": (1, 2, 3, 6)},
                 classifier="decode_head.conv_seg.weight", rules=(
                     (r"decode_head\.psp_modules\.(\d+)\.1", r"head.pyramid.branches.\1"),
                     (r"decode_head\.bottleneck", "head.bottleneck"),
                     (r"decode_head\.lateral_convs", "head.lateral_convs"),
                     (r"decode_head\.fpn_convs", "head.fpn_convs"),
                     (r"decode_head\.fpn_bottleneck", "head.fpn_bottleneck"),
                     (r"decode_head\.conv_seg", "head.classifier"))),
        # transformers' port of it (UperNetHead): the same modules, a ConvModule's bn named batch_norm
        Upstream("transformers", "upernet", options={"channels": 512, "bins": (1, 2, 3, 6)},
                 classifier="decode_head.classifier.weight", rules=(
                     (r"decode_head\.psp_modules\.(\d+)\.1\.batch_norm", r"head.pyramid.branches.\1.bn"),
                     (r"decode_head\.psp_modules\.(\d+)\.1", r"head.pyramid.branches.\1"),
                     (r"decode_head\.(bottleneck|fpn_bottleneck)\.batch_norm", r"head.\1.bn"),
                     (r"decode_head\.(lateral_convs|fpn_convs)\.(\d+)\.batch_norm", r"head.\1.\2.bn"),
                     (r"decode_head\.(bottleneck|fpn_bottleneck|lateral_convs|fpn_convs)", r"head.\1"),
                     (r"decode_head\.classifier", "head.classifier"))),
    )
    pretrained = (FromCatalogue("mmseg"),)

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 channels: int = 512, bins=(1, 2, 3, 6), dropout: float = 0.1):
        super().__init__()
        check_int("UPerNet", channels=channels, minimum=1)
        check_ints("UPerNet", bins=bins, minimum=1)
        check_fraction("UPerNet", dropout=dropout)
        self.align_corners = align_corners
        *lower, top = self.in_features
        self.pyramid = PyramidPooling(in_channels[top], channels, bins, align_corners)
        self.bottleneck = ConvBnAct(self.pyramid.out_channels, channels)
        self.lateral_convs = nn.ModuleList(ConvBnAct(in_channels[name], channels, kernel_size=1) for name in lower)
        self.fpn_convs = nn.ModuleList(ConvBnAct(channels, channels) for _ in lower)
        self.fpn_bottleneck = ConvBnAct(channels * len(self.in_features), channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def _resize(self, x: Tensor, like: Tensor) -> Tensor:
        return F.interpolate(x, like.shape[-2:], mode="bilinear", align_corners=self.align_corners)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        *lower, top = self.in_features
        levels = [conv(features[name]) for name, conv in zip(lower, self.lateral_convs)]
        levels.append(self.bottleneck(self.pyramid(features[top])))
        for i in range(len(levels) - 1, 0, -1):  # top-down
            levels[i - 1] = levels[i - 1] + self._resize(levels[i], levels[i - 1])
        outputs = [conv(level) for conv, level in zip(self.fpn_convs, levels)] + [levels[-1]]
        outputs = [outputs[0], *(self._resize(output, outputs[0]) for output in outputs[1:])]
        return self.classifier(self.dropout(self.fpn_bottleneck(concat_channels(outputs))))
