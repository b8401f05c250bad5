"""CCNet head (Huang et al., "CCNet: Criss-Cross Attention for Semantic Segmentation", ICCV 2019)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from ..errors import ConfigError
from ..layers import ConvBnAct, CrissCrossAttention, concat_channels
from ..upstream import FromCatalogue, PretrainedSpec, Upstream
from .base import SegmentationHead
from .options import check_choice

__all__ = ["CCNetHead"]


# mmseg's catalogue records -> this head's options (segzoo.upstreams.mmseg builds the entries)
def _mmseg_options(record: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """An mmseg CCHead record's recurrence; segzoo's CCNet is c4/4 wide, so other widths are left out."""
    decode = record["decode_head"]
    quarter = decode["in_channels"] // 4
    if decode["channels"] != quarter:
        return {}, f"{decode['channels']} head channels: segzoo's ccnet head is c4/4 = {quarter} wide"
    return {"recurrence": decode["recurrence"]}, ""


class CCNetHead(SegmentationHead):
    """Recurrent criss-cross attention (RCCA) on c4.

    ``conva`` (3x3 ConvBnAct to ``c4/4``) -> criss-cross attention applied ``recurrence`` times with
    shared weights -> ``convb`` (3x3 ConvBnAct) -> concat with c4 -> 3x3 ConvBnAct to 512 ->
    Dropout2d(0.1) -> 1x1 classifier. Each pass spreads context one "cross" further: two passes reach
    every position, which is why R=2 (the paper) is the default and R=1 (a common porting bug) is not.

    Args:
        in_channels: Channels per feature; reads ``c4``.
        num_classes: Number of classes.
        align_corners: Unused (no resampling here).
        recurrence: Number of criss-cross passes (>= 1).
        activation: ``"relu"`` (default) or ``"leaky_relu"``.
    """

    citation = """@inproceedings{huang2019ccnet,
  title={CCNet: Criss-Cross Attention for Semantic Segmentation},
  author={Huang, Zilong and Wang, Xinggang and Huang, Lichao and Huang, Chang and Wei, Yunchao and Liu, Wenyu},
  booktitle={ICCV}, year={2019}
}"""

    in_features = ("c4",)
    # The reference zoo lists a VOC model with its defaults but published no checkpoint.
    upstreams = (
        Upstream("reference", "ccnet"),
        # mmseg's CCHead (an FCNHead): convs.0 -> mmcv's CrissCrossAttention (cca) x recurrence -> convs.1,
        # conv_cat over the input and that, conv_seg
        Upstream("mmseg", "ccnet", catalogue="ccnet", adapter=_mmseg_options,
                 options={"recurrence": 2}, classifier="decode_head.conv_seg.weight", rules=(
            (r"decode_head\.convs\.0", "head.conva"), (r"decode_head\.convs\.1", "head.convb"),
            (r"decode_head\.cca\.query_conv", "head.attention.query"),
            (r"decode_head\.cca\.key_conv", "head.attention.key"),
            (r"decode_head\.cca\.value_conv", "head.attention.value"),
            (r"decode_head\.cca\.gamma\.scale", "head.attention.gamma"),
            (r"decode_head\.conv_cat", "head.bottleneck"), (r"decode_head\.conv_seg", "head.classifier"))),
    )
    pretrained = (PretrainedSpec.reference("ccnet_resnet101s_jpu.ref_voc", "ccnet", "voc", None,
                                           short_name="ccnet_resnet101_voc"),
                  FromCatalogue("mmseg"))

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 recurrence: int = 2, activation: str = "relu"):
        super().__init__()
        if isinstance(recurrence, bool) or not isinstance(recurrence, int) or recurrence < 1:
            raise ConfigError(f"CCNet recurrence must be an integer >= 1, got {recurrence!r}")
        check_choice("CCNet", "activation", activation, ("relu", "leaky_relu", None))
        self.recurrence = recurrence
        channels = in_channels["c4"] // 4
        self.conva = ConvBnAct(in_channels["c4"], channels, act=activation)
        self.attention = CrissCrossAttention(channels, channels // 8)
        self.convb = ConvBnAct(channels, channels, act=activation)
        self.bottleneck = ConvBnAct(in_channels["c4"] + channels, 512, act=activation)
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(512, num_classes, 1)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        x = features["c4"]
        out = self.conva(x)
        for _ in range(self.recurrence):
            out = self.attention(out)
        out = self.convb(out)
        return self.classifier(self.dropout(self.bottleneck(concat_channels([x, out]))))
