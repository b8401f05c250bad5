"""OCNet head (Yuan & Wang, "OCNet: Object Context Network for Scene Parsing", 2018): Base-OC and ASP-OC."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..layers import ConvBnAct, concat_channels, spatial_attention
from ..layers.conv_bn_act import ACTIVATIONS
from ..upstream import PretrainedSpec, Upstream, conv_bn_act_keys
from .base import SegmentationHead
from .options import check_choice, check_int, check_ints

__all__ = ["ObjectContext", "OCNetHead"]


class ObjectContext(nn.Module):
    """Object context: self-attention with one shared query/key projection.

    ``key_query`` (1x1 conv with bias + BN + act) serves as both query and key (the reference state dict
    holds it twice, as ``f_key`` and ``f_query``); ``value`` is a 1x1 conv; ``out_proj`` (1x1, initialised
    to zero, so the block starts as "no context") maps back. With ``scale > 1`` the attention runs on a
    max-pooled map and is upsampled back.
    """

    # an exported graph (ONNX) computes this attention in one pass: memory grows with (H x W)^2
    unchunked_when_exported = True

    def __init__(self, in_channels: int, key_channels: int, value_channels: int, out_channels: int,
                 scale: int = 1, act: str = "relu", align_corners: bool = True):
        super().__init__()
        self.scale = scale
        self.align_corners = align_corners
        self.key_channels = key_channels
        self.key_query = ConvBnAct(in_channels, key_channels, kernel_size=1, act=act, bias=True)
        self.value = nn.Conv2d(in_channels, value_channels, 1)
        self.out_proj = nn.Conv2d(value_channels, out_channels, 1)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        if self.scale > 1:
            x = F.max_pool2d(x, self.scale)
        batch, _, height, width = x.shape
        query_key = self.key_query(x).flatten(2).transpose(1, 2)
        value = self.value(x).flatten(2).transpose(1, 2)
        context = spatial_attention(query_key, query_key, value, scale=self.key_channels ** -0.5)
        context = self.out_proj(context.transpose(1, 2).reshape(batch, -1, height, width))
        if self.scale > 1:
            context = F.interpolate(context, size, mode="bilinear", align_corners=self.align_corners)
        return context


def _object_context_keys(source: str) -> tuple:
    """The reference's OC module at ``source``: one stage with f_key (conv, bn, relu), f_value and W."""
    stage, target = rf"{source}\.stages\.0", "head.object_context"
    return conv_bn_act_keys(rf"{stage}\.f_key", f"{target}.key_query") + (
        (rf"{stage}\.f_value", f"{target}.value"), (rf"{stage}\.W", f"{target}.out_proj"))


# Base-OC: context = Sequential(conv, bn, relu, BaseOC); the OC module's own fuse is conv_bn_dropout.
_BASE_OC_KEYS = (conv_bn_act_keys(r"context", "head.reduce") + _object_context_keys(r"context\.3")
                 + conv_bn_act_keys(r"context\.3\.conv_bn_dropout", "head.fuse") + ((r"cls", "head.classifier"),))
# ASP-OC: context.0 holds the branches; its first branch ("context") is Sequential(conv, bn, relu, OC module).
_ASP_OC_KEYS = (conv_bn_act_keys(r"context\.0\.context", "head.context_conv")
                + _object_context_keys(r"context\.0\.context\.3")
                + conv_bn_act_keys(r"context\.0\.context\.3\.conv_bn_dropout", "head.context_fuse")
                + conv_bn_act_keys(r"context\.0\.conv2", "head.conv1x1")
                + tuple(rule for i in range(3)
                        for rule in conv_bn_act_keys(rf"context\.0\.conv{i + 3}", f"head.atrous.{i}"))
                + conv_bn_act_keys(r"context\.0\.conv_bn_dropout", "head.fuse") + ((r"cls", "head.classifier"),))
# The reference's f_query is the very module f_key (two names): placed by checking it equals f_key.
_F_QUERY_IS_F_KEY = ((r"(.*)\.f_query", r"\1.f_key"),)


class OCNetHead(SegmentationHead):
    """OCNet head on c4.

    Base-OC (``variant="base"``): 3x3 conv (bias) + BN + act to 512; object context (key 256, value 256);
    concat [context, x] -> 1x1 conv (bias) + BN + act -> Dropout2d(0.05) -> 1x1 classifier.

    ASP-OC (``variant="asp"``): an optional 3x3 reduction (``asp_reduce_channels``, 0 for none), then five parallel
    branches of ``asp_branch_channels`` each: object context at half resolution (3x3 conv + object context
    + 1x1 conv), a 1x1 branch and three dilated 3x3 branches (``asp_rates``); concat -> 1x1 ConvBnAct to 512
    -> Dropout2d(0.1) -> 1x1 classifier. The original OCNet reduces to 512 first with 256-wide branches
    (the default); the reference zoo has no reduction and 512-wide branches
    (``asp_reduce_channels=0, asp_branch_channels=512``).

    Args:
        in_channels: Channels per feature; reads ``c4``.
        num_classes: Number of classes.
        align_corners: Upsampling mode of the half-resolution context.
        variant: ``"base"`` or ``"asp"``.
        activation: ``"leaky_relu"`` (slope 0.01: the original's in-place ABN, default) or ``"relu"``
            (the reference zoo).
        asp_reduce_channels: ASP-OC's first 3x3 reduction width, or 0 for none (not None: create_model
            ignores arguments given as None).
        asp_branch_channels: ASP-OC branch width.
        asp_rates: ASP-OC dilation rates.
    """

    citation = """@article{yuan2018ocnet,
  title={OCNet: Object Context Network for Scene Parsing},
  author={Yuan, Yuhui and Wang, Jingdong},
  journal={arXiv preprint arXiv:1809.00916}, year={2018}
}"""

    in_features = ("c4",)
    upstreams = (
        Upstream("reference", "ocnet_base", options={"activation": "relu"}, rules=_BASE_OC_KEYS,
                 classifier="cls.weight", shared=_F_QUERY_IS_F_KEY),
        Upstream("reference", "ocnet_asp", options={"variant": "asp", "activation": "relu", "asp_reduce_channels": 0,
                                                    "asp_branch_channels": 512},
                 rules=_ASP_OC_KEYS, classifier="cls.weight", shared=_F_QUERY_IS_F_KEY),
    )
    pretrained = (
        PretrainedSpec.reference("ocnet_resnet101s_jpu.ref_voc", "ocnet_base", "voc", 79.07, pixacc=94.86,
                                 short_name="ocnet_resnet101_voc", drive_id="15gs_gzgAT_hciPgwm12G_MRMi0VZg9Gb"),
        PretrainedSpec.reference("ocnet_resnet101s_jpu.ref_citys", "ocnet_base", "citys", 74.18, pixacc=96.30,
                                 short_name="ocnet_resnet101_citys", drive_id="1q2h8d_mJeyHfmCRQellTSpralv8ubI5L",
                                 note="evaluated on centre crops"),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = True,
                 variant: str = "base", activation: str = "leaky_relu", asp_reduce_channels: int = 512,
                 asp_branch_channels: int = 256, asp_rates=(12, 24, 36)):
        super().__init__()
        if variant not in ("base", "asp"):
            raise ConfigError(f"OCNet variant must be 'base' or 'asp', got {variant!r}")
        check_choice("OCNet", "activation", activation, ACTIVATIONS)
        check_int("OCNet", asp_reduce_channels=asp_reduce_channels, minimum=0)
        check_int("OCNet", asp_branch_channels=asp_branch_channels, minimum=2)  # its object context uses half
        check_ints("OCNet", asp_rates=asp_rates, minimum=1)
        self.variant = variant
        channels = in_channels["c4"]
        width = 512
        if variant == "base":
            self.reduce = ConvBnAct(channels, width, act=activation, bias=True)
            self.object_context = ObjectContext(width, width // 2, width // 2, width, act=activation,
                                                align_corners=align_corners)
            self.fuse = ConvBnAct(2 * width, width, kernel_size=1, act=activation, bias=True)
            self.dropout = nn.Dropout2d(0.05)
        else:
            self.reduce = (ConvBnAct(channels, asp_reduce_channels, act=activation, bias=True)
                           if asp_reduce_channels else nn.Identity())
            channels = asp_reduce_channels or channels
            branch = asp_branch_channels
            self.context_conv = ConvBnAct(channels, branch, act=activation, bias=True)
            self.object_context = ObjectContext(branch, branch // 2, branch, branch, scale=2, act=activation,
                                                align_corners=align_corners)
            self.context_fuse = ConvBnAct(branch, branch, kernel_size=1, act=activation, bias=True)
            self.conv1x1 = ConvBnAct(channels, branch, kernel_size=1, act=activation)
            self.atrous = nn.ModuleList(ConvBnAct(channels, branch, dilation=rate, act=activation)
                                        for rate in asp_rates)
            self.fuse = ConvBnAct(branch * (len(asp_rates) + 2), width, kernel_size=1, act=activation)
            self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        x = self.reduce(features["c4"])
        if self.variant == "base":
            x = concat_channels([self.object_context(x), x])
        else:
            context = self.context_fuse(self.object_context(self.context_conv(x)))
            x = concat_channels([context, self.conv1x1(x), *(branch(x) for branch in self.atrous)])
        return self.classifier(self.dropout(self.fuse(x)))
