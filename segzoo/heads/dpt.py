"""DPT's head (Ranftl et al., "Vision Transformers for Dense Prediction", ICCV 2021): reassemble a ViT's four levels
into a pyramid, fuse it top-down with residual convolution units, classify at half the input's resolution. In
mmsegmentation's form (``DPTHead``) and transformers' (``DPTForSemanticSegmentation``'s neck and head): the same
network, which differs in whether the residual units have BatchNorms and whether the head upsamples its logits."""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..layers import ConvBnAct
from ..upstream import Upstream
from .base import SegmentationHead
from .options import check_bool, check_choice, check_fraction, check_int, check_ints

__all__ = ["DPTHead", "READOUTS"]

READOUTS = ("auto", "project", "add", "ignore")
_LEVELS = ("c1", "c2", "c3", "c4")

_MMSEG_RULES = (
    (r"decode_head\.reassemble_blocks\.readout_projects\.(\d)\.0", r"head.readout_projects.\1"),
    (r"decode_head\.reassemble_blocks\.projects\.(\d)\.conv", r"head.projects.\1"),
    (r"decode_head\.reassemble_blocks\.resize_layers\.(\d)", r"head.resize_layers.\1"),
    (r"decode_head\.convs\.(\d)\.conv", r"head.convs.\1"),
    (r"decode_head\.fusion_blocks\.(\d)\.project\.conv", r"head.fusion_blocks.\1.project"),
    (r"decode_head\.fusion_blocks\.(\d)\.res_conv_unit(\d)", r"head.fusion_blocks.\1.res_conv_unit\2"),
    (r"decode_head\.project", "head.project"),
    (r"decode_head\.conv_seg", "head.classifier"),
)
_FUSION = r"neck\.fusion_stage\.layers\.(\d)"
_TRANSFORMERS_RULES = (
    (r"neck\.reassemble_stage\.readout_projects\.(\d)\.0", r"head.readout_projects.\1"),
    (r"neck\.reassemble_stage\.layers\.(\d)\.projection", r"head.projects.\1"),
    (r"neck\.reassemble_stage\.layers\.(\d)\.resize", r"head.resize_layers.\1"),
    (r"neck\.convs\.(\d)", r"head.convs.\1"),
    (_FUSION + r"\.projection", r"head.fusion_blocks.\1.project"),
    (_FUSION + r"\.residual_layer(\d)\.convolution(\d)", r"head.fusion_blocks.\1.res_conv_unit\2.conv\3.conv"),
    (_FUSION + r"\.residual_layer(\d)\.batch_norm(\d)", r"head.fusion_blocks.\1.res_conv_unit\2.conv\3.bn"),
    (r"head\.head\.0", "head.project.conv"),
    (r"head\.head\.1", "head.project.bn"),
    (r"head\.head\.4", "head.classifier"),
)


class _PreActConv(nn.Module):
    """ReLU, 3x3 convolution, then a BatchNorm (``norm``) or none (the convolution then has a bias)."""

    def __init__(self, channels: int, norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=not norm)
        self.bn = nn.BatchNorm2d(channels) if norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(F.relu(x)))


class _ResidualUnit(nn.Module):
    """Two pre-activated convolutions around a skip connection."""

    def __init__(self, channels: int, norm: bool):
        super().__init__()
        self.conv1 = _PreActConv(channels, norm)
        self.conv2 = _PreActConv(channels, norm)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


class _FusionBlock(nn.Module):
    """The running map plus a residual unit of the next level (resized to it, bilinear, ``align_corners=False``),
    a residual unit, x2 upsampling (bilinear, ``align_corners=True``, as both upstreams), a 1x1 projection. The top
    block has no next level (``first``)."""

    def __init__(self, channels: int, norm: bool, first: bool):
        super().__init__()
        self.res_conv_unit1 = None if first else _ResidualUnit(channels, norm)
        self.res_conv_unit2 = _ResidualUnit(channels, norm)
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor, level: Tensor | None = None) -> Tensor:
        if level is not None:
            # always resized (to its own size it is a copy): a size test would be fixed at the size an export traced
            level = F.interpolate(level, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = x + self.res_conv_unit1(level)
        x = self.res_conv_unit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.project(x)


class DPTHead(SegmentationHead):
    """DPT over c1 .. c4 (a ViT's four levels, one stride; on a pyramid backbone each level is resized to the running
    map where they meet, so it works on any backbone). Reassemble: each level's class token read out into its
    patch tokens (``readout``), a 1x1 convolution to ``post_process_channels[i]`` and a resize by 4, 2, 1 and 1/2
    (transposed convolutions, identity, a strided 3x3), then a 3x3 convolution to ``channels``. Fusion, top level
    first: four blocks of residual units, each upsampling x2. Then a 3x3 ConvBnAct, Dropout2d and a 1x1 classifier:
    logits at 8 times the levels' resolution (half the input's for a patch-16 ViT); ``upsample_logits`` doubles that
    as transformers' head does (bilinear, ``align_corners=True``).

    Readouts: ``"project"`` (DPT's models: the token concatenated to every patch token, a linear layer back to the
    width and a GELU), ``"add"`` (the token added) and ``"ignore"``; the first two need a backbone with a class token
    and no neck. ``"auto"``: ``"project"`` where the backbone gives class tokens, else ``"ignore"`` (DPT on any
    backbone).

    Args:
        in_channels: Channels per feature; reads ``c1`` .. ``c4``.
        num_classes: Number of classes.
        align_corners: The model's upsampling mode (the head's own resizes are the upstreams' fixed ones).
        channels: Width of the fusion (256).
        post_process_channels: Width of each reassembled level (mmseg's ViT-B: 96, 192, 384, 768; transformers'
            ``neck_hidden_sizes``, DPT-Large: 256, 512, 1024, 1024).
        readout: ``"auto"``, ``"project"``, ``"add"`` or ``"ignore"``.
        residual_norm: BatchNorms in the residual units (mmseg's; transformers': its config's
            ``use_batch_norm_in_fusion_residual``); without them their convolutions have biases.
        upsample_logits: Upsample the logits x2 in the head (transformers').
        dropout: Dropout before the classifier (0.1).
        has_class_token: Set by the model: whether the levels come with class tokens (``readout="auto"``).
    """

    citation = """@inproceedings{ranftl2021vision,
  title={Vision Transformers for Dense Prediction},
  author={Ranftl, Ren{\\'e} and Bochkovskiy, Alexey and Koltun, Vladlen},
  booktitle={ICCV}, year={2021}
}"""

    in_features = _LEVELS
    output_stride = 32
    upstreams = (
        Upstream("mmseg", "dpt", options={"readout": "project"}, classifier="decode_head.conv_seg.weight",
                 rules=_MMSEG_RULES),
        Upstream("transformers", "dpt", options={"upsample_logits": True}, classifier="head.head.4.weight",
                 rules=_TRANSFORMERS_RULES),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = False,
                 channels: int = 256, post_process_channels: Sequence[int] = (96, 192, 384, 768),
                 readout: str = "auto", residual_norm: bool = True, upsample_logits: bool = False,
                 dropout: float = 0.1, has_class_token: bool = False):
        super().__init__()
        check_int("DPT", channels=channels, minimum=1)
        check_ints("DPT", minimum=1, post_process_channels=post_process_channels)
        check_choice("DPT", "readout", readout, READOUTS)
        check_bool("DPT", residual_norm=residual_norm, upsample_logits=upsample_logits)
        check_fraction("DPT", dropout=dropout)
        if len(post_process_channels) != len(_LEVELS):
            raise ConfigError(f"DPT post_process_channels must give {len(_LEVELS)} widths (c1 .. c4), "
                              f"got {post_process_channels!r}")
        widths = [in_channels[name] for name in _LEVELS]
        post = tuple(post_process_channels)
        if readout == "auto":
            readout = "project" if has_class_token else "ignore"
        self.readout = readout
        self.reads_class_token = readout != "ignore"
        self.upsample_logits = upsample_logits
        if readout == "project":
            self.readout_projects = nn.ModuleList(nn.Linear(2 * width, width) for width in widths)
        self.projects = nn.ModuleList(nn.Conv2d(width, c, 1) for width, c in zip(widths, post))
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(post[0], post[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(post[1], post[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(post[3], post[3], kernel_size=3, stride=2, padding=1)])
        self.convs = nn.ModuleList(nn.Conv2d(c, channels, 3, padding=1, bias=False) for c in post)
        self.fusion_blocks = nn.ModuleList(_FusionBlock(channels, residual_norm, first=i == 0)
                                           for i in range(len(_LEVELS)))
        self.project = ConvBnAct(channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def _read_out(self, index: int, x: Tensor, token: Tensor | None) -> Tensor:
        if self.readout == "add":
            return x + token[:, :, None, None]
        if self.readout == "ignore":
            return x
        # Linear([patch, token]) = patch @ W_patch^T + (token @ W_token^T + b): the token's part once per image,
        # not concatenated to every patch
        linear = self.readout_projects[index]
        width = x.shape[1]
        patches = F.linear(x.permute(0, 2, 3, 1), linear.weight[:, :width])
        patches = patches + F.linear(token, linear.weight[:, width:], linear.bias)[:, None, None, :]
        return F.gelu(patches).permute(0, 3, 1, 2)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        levels = []
        for i, name in enumerate(_LEVELS):
            x = self._read_out(i, features[name], features.get(f"{name}_class_token"))
            levels.append(self.convs[i](self.resize_layers[i](self.projects[i](x))))
        x = self.fusion_blocks[0](levels[-1])
        for block, level in zip(self.fusion_blocks[1:], reversed(levels[:-1])):
            x = block(x, level)
        logits = self.classifier(self.dropout(self.project(x)))
        if self.upsample_logits:
            logits = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=True)
        return logits
