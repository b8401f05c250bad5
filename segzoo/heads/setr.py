"""SETR's heads (Zheng et al., "Rethinking Semantic Segmentation from a Sequence-to-Sequence Perspective with
Transformers", CVPR 2021), in mmsegmentation's forms: SETR-Naive and SETR-PUP (``SETRUPHead``: the ``setr`` head)
and SETR-MLA (mmseg's ``MLANeck`` + ``SETRMLAHead``: the ``setr_mla`` head, the aggregation being part of it)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ConvBnAct, LayerNorm2d, concat_channels
from ..upstream import Upstream
from .base import SegmentationHead
from .options import check_choice, check_fraction, check_int

__all__ = ["SETRHead", "SETRMLAHead"]

# mmseg's SETRUPHead: norm (a LayerNorm over c4's channels), up_convs.i = Sequential(ConvModule, Upsample),
# conv_seg; its aux heads (training only) are left out
_MMSEG_RULES = ((r"decode_head\.norm", "head.norm"),
                (r"decode_head\.up_convs\.(\d+)\.0", r"head.up_convs.\1"),
                (r"decode_head\.conv_seg", "head.classifier"))


class SETRHead(SegmentationHead):
    """On c4 (a ViT's patch tokens as a map): a LayerNorm over the channels, then ``num_convs`` times a
    ConvBnAct (``kernel_size``, ``channels`` wide) followed by a bilinear upsampling by ``up_scale``, Dropout2d, a 1x1
    classifier. SETR-Naive: one 1x1 ConvBnAct and x4 (``num_convs=1, up_scale=4, kernel_size=1``); SETR-PUP
    (progressive upsampling): four 3x3 ConvBnActs, each followed by x2 (``num_convs=4, up_scale=2, kernel_size=3``).

    Args:
        in_channels: Channels per feature; reads ``c4``.
        num_classes: Number of classes.
        align_corners: Bilinear upsampling mode (mmseg: False).
        channels: Width of the convolutions (256).
        num_convs: Convolution + upsampling steps (Naive 1, PUP 4).
        up_scale: Upsampling factor of each step (Naive 4, PUP 2).
        kernel_size: 1 or 3 (Naive 1, PUP 3).
        dropout: Dropout before the classifier (0 in SETR's models).
        norm_eps: Epsilon of the LayerNorm on c4 (1e-6).
    """

    citation = """@inproceedings{zheng2021setr,
  title={Rethinking Semantic Segmentation from a Sequence-to-Sequence Perspective with Transformers},
  author={Zheng, Sixiao and Lu, Jiachen and Zhao, Hengshuang and Zhu, Xiatian and Luo, Zekun and Wang, Yabiao and
          Fu, Yanwei and Feng, Jianfeng and Xiang, Tao and Torr, Philip HS and Zhang, Li},
  booktitle={CVPR}, year={2021}
}"""

    in_features = ("c4",)
    output_stride = 32
    upstreams = (
        Upstream("mmseg", "setr-naive", options={"num_convs": 1, "up_scale": 4, "kernel_size": 1},
                 classifier="decode_head.conv_seg.weight", rules=_MMSEG_RULES),
        Upstream("mmseg", "setr-pup", options={"num_convs": 4, "up_scale": 2, "kernel_size": 3},
                 classifier="decode_head.conv_seg.weight", rules=_MMSEG_RULES),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = False,
                 channels: int = 256, num_convs: int = 1, up_scale: int = 4, kernel_size: int = 1,
                 dropout: float = 0.0, norm_eps: float = 1e-6):
        super().__init__()
        check_int("SETR", channels=channels, num_convs=num_convs, up_scale=up_scale, minimum=1)
        check_choice("SETR", "kernel_size", kernel_size, (1, 3))
        check_fraction("SETR", dropout=dropout)
        self.align_corners = align_corners
        self.up_scale = up_scale
        self.norm = LayerNorm2d(in_channels["c4"], eps=norm_eps)
        widths = [in_channels["c4"]] + [channels] * num_convs
        self.up_convs = nn.ModuleList(ConvBnAct(widths[i], channels, kernel_size=kernel_size)
                                      for i in range(num_convs))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        x = self.norm(features["c4"])
        for conv in self.up_convs:
            x = conv(x)
            x = F.interpolate(x, size=(x.shape[-2] * self.up_scale, x.shape[-1] * self.up_scale), mode="bilinear",
                              align_corners=self.align_corners)
        return self.classifier(self.dropout(x))


class SETRMLAHead(SegmentationHead):
    """SETR-MLA (multi-level feature aggregation) over c1 .. c4 (a ViT's four levels): each level LayerNorm-ed over
    its channels and projected by a 1x1 ConvBnAct to ``mla_channels``; top-down, the top level and then each lower
    level added to the running sum, each sum through a 3x3 ConvBnAct (mmseg's ``MLANeck``); each of the four then
    through two 3x3 ConvBnActs to ``channels`` and a bilinear upsampling by ``up_scale``, concatenated top level first,
    Dropout2d, a 1x1 classifier (mmseg's ``SETRMLAHead``). A ViT's levels share one size; on a pyramid backbone the
    running sum is resized to each level's size and the outputs to the lowest level's, so it works on any backbone.

    Args:
        in_channels: Channels per feature; reads ``c1`` .. ``c4``.
        num_classes: Number of classes.
        align_corners: Bilinear upsampling mode (mmseg: False).
        mla_channels: Width of the aggregation (mmseg's neck ``out_channels``: 256).
        channels: Width of each level's two convolutions (mmseg's head ``mla_channels``: 128).
        up_scale: Upsampling factor of each level (4).
        dropout: Dropout before the classifier (0 in SETR's models).
        norm_eps: Epsilon of the per-level LayerNorms (1e-6).
    """

    citation = SETRHead.citation
    in_features = ("c1", "c2", "c3", "c4")
    output_stride = 32
    takes_neck = False  # the aggregation is its own
    upstreams = (
        # mmseg's MLANeck (norm.i, mla.channel_proj.i, mla.feat_extract.i: ConvModules) and SETRMLAHead (up_convs.i =
        # Sequential(ConvModule, ConvModule, Upsample), conv_seg); feat_extract and up_convs count from the top level
        Upstream("mmseg", "setr-mla", classifier="decode_head.conv_seg.weight", rules=(
            (r"neck\.norm\.(\d)", r"head.norms.\1"),
            (r"neck\.mla\.channel_proj\.(\d)", r"head.projections.\1"),
            (r"neck\.mla\.feat_extract\.(\d)", r"head.aggregations.\1"),
            (r"decode_head\.up_convs\.(\d)\.([01])", r"head.up_convs.\1.\2"),
            (r"decode_head\.conv_seg", "head.classifier"))),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = False,
                 mla_channels: int = 256, channels: int = 128, up_scale: int = 4, dropout: float = 0.0,
                 norm_eps: float = 1e-6):
        super().__init__()
        check_int("SETR-MLA", mla_channels=mla_channels, channels=channels, up_scale=up_scale, minimum=1)
        check_fraction("SETR-MLA", dropout=dropout)
        self.align_corners = align_corners
        self.up_scale = up_scale
        levels = self.in_features
        self.norms = nn.ModuleList(LayerNorm2d(in_channels[name], eps=norm_eps) for name in levels)
        self.projections = nn.ModuleList(ConvBnAct(in_channels[name], mla_channels, kernel_size=1) for name in levels)
        self.aggregations = nn.ModuleList(ConvBnAct(mla_channels, mla_channels) for _ in levels)  # top level first
        self.up_convs = nn.ModuleList(nn.Sequential(ConvBnAct(mla_channels, channels), ConvBnAct(channels, channels))
                                      for _ in levels)  # top level first
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels * len(levels), num_classes, 1)

    def _resize(self, x: Tensor, size) -> Tensor:
        if x.shape[-2:] == size:
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        projected = [project(norm(features[name]))
                     for name, norm, project in zip(self.in_features, self.norms, self.projections)]
        outputs, running = [], None
        for level, aggregate, up_conv in zip(reversed(projected), self.aggregations, self.up_convs):
            running = level if running is None else self._resize(running, level.shape[-2:]) + level
            x = up_conv(aggregate(running))
            outputs.append(self._resize(x, (x.shape[-2] * self.up_scale, x.shape[-1] * self.up_scale)))
        size = outputs[-1].shape[-2:]  # the lowest level's (all the same on a ViT)
        return self.classifier(self.dropout(concat_channels([self._resize(x, size) for x in outputs])))
