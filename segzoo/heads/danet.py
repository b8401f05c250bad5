"""DANet head (Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..layers import ChannelAttention, ConvBnAct, spatial_attention
from ..upstream import FromCatalogue, PretrainedSpec, Upstream, conv_bn_act_keys
from .base import SegmentationHead
from .options import check_bool, check_choice

__all__ = ["PositionAttention", "DANetHead"]


class PositionAttention(nn.Module):
    """Position attention: ``out = gamma * V A^T + x`` with ``A = softmax(Q^T K)`` over all positions.

    Computed in query chunks (``spatial_attention``), never holding the (HW x HW) matrix.

    Args:
        channels: Input and value channels.
        key_channels: Query/key channels (``channels // 8`` in DANet).
        softmax_over: ``"keys"`` (dim=-1, the paper and the original code) or ``"queries"`` (dim=1, the
            reference zoo's checkpoints).
    """

    # an exported graph (ONNX) computes this attention in one pass: memory grows with (H x W)^2
    unchunked_when_exported = True

    def __init__(self, channels: int, key_channels: int, softmax_over: str = "keys"):
        super().__init__()
        self.softmax_over = softmax_over
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)
        key = self.key(x).flatten(2).transpose(1, 2)
        value = self.value(x).flatten(2).transpose(1, 2)
        out = spatial_attention(query, key, value, scale=1.0, softmax_over=self.softmax_over)
        return self.gamma * out.transpose(1, 2).reshape(batch, channels, height, width) + x


# mmseg's catalogue records -> this head's options (segzoo.upstreams.mmseg builds the entries)
def _mmseg_options(record: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """An mmseg DAHead record builds when it is c4/4 wide with c4/32 attention channels, as segzoo's DANet is."""
    decode = record["decode_head"]
    quarter = decode["in_channels"] // 4
    if decode["channels"] != quarter:
        return {}, f"{decode['channels']} head channels: segzoo's danet head is c4/4 = {quarter} wide"
    if decode.get("pam_channels") != quarter // 8:
        return {}, f"{decode.get('pam_channels')} attention channels: segzoo's DANet uses c4/32"
    return {}, ""


class DANetHead(SegmentationHead):
    """Two branches on c4 (3x3 ConvBnAct to ``c4/4`` each): position attention and channel attention, each
    followed by a 3x3 ConvBnAct; their sum -> Dropout2d(0.1) -> 1x1 classifier.

    Args:
        in_channels: Channels per feature; reads ``c4``.
        num_classes: Number of classes.
        align_corners: Unused (no resampling here).
        softmax_over: Position attention softmax axis, see ``PositionAttention`` (``"keys"`` default).
        deep_supervision: Also predict from each branch (the original DANet's extra outputs, equal loss
            weights; returned in training after the fused output). The reference returns the fused output only.
    """

    citation = """@inproceedings{fu2019danet,
  title={Dual Attention Network for Scene Segmentation},
  author={Fu, Jun and Liu, Jing and Tian, Haijie and Li, Yong and Bao, Yongjun and Fang, Zhiwei and Lu, Hanqing},
  booktitle={CVPR}, year={2019}
}"""

    in_features = ("c4",)
    upstreams = (
        # the reference DANetHead: sa / sc attention modules, conv8 = Sequential(Dropout2d, Conv2d); its
        # position attention softmaxes over the queries, and it returns the fused output only
        Upstream("reference", "danet", options={"softmax_over": "queries", "deep_supervision": False},
                 classifier="head.conv8.1.weight", rules=(
                     conv_bn_act_keys(r"head\.conv5a", "head.conv5a") + conv_bn_act_keys(r"head\.conv5c", "head.conv5c")
                     + ((r"head\.sa\.query_conv", "head.position_attention.query"),
                        (r"head\.sa\.key_conv", "head.position_attention.key"),
                        (r"head\.sa\.value_conv", "head.position_attention.value"),
                        (r"head\.sa\.gamma", "head.position_attention.gamma"),
                        (r"head\.sc\.gamma", "head.channel_attention.gamma"))
                     + conv_bn_act_keys(r"head\.conv51", "head.conv51")
                     + conv_bn_act_keys(r"head\.conv52", "head.conv52")
                     + ((r"head\.conv8\.1", "head.classifier"),))),
        # mmseg's DAHead: pam/cam branches (in_conv, attention, out_conv) with their own classifiers (the extra
        # outputs of deep supervision), conv_seg on the sum; softmax over the keys
        Upstream("mmseg", "danet", catalogue="danet", adapter=_mmseg_options,
                 options={"softmax_over": "keys", "deep_supervision": True},
                 classifier="decode_head.conv_seg.weight", rules=(
                     (r"decode_head\.pam_in_conv", "head.conv5a"), (r"decode_head\.cam_in_conv", "head.conv5c"),
                     (r"decode_head\.pam\.query_project", "head.position_attention.query"),
                     (r"decode_head\.pam\.key_project", "head.position_attention.key"),
                     (r"decode_head\.pam\.value_project", "head.position_attention.value"),
                     (r"decode_head\.pam\.gamma\.scale", "head.position_attention.gamma"),
                     (r"decode_head\.cam\.gamma\.scale", "head.channel_attention.gamma"),
                     (r"decode_head\.pam_out_conv", "head.conv51"), (r"decode_head\.cam_out_conv", "head.conv52"),
                     (r"decode_head\.pam_conv_seg", "head.position_classifier"),
                     (r"decode_head\.cam_conv_seg", "head.channel_classifier"),
                     (r"decode_head\.conv_seg", "head.classifier"))),
    )
    pretrained = (
        PretrainedSpec.reference("danet_resnet101s_jpu.ref_voc", "danet", "voc", 78.72, pixacc=94.85,
                                 short_name="danet_resnet101_voc", drive_id="1jS69enf_dyn8l27DfMDuzt_ulva7KSWt"),
        PretrainedSpec.reference("danet_resnet101s_jpu.ref_citys", "danet", "citys", None,
                                 short_name="danet_resnet101_citys"),
        FromCatalogue("mmseg"),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 softmax_over: str = "keys", deep_supervision: bool = True):
        super().__init__()
        check_choice("DANet", "softmax_over", softmax_over, ("keys", "queries"))
        check_bool("DANet", deep_supervision=deep_supervision)
        channels = in_channels["c4"] // 4
        self.conv5a = ConvBnAct(in_channels["c4"], channels)
        self.conv5c = ConvBnAct(in_channels["c4"], channels)
        self.position_attention = PositionAttention(channels, channels // 8, softmax_over)
        self.channel_attention = ChannelAttention()
        self.conv51 = ConvBnAct(channels, channels)
        self.conv52 = ConvBnAct(channels, channels)
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.deep_supervision = deep_supervision
        if deep_supervision:
            self.position_classifier = nn.Conv2d(channels, num_classes, 1)
            self.channel_classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None):
        x = features["c4"]
        position = self.conv51(self.position_attention(self.conv5a(x)))
        channel = self.conv52(self.channel_attention(self.conv5c(x)))
        fused = self.classifier(self.dropout(position + channel))
        if not (self.training and self.deep_supervision):
            return fused
        return (fused, self.position_classifier(self.dropout(position)),
                self.channel_classifier(self.dropout(channel)))
