"""BiSeNet head (Yu et al., "BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation",
ECCV 2018), with the backbone (ResNet-18 in the paper) as context path and a spatial path on the image."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..layers import ConvBnAct, FCNBlock, concat_channels
from ..upstream import FromCatalogue, PretrainedSpec, Upstream
from .base import SegmentationHead
from .options import check_choice, check_int

__all__ = ["SpatialPath", "AttentionRefinement", "FeatureFusion", "BiSeNetHead"]

UPSAMPLE_MODES = ("bilinear", "nearest")
FUSION_ATTENTIONS = ("two_convs", "conv_bn_act")

# mmseg keeps the whole network in its "backbone" (BiSeNetV1: context path with the ResNet inside, spatial path,
# fusion) and reads it with an FCN decode head and two FCN auxiliary heads (ConvModule = conv/bn).
_MMSEG_CONTEXT = r"backbone\.context_path"
MMSEG_BISENETV1_RULES = (
    (rf"{_MMSEG_CONTEXT}\.backbone", "backbone"),  # the ResNet (v1b: conv1/bn1/layer1..4, timm's names)
    (rf"{_MMSEG_CONTEXT}\.gap_conv\.1", "head.global_context"),
    (rf"{_MMSEG_CONTEXT}\.arm32\.conv_layer", "head.arm_c4.conv"),
    (rf"{_MMSEG_CONTEXT}\.arm32\.atten_conv_layer\.1", "head.arm_c4.attention"),
    (rf"{_MMSEG_CONTEXT}\.arm16\.conv_layer", "head.arm_c3.conv"),
    (rf"{_MMSEG_CONTEXT}\.arm16\.atten_conv_layer\.1", "head.arm_c3.attention"),
    (rf"{_MMSEG_CONTEXT}\.conv_head32", "head.refine_c4"),
    (rf"{_MMSEG_CONTEXT}\.conv_head16", "head.refine_c3"),
    *((rf"backbone\.spatial_path\.layer{i + 1}", f"head.spatial_path.conv{i + 1}") for i in range(3)),
    (r"backbone\.spatial_path\.layer4", "head.spatial_path.conv_out"),
    (r"backbone\.ffm\.conv1", "head.fusion.conv"),
    (r"backbone\.ffm\.conv_atten\.0", "head.fusion.attention"),
    (r"decode_head\.convs\.0", "head.main_head.block"),
    (r"decode_head\.conv_seg", "head.main_head.classifier"),
    # mmseg's first aux head reads the /8 context output, segzoo's first the /16 one
    (r"auxiliary_head\.0\.convs\.0", "head.aux_heads.1.block"),
    (r"auxiliary_head\.0\.conv_seg", "head.aux_heads.1.classifier"),
    (r"auxiliary_head\.1\.convs\.0", "head.aux_heads.0.block"),
    (r"auxiliary_head\.1\.conv_seg", "head.aux_heads.0.classifier"),
)
# mmseg's bisenetv1_r18-d32 configs; its R50 / R101 ones widen everything (entries set those options)
MMSEG_BISENETV1_OPTIONS = {"upsample_mode": "nearest", "spatial_channels": (64, 64, 64, 128),
                           "context_channels": 128, "fusion_channels": 256, "fusion_attention": "conv_bn_act",
                           "head_channels": 256, "aux_channels": 64}


class SpatialPath(nn.Module):
    """Three stride-2 ConvBnActs (7x7, 3x3, 3x3) and a 1x1 ConvBnAct: a wide /8 map of the image.

    Args:
        channels: Output widths of the four layers (the last is the path's output).
        in_chans: Channels of the image (3 for RGB).
    """

    def __init__(self, channels: Sequence[int] = (64, 64, 64, 128), in_chans: int = 3):
        super().__init__()
        c1, c2, c3, out = channels
        self.conv1 = ConvBnAct(in_chans, c1, kernel_size=7, stride=2)
        self.conv2 = ConvBnAct(c1, c2, stride=2)
        self.conv3 = ConvBnAct(c2, c3, stride=2)
        self.conv_out = ConvBnAct(c3, out, kernel_size=1)

    def forward(self, image: Tensor) -> Tensor:
        return self.conv_out(self.conv3(self.conv2(self.conv1(image))))


class AttentionRefinement(nn.Module):
    """3x3 ConvBnAct, then a channel attention (global pool, 1x1 conv, BN, sigmoid) multiplied in."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBnAct(in_channels, out_channels)
        self.attention = ConvBnAct(out_channels, out_channels, kernel_size=1, act=None)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return x * torch.sigmoid(self.attention(F.adaptive_avg_pool2d(x, 1)))


class FeatureFusion(nn.Module):
    """1x1 ConvBnAct on the concatenated paths; ``out = f + f * attention(f)``, the attention a sigmoid over the
    globally pooled ``f``.

    Args:
        in_channels: Channels of the two paths together.
        out_channels: Channels of the fused map.
        attention: How the pooled map becomes the attention: ``"two_convs"`` (the paper's 1x1 conv, ReLU, 1x1
            conv, both with bias) or ``"conv_bn_act"`` (mmseg's one 1x1 conv without bias, BN, ReLU).
    """

    def __init__(self, in_channels: int, out_channels: int, attention: str = "two_convs"):
        super().__init__()
        self.conv = ConvBnAct(in_channels, out_channels, kernel_size=1)
        if attention == "two_convs":
            self.attention_reduce = nn.Conv2d(out_channels, out_channels, 1)
            self.attention_expand = nn.Conv2d(out_channels, out_channels, 1)
        else:
            self.attention = ConvBnAct(out_channels, out_channels, kernel_size=1)
        self.attention_kind = attention

    def _attention(self, pooled: Tensor) -> Tensor:
        if self.attention_kind == "two_convs":
            return self.attention_expand(F.relu(self.attention_reduce(pooled)))
        return self.attention(pooled)

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        fused = self.conv(concat_channels([spatial, context]))
        attention = torch.sigmoid(self._attention(F.adaptive_avg_pool2d(fused, 1)))
        return fused + fused * attention


def _check_spatial_channels(value) -> tuple[int, int, int, int]:
    if not isinstance(value, (tuple, list)) or len(value) != 4 or any(
            isinstance(item, bool) or not isinstance(item, int) or item < 1 for item in value):
        raise ConfigError(f"BiSeNet spatial_channels must be four integers >= 1, got {value!r}")
    return tuple(value)


# mmseg's catalogue records -> this head's options (segzoo.upstreams.mmseg builds the entries)
def _mmseg_options(record: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """An mmseg BiSeNetV1 record's widths (its R50 / R101 configs widen everything)."""
    widths = record["backbone"]
    # mmseg's aux heads are half as wide as the context path (64 for R18's 128, 256 for R50's 512)
    context = widths["context_channels"][0]
    return {"spatial_channels": tuple(widths["spatial_channels"]), "context_channels": context,
            "fusion_channels": widths["out_channels"], "head_channels": record["decode_head"]["channels"],
            "aux_channels": context // 2}, ""


class BiSeNetHead(SegmentationHead):
    """Context path on c3/c4 (global context + attention refinement), spatial path on the image, feature
    fusion, and a 3x3 + 1x1 head; with ``aux`` two more heads on the /16 and /8 context outputs (all loss
    weights 1 in the paper). Use it on an output-stride-32 backbone.

    The defaults are the reference zoo's BiSeNet; mmseg's ``BiSeNetV1`` is the same network with other widths,
    nearest upsampling in the context path and a one-conv fusion attention (the ``mmseg`` form's options).

    Args:
        in_channels: Channels per feature; reads ``c3`` and ``c4``.
        num_classes: Number of classes.
        align_corners: Bilinear upsampling mode of the context path.
        aux: Build the two auxiliary heads (returned in training after the main output).
        upsample_mode: How the context path upsamples: ``"bilinear"`` (default) or ``"nearest"`` (mmseg).
        spatial_channels: Widths of the spatial path's four layers; default ``(64, 64, 64, context_channels)``.
        context_channels: Width of the context path (128).
        fusion_channels: Width of the fused map; default ``2 * context_channels`` (mmseg's ``out_channels``).
        fusion_attention: The fusion's attention: ``"two_convs"`` (default) or ``"conv_bn_act"`` (mmseg); see
            ``FeatureFusion``.
        head_channels: Hidden width of the main FCN head (64; mmseg: its decode head's ``channels``).
        aux_channels: Hidden width of the two aux heads (256; mmseg: its auxiliary heads' ``channels``).
        in_chans: Channels of the image the spatial path reads (the model's ``in_chans``, which the model passes).
    """

    citation = """@inproceedings{yu2018bisenet,
  title={BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation},
  author={Yu, Changqian and Wang, Jingbo and Peng, Chao and Gao, Changxin and Yu, Gang and Sang, Nong},
  booktitle={ECCV}, year={2018}
}"""

    in_features = ("c3", "c4")
    needs_image = True
    handles_aux = True
    aux_loss_weight = 1.0  # the paper weights its two aux losses like the main one
    output_stride = 32  # the context path is a plain (undilated) backbone
    takes_neck = False  # the context path is the backbone's own c3 / c4
    image_convs = ("spatial_path.conv1.conv",)  # reads the image: adapted to a checkpoint of another in_chans
    upstreams = (
        # The reference zoo reports a BiSeNet (ResNet-18 context path, the defaults) but published no checkpoint.
        Upstream("reference", "bisenet"),
        # mmseg's BiSeNetV1 (its R18 configs; a v1b ResNet at output stride 32)
        Upstream("mmseg", "bisenetv1", catalogue="bisenetv1", adapter=_mmseg_options,
                 options=MMSEG_BISENETV1_OPTIONS, rules=MMSEG_BISENETV1_RULES,
                 classifier="decode_head.conv_seg.weight"),
    )
    pretrained = (
        PretrainedSpec.reference("bisenet_resnet18.ref_voc", "bisenet", "voc", 67.11, backbone="resnet18",
                                 output_stride=32, short_name="bisenet_resnet18_voc"),
        PretrainedSpec.reference("bisenet_resnet18.ref_citys", "bisenet", "citys", None, backbone="resnet18",
                                 output_stride=32, short_name="bisenet_resnet18_citys"),
        FromCatalogue("mmseg"),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 aux: bool = False, upsample_mode: str = "bilinear",
                 spatial_channels: Optional[Sequence[int]] = None, context_channels: int = 128,
                 fusion_channels: Optional[int] = None, fusion_attention: str = "two_convs",
                 head_channels: int = 64, aux_channels: int = 256, in_chans: int = 3):
        super().__init__()
        check_choice("BiSeNet", "upsample_mode", upsample_mode, UPSAMPLE_MODES)
        check_choice("BiSeNet", "fusion_attention", fusion_attention, FUSION_ATTENTIONS)
        check_int("BiSeNet", minimum=1, context_channels=context_channels, head_channels=head_channels,
                  aux_channels=aux_channels, in_chans=in_chans)
        check_int("BiSeNet", minimum=1, optional=True, fusion_channels=fusion_channels)
        width = context_channels
        spatial_channels = _check_spatial_channels((64, 64, 64, width) if spatial_channels is None
                                                   else spatial_channels)
        fusion_channels = fusion_channels or 2 * width
        self.align_corners = align_corners
        self.upsample_mode = upsample_mode
        self.spatial_path = SpatialPath(spatial_channels, in_chans)
        self.global_context = ConvBnAct(in_channels["c4"], width, kernel_size=1)
        self.arm_c4 = AttentionRefinement(in_channels["c4"], width)
        self.arm_c3 = AttentionRefinement(in_channels["c3"], width)
        self.refine_c4 = ConvBnAct(width, width)
        self.refine_c3 = ConvBnAct(width, width)
        self.fusion = FeatureFusion(spatial_channels[-1] + width, fusion_channels, fusion_attention)
        self.main_head = FCNBlock(fusion_channels, num_classes, hidden_channels=head_channels)
        self.aux_heads = nn.ModuleList(FCNBlock(width, num_classes, hidden_channels=aux_channels)
                                       for _ in range(2)) if aux else None

    def _upsample(self, x: Tensor, size) -> Tensor:
        if self.upsample_mode == "nearest":  # align_corners means nothing to nearest
            return F.interpolate(x, size, mode="nearest")
        return F.interpolate(x, size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None):
        c3, c4 = features["c3"], features["c4"]
        spatial = self.spatial_path(image)
        global_context = self.global_context(F.adaptive_avg_pool2d(c4, 1))
        # the /8 spatial map has the size of the backbone's /8 features (both halve with ceil three times)
        out16 = self.refine_c4(self._upsample(self.arm_c4(c4) + global_context, c3.shape[-2:]))
        out8 = self.refine_c3(self._upsample(self.arm_c3(c3) + out16, spatial.shape[-2:]))
        main = self.main_head(self.fusion(spatial, out8))
        if not (self.training and self.aux_heads is not None):
            return main
        return main, self.aux_heads[0](out16), self.aux_heads[1](out8)
