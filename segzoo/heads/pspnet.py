"""PSPNet head (Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ConvBnAct, concat_channels
from ..layers.tracing import is_exporting
from ..upstream import FromCatalogue, PretrainedSpec, Upstream, conv_bn_act_keys
from .base import SegmentationHead
from .options import check_fraction, check_ints

__all__ = ["PyramidPooling", "PSPHead"]


def _pooling_matrix(size, bins: int, like: Tensor) -> Tensor:
    """``(bins, size)``: row ``i`` averages ``[floor(i * size / bins), ceil((i + 1) * size / bins))``, the
    windows of adaptive average pooling."""
    index = torch.arange(bins, device=like.device)
    start, end = index * size // bins, ((index + 1) * size + bins - 1) // bins
    position = torch.arange(size, device=like.device)
    inside = (position >= start[:, None]) & (position < end[:, None])
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


def adaptive_avg_pool2d(x: Tensor, bins: int) -> Tensor:
    """``F.adaptive_avg_pool2d(x, bins)``; while exporting (``layers.tracing.is_exporting``) the same windows
    as two averaging matmuls.

    Exporters decompose adaptive pooling into gathers whose indices are computed at the example size, so an
    exported PSPNet fails or is wrong at other sizes; the matrices here are built from the input's symbolic
    size at run time. Eager and ``torch.compile`` keep torch's kernel.
    """
    if not is_exporting():
        return F.adaptive_avg_pool2d(x, bins)
    height, width = x.shape[-2:]
    return torch.matmul(torch.matmul(_pooling_matrix(height, bins, x), x), _pooling_matrix(width, bins, x).T)


class PyramidPooling(nn.Module):
    """For each bin: adaptive average pool to ``bin x bin`` -> 1x1 ConvBnAct -> upsample; concat with the input.

    Bins larger than the feature map still work (adaptive pooling then repeats pixels).
    """

    def __init__(self, in_channels: int, branch_channels: int, bins=(1, 2, 3, 6), align_corners: bool = True):
        super().__init__()
        self.bins = tuple(bins)
        self.align_corners = align_corners
        self.branches = nn.ModuleList(ConvBnAct(in_channels, branch_channels, kernel_size=1) for _ in self.bins)
        self.out_channels = in_channels + branch_channels * len(self.bins)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(branch(adaptive_avg_pool2d(x, bin_size)), size, mode="bilinear",
                                align_corners=self.align_corners)
                  for bin_size, branch in zip(self.bins, self.branches)]
        return concat_channels([x, *pooled])


# mmseg's catalogue records -> this head's options (segzoo.upstreams.mmseg builds the entries)
def _mmseg_options(record: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """An mmseg PSPHead record's bins; segzoo's PSPNet is c4/4 wide, so other widths are left out."""
    decode = record["decode_head"]
    quarter = decode["in_channels"] // 4
    if decode["channels"] != quarter:
        return {}, f"{decode['channels']} head channels: segzoo's pspnet head is c4/4 = {quarter} wide"
    return {"bins": tuple(decode["pool_scales"])}, ""


class PSPHead(SegmentationHead):
    """Pyramid pooling on c4, 3x3 ConvBnAct to ``c4/4``, Dropout(0.1), 1x1 classifier.

    Args:
        in_channels: Channels per feature; reads ``c4``.
        num_classes: Number of classes.
        align_corners: Upsampling mode of the pooled branches.
        bins: Pyramid bins: (1, 2, 3, 6) in the paper, PyTorch-Encoding and mmseg (default); the reference
            zoo used (1, 2, 3, 4). Bins change outputs, not parameter names or shapes.
        dropout: Dropout before the classifier.
    """

    citation = """@inproceedings{zhao2017pspnet,
  title={Pyramid Scene Parsing Network},
  author={Zhao, Hengshuang and Shi, Jianping and Qi, Xiaojuan and Wang, Xiaogang and Jia, Jiaya},
  booktitle={CVPR}, year={2017}
}"""

    in_features = ("c4",)
    aliases = ("psp",)  # the reference zoo's spelling
    upstreams = (
        # the reference PSPHead: psp.conv1..4 (pooled branches), block = Sequential(conv, bn, relu, dropout, cls)
        Upstream("reference", "psp", options={"bins": (1, 2, 3, 4)}, classifier="head.block.4.weight",
                 rules=tuple(rule for i in range(4)
                             for rule in conv_bn_act_keys(rf"head\.psp\.conv{i + 1}", f"head.pyramid.branches.{i}"))
                 + conv_bn_act_keys(r"head\.block", "head.bottleneck") + ((r"head\.block\.4", "head.classifier"),)),
        # mmseg's PSPHead: psp_modules.i = Sequential(pool, ConvModule), bottleneck, conv_seg
        Upstream("mmseg", "pspnet", catalogue="pspnet", adapter=_mmseg_options,
                 options={"bins": (1, 2, 3, 6)}, classifier="decode_head.conv_seg.weight",
                 rules=((r"decode_head\.psp_modules\.(\d+)\.1", r"head.pyramid.branches.\1"),
                        (r"decode_head\.bottleneck", "head.bottleneck"),
                        (r"decode_head\.conv_seg", "head.classifier"))),
    )
    pretrained = (
        PretrainedSpec.reference("pspnet_resnet101s_jpu.ref_voc", "psp", "voc", 78.48, pixacc=94.77,
                                 short_name="pspnet_resnet101_voc", drive_id="1XRFiijt0tAbLgXhV5oVEot6qLccz9JyA"),
        PretrainedSpec.reference("pspnet_resnet101s_d8.ref_voc", "psp", "voc", 78.57, pixacc=94.88, dilated=True,
                                 short_name="pspnet_resnet101_dilated_voc",
                                 drive_id="1g40cVTJRCHLBKwVqjev4yQA5YflQwhrv"),
        PretrainedSpec.reference("pspnet_resnet101s_jpu.ref_citys", "psp", "citys", 78.62, pixacc=96.09,
                                 short_name="pspnet_resnet101_citys", drive_id="1qJVXevkErgVvsa4x8mCvAdMlCIuVMJ1C"),
        FromCatalogue("mmseg"),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 bins=(1, 2, 3, 6), dropout: float = 0.1):
        super().__init__()
        check_ints("PSPNet", bins=bins, minimum=1)
        check_fraction("PSPNet", dropout=dropout)
        channels = in_channels["c4"]
        self.pyramid = PyramidPooling(channels, channels // 4, bins, align_corners)
        self.bottleneck = ConvBnAct(self.pyramid.out_channels, channels // 4)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(channels // 4, num_classes, 1)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        return self.classifier(self.dropout(self.bottleneck(self.pyramid(features["c4"]))))
