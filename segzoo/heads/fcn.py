"""FCN head (Long et al., "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015),
in the form the reference and FastFCN use: one FCN block on the last feature map."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from torch import Tensor

from ..errors import ConfigError
from ..layers import FCNBlock
from ..upstream import FromCatalogue, PretrainedSpec, Upstream, conv_bn_act_keys
from .base import SegmentationHead
from .options import check_bool, check_fraction, check_int

__all__ = ["FCNHead"]

MMSEG_FCN_RULES = ((r"decode_head\.convs\.0", "head.fcn.block"),
                   *((rf"decode_head\.convs\.{i + 1}", f"head.fcn.more.{i}") for i in range(3)),
                   (r"decode_head\.conv_cat", "head.fcn.conv_cat"), (r"decode_head\.conv_seg", "head.fcn.classifier"))


# mmseg's catalogue records -> this head's options (segzoo.upstreams.mmseg builds the entries)
def _mmseg_options(record: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """An mmseg FCNHead record's options (its width, number of convs, input concatenation)."""
    decode = record["decode_head"]
    return {"channels": decode["channels"], "num_convs": decode["num_convs"],
            "concat_input": decode["concat_input"]}, ""


class FCNHead(SegmentationHead):
    """``3x3 ConvBnAct c4 -> c4/4``, Dropout(0.1), ``1x1 conv -> num_classes``.

    Args:
        in_channels: Channels per feature name; this head reads ``c4``.
        num_classes: Number of classes.
        align_corners: Unused (the FCN head does no resampling); accepted like every head.
        dropout: Dropout before the classifier.
    """

    citation = """@inproceedings{long2015fcn,
  title={Fully Convolutional Networks for Semantic Segmentation},
  author={Long, Jonathan and Shelhamer, Evan and Darrell, Trevor},
  booktitle={CVPR}, year={2015}
}"""

    in_features = ("c4",)
    upstreams = (
        # the reference / FastFCN FCNHead: block = Sequential(conv, bn, relu, dropout, classifier)
        Upstream("reference", "fcn", rules=conv_bn_act_keys(r"head\.block", "head.fcn.block")
                 + ((r"head\.block\.4", "head.fcn.classifier"),), classifier="head.block.4.weight"),
        # torchvision's FCNHead: classifier = Sequential(conv, bn, relu, dropout, conv)
        Upstream("torchvision", "fcn", rules=conv_bn_act_keys(r"classifier", "head.fcn.block")
                 + ((r"classifier\.4", "head.fcn.classifier"),), classifier="classifier.4.weight"),
        # mmseg's FCNHead: convs.0..n-1 (ConvModule conv/bn), conv_cat, conv_seg; the fcn-d6 models dilate the convs
        Upstream("mmseg", "fcn", catalogue="fcn", adapter=_mmseg_options,
                 options={"num_convs": 2, "concat_input": True}, rules=MMSEG_FCN_RULES,
                 classifier="decode_head.conv_seg.weight"),
        Upstream("mmseg", "fcn_d6", catalogue="fcn-d6", adapter=_mmseg_options,
                 options={"num_convs": 2, "concat_input": True, "dilation": 6},
                 rules=MMSEG_FCN_RULES, classifier="decode_head.conv_seg.weight"),
    )
    pretrained = (
        PretrainedSpec.reference("fcn_resnet101s_jpu.ref_voc", "fcn", "voc", 76.89, pixacc=94.50,
                                 short_name="fcn_resnet101_voc", drive_id="1-FF5BUSB9hNCyldC1nV35LeWLSQFa9Jl"),
        PretrainedSpec.reference("fcn_resnet101s_jpu.ref_citys", "fcn", "citys", 78.61, pixacc=96.18,
                                 short_name="fcn_resnet101_citys", drive_id="119bPxJwL6zAtEyvEJiHljK6US9f-d5Xr"),
        PretrainedSpec.torchvision("fcn_resnet50.tv_coco_voc", "fcn", "resnet50", 60.5, 91.4,
                                   "fcn_resnet50_coco-1167a1af.pth"),
        PretrainedSpec.torchvision("fcn_resnet101.tv_coco_voc", "fcn", "resnet101", 63.7, 91.9,
                                   "fcn_resnet101_coco-7ecb50ca.pth"),
        FromCatalogue("mmseg"),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 dropout: float = 0.1, channels: Optional[int] = None, num_convs: int = 1, kernel_size: int = 3,
                 dilation: int = 1, concat_input: bool = False):
        super().__init__()
        check_int("FCN", channels=channels, minimum=1, optional=True)
        check_int("FCN", num_convs=num_convs, dilation=dilation, minimum=1)
        check_int("FCN", kernel_size=kernel_size, minimum=1)
        if kernel_size % 2 == 0:
            raise ConfigError(f"FCN kernel_size must be odd (the output keeps its size), got {kernel_size}")
        check_bool("FCN", concat_input=concat_input)
        check_fraction("FCN", dropout=dropout)
        self.fcn = FCNBlock(in_channels["c4"], num_classes, hidden_channels=channels, dropout=dropout,
                            num_convs=num_convs, kernel_size=kernel_size, dilation=dilation,
                            concat_input=concat_input)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        return self.fcn(features["c4"])
