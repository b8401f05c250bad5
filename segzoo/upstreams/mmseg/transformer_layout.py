"""mmsegmentation's transformer-era backbones in its checkpoints, as timm's modules.

mmseg builds UPerNet on its own Swin, BEiT, MAE and ViT and on mmpretrain's ConvNeXt; each is the architecture timm
builds, under other names. The rules below rename every tensor; ``prepare`` makes the few value-preserving changes
the layouts need: Swin's patch merging (mmseg's ``nn.Unfold`` orders the 2x2 neighbourhood channel-major, timm
position-major), MAE's full ``qkv`` bias as timm's query and value biases (a bias on the keys adds the same amount
to every score of a query, which the softmax cancels), and a zero bias for mmseg's ViT patch embedding (which has
none). The per-level norms ``backbone.norm{i}`` (Swin, ConvNeXt) and a ViT's final ``backbone.ln1`` are segzoo's
``feature_norms``; the necks' keys are the necks' own (``MultiLevelNeck``, ``Feature2Pyramid``). The aux head
(an FCN of 256 channels, training only) is left out: eval outputs never read it.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Optional

import torch

from ...config import ModelConfig
from ...registry import get_neck
from ...upstream import KeyRule, Upstream, find_upstream

__all__ = ["VARIANTS", "detect", "rules", "dropped", "prepare"]

SWIN, CONVNEXT, BEIT, MAE, VIT = "mmseg-swin", "mmseg-convnext", "mmseg-beit", "mmseg-mae", "mmseg-vit"
VARIANTS = (SWIN, CONVNEXT, BEIT, MAE, VIT)

_SWIN_BLOCK = r"backbone\.stages\.(\d)\.blocks\.(\d+)"
_SWIN = (
    (r"backbone\.patch_embed\.projection", "backbone.patch_embed.proj"),
    (r"backbone\.patch_embed\.norm", "backbone.patch_embed.norm"),
    (_SWIN_BLOCK + r"\.attn\.w_msa", r"backbone.layers_\1.blocks.\2.attn"),
    (_SWIN_BLOCK + r"\.ffn\.layers\.0\.0", r"backbone.layers_\1.blocks.\2.mlp.fc1"),
    (_SWIN_BLOCK + r"\.ffn\.layers\.1", r"backbone.layers_\1.blocks.\2.mlp.fc2"),
    (_SWIN_BLOCK, r"backbone.layers_\1.blocks.\2"),  # norm1, norm2
    # mmseg merges patches at the end of a stage, timm at the start of the next
    *((rf"backbone\.stages\.{i}\.downsample", f"backbone.layers_{i + 1}.downsample") for i in range(3)),
)
_CONVNEXT_BLOCK = r"backbone\.stages\.(\d)\.(\d+)"
_CONVNEXT = (
    (r"backbone\.downsample_layers\.0\.0", "backbone.stem_0"),
    (r"backbone\.downsample_layers\.0\.1", "backbone.stem_1"),
    (r"backbone\.downsample_layers\.(\d)", r"backbone.stages_\1.downsample"),
    (_CONVNEXT_BLOCK + r"\.depthwise_conv", r"backbone.stages_\1.blocks.\2.conv_dw"),
    (_CONVNEXT_BLOCK + r"\.pointwise_conv1", r"backbone.stages_\1.blocks.\2.mlp.fc1"),
    (_CONVNEXT_BLOCK + r"\.pointwise_conv2", r"backbone.stages_\1.blocks.\2.mlp.fc2"),
    (_CONVNEXT_BLOCK, r"backbone.stages_\1.blocks.\2"),  # norm, gamma
)
_LEVEL_NORMS = tuple((rf"backbone\.norm{i}", f"feature_norms.c{i + 1}") for i in range(4))
_VIT_LAYER = r"backbone\.layers\.(\d+)"
_VIT_COMMON = (
    (r"backbone\.(cls_token|pos_embed)", r"backbone.model.\1"),
    (r"backbone\.patch_embed\.projection", "backbone.model.patch_embed.proj"),
    (_VIT_LAYER + r"\.ln1", r"backbone.model.blocks.\1.norm1"),
    (_VIT_LAYER + r"\.ln2", r"backbone.model.blocks.\1.norm2"),
    (_VIT_LAYER + r"\.ffn\.layers\.0\.0", r"backbone.model.blocks.\1.mlp.fc1"),
    (_VIT_LAYER + r"\.ffn\.layers\.1", r"backbone.model.blocks.\1.mlp.fc2"),
)
_BEIT = _VIT_COMMON + ((_VIT_LAYER, r"backbone.model.blocks.\1"),)  # attn.*, gamma_1, gamma_2
_VIT = _VIT_COMMON + (
    (_VIT_LAYER + r"\.attn\.attn\.in_proj_weight", r"backbone.model.blocks.\1.attn.qkv.weight"),
    (_VIT_LAYER + r"\.attn\.attn\.in_proj_bias", r"backbone.model.blocks.\1.attn.qkv.bias"),
    (_VIT_LAYER + r"\.attn\.attn\.out_proj", r"backbone.model.blocks.\1.attn.proj"),
    (r"backbone\.ln1", "feature_norms.c4"),  # final_norm: the last level only
)
_RULES = {SWIN: _SWIN + _LEVEL_NORMS, CONVNEXT: _CONVNEXT + _LEVEL_NORMS, BEIT: _BEIT, MAE: _BEIT, VIT: _VIT}


def detect(keys: Iterable[str]) -> Optional[str]:
    """The transformer-era backbone of an mmseg checkpoint, or None (a ResNet)."""
    keys = set(keys)
    if "backbone.stages.0.blocks.0.attn.w_msa.qkv.weight" in keys:
        return SWIN
    if "backbone.downsample_layers.0.0.weight" in keys:
        return CONVNEXT
    if "backbone.layers.0.gamma_1" in keys:
        return MAE if "backbone.pos_embed" in keys else BEIT
    if "backbone.layers.0.attn.attn.in_proj_weight" in keys:
        return VIT
    return None


def _neck_rules(config: ModelConfig) -> tuple[KeyRule, ...]:
    if config.neck is None:
        return ()
    form = find_upstream(get_neck(config.neck), "mmseg", config.neck)
    return tuple((rf"neck\.{source}", f"neck.{target}") for source, target in form.rules)


def rules(form: Upstream, config: ModelConfig, variant: str) -> tuple[KeyRule, ...]:
    return form.rules + _RULES[variant] + _neck_rules(config)


def dropped(variant: str) -> tuple[str, ...]:
    return (r"auxiliary_head", r".*\.relative_position_index")


def _unfold_to_timm(value: torch.Tensor) -> torch.Tensor:
    """Patch-merging weights over mmseg's ``nn.Unfold`` channels (channel c, offset (i, j) at c * 4 + i * 2 + j) in
    timm's order (offsets (0,0), (1,0), (0,1), (1,1), each over all channels)."""
    if value.dim() == 1:
        return value.reshape(-1, 4)[:, [0, 2, 1, 3]].t().reshape(-1)
    out_channels = value.shape[0]
    return value.reshape(out_channels, -1, 4)[:, :, [0, 2, 1, 3]].transpose(1, 2).reshape(out_channels, -1)


def prepare(state_dict: Mapping[str, torch.Tensor], variant: str) -> dict[str, torch.Tensor]:
    out = dict(state_dict)
    if variant == SWIN:
        for key, value in state_dict.items():
            if ".downsample." in key and (".reduction." in key or ".norm." in key):
                out[key] = _unfold_to_timm(value)
    elif variant == MAE:
        for key, value in state_dict.items():
            if key.endswith(".attn.qkv.bias"):
                q, _, v = value.chunk(3)
                del out[key]
                out[key[:-len("qkv.bias")] + "q_bias"], out[key[:-len("qkv.bias")] + "v_bias"] = q, v
    elif variant == VIT:
        weight = state_dict.get("backbone.patch_embed.projection.weight")
        if weight is not None and "backbone.patch_embed.projection.bias" not in state_dict:
            out["backbone.patch_embed.projection.bias"] = weight.new_zeros(weight.shape[0])
    return out
