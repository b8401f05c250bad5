"""FCN head (Long et al., "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015),
in the form the reference and FastFCN use: one FCN block on the last feature map."""
from __future__ import annotations

from torch import Tensor

from ..layers import FCNBlock
from ..upstream import PretrainedSpec, Upstream, conv_bn_act_keys
from .base import SegmentationHead

__all__ = ["FCNHead"]


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
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 dropout: float = 0.1):
        super().__init__()
        self.fcn = FCNBlock(in_channels["c4"], num_classes, dropout=dropout)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        return self.fcn(features["c4"])
