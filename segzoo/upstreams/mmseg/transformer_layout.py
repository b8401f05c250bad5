"""mmsegmentation's transformer-era backbones in its checkpoints, as timm's modules.

mmseg builds UPerNet on its own Swin, BEiT, MAE and ViT and on mmpretrain's ConvNeXt, and SegFormer on its Mix
Transformer (segzoo's ``mit_b*``: timm's PVT v2 at MiT's sizes); each is the architecture timm builds, under other
names. The rules below rename every tensor; ``prepare`` makes the few value-preserving changes the layouts need:
Swin's patch merging (mmseg's ``nn.Unfold`` orders the 2x2 neighbourhood channel-major, timm position-major), MAE's
full ``qkv`` bias as timm's query and value biases (a bias on the keys adds the same amount to every score of a
query, which the softmax cancels), a zero bias for mmseg's ViT patch embedding (which has none), and MiT's attention
and feed-forward as timm's PVT v2 stores them (the fused ``in_proj`` split into query and key/value; the feed-forward's
1x1 convolutions as linear layers). The per-level norms ``backbone.norm{i}`` (Swin, ConvNeXt) and a ViT's final
``backbone.ln1`` are segzoo's ``feature_norms``; the necks' keys are the necks' own (``MultiLevelNeck``,
``Feature2Pyramid``). The aux head (an FCN of 256 channels, training only) is left out: eval outputs never read it.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional

import torch

from ...backbones import MIT_SIZES
from ...config import ModelConfig
from ...errors import CheckpointError
from ...registry import get_neck
from ...upstream import KeyRule, Upstream, find_upstream

__all__ = ["VARIANTS", "MIT", "VIT", "detect", "rules", "dropped", "prepare", "without_class_token", "mit_backbone",
           "mit_config"]

SWIN, CONVNEXT, BEIT, MAE, VIT = "mmseg-swin", "mmseg-convnext", "mmseg-beit", "mmseg-mae", "mmseg-vit"
MIT = "mmseg-mit"
VARIANTS = (SWIN, CONVNEXT, BEIT, MAE, VIT, MIT)

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
_MIT_BLOCK = r"backbone\.layers\.(\d)\.1\.(\d+)"
_MIT = (  # layers.i: 0 the patch embedding, 1 the blocks, 2 the stage's norm; timm embeds stage 0 outside stages
    (r"backbone\.layers\.0\.0\.projection", "backbone.patch_embed.proj"),
    (r"backbone\.layers\.0\.0\.norm", "backbone.patch_embed.norm"),
    (r"backbone\.layers\.(\d)\.0\.projection", r"backbone.stages_\1.downsample.proj"),
    (r"backbone\.layers\.(\d)\.0\.norm", r"backbone.stages_\1.downsample.norm"),
    (_MIT_BLOCK + r"\.attn\.attn\.out_proj", r"backbone.stages_\1.blocks.\2.attn.proj"),
    (_MIT_BLOCK + r"\.attn\.attn", r"backbone.stages_\1.blocks.\2.attn"),  # q, kv (split by prepare)
    (_MIT_BLOCK + r"\.ffn\.layers\.0", r"backbone.stages_\1.blocks.\2.mlp.fc1"),
    (_MIT_BLOCK + r"\.ffn\.layers\.1", r"backbone.stages_\1.blocks.\2.mlp.dwconv"),
    (_MIT_BLOCK + r"\.ffn\.layers\.4", r"backbone.stages_\1.blocks.\2.mlp.fc2"),
    (_MIT_BLOCK, r"backbone.stages_\1.blocks.\2"),  # norm1, norm2, attn.sr, attn.norm
    (r"backbone\.layers\.(\d)\.2", r"backbone.stages_\1.norm"),
)
_RULES = {SWIN: _SWIN + _LEVEL_NORMS, CONVNEXT: _CONVNEXT + _LEVEL_NORMS, BEIT: _BEIT, MAE: _BEIT, VIT: _VIT,
          MIT: _MIT}


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
    if "backbone.layers.0.1.0.attn.attn.in_proj_weight" in keys:
        return MIT
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
    class_embeddings = state_dict.get("decode_head.cls_emb")  # Segmenter's (1, classes, dims): segzoo keeps (K, d)
    if class_embeddings is not None and class_embeddings.dim() == 3:
        out["decode_head.cls_emb"] = class_embeddings[0]
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
    elif variant == MIT:
        for key, value in state_dict.items():
            if ".attn.attn.in_proj_" in key:  # (query; key; value) -> timm's q and kv
                del out[key]
                prefix, kind = key.split(".in_proj_")
                out[f"{prefix}.q.{kind}"], out[f"{prefix}.kv.{kind}"] = value[:value.shape[0] // 3], \
                    value[value.shape[0] // 3:]
            elif re.search(r"\.ffn\.layers\.[04]\.weight$", key):  # 1x1 convolutions as linear layers
                out[key] = value.flatten(1)
    elif variant == VIT:
        weight = state_dict.get("backbone.patch_embed.projection.weight")
        if weight is not None and "backbone.patch_embed.projection.bias" not in state_dict:
            out["backbone.patch_embed.projection.bias"] = weight.new_zeros(weight.shape[0])
    return out


def without_class_token(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An mmseg ViT configured ``with_cls_token=False`` (SETR-MLA's): it adds the whole position embedding to the
    class token and the patches, then drops the token before its blocks; a timm ViT without a class token computes
    the same from the patches' positions alone."""
    out = {key: value for key, value in state_dict.items() if key != "backbone.cls_token"}
    if "backbone.pos_embed" in out:
        out["backbone.pos_embed"] = out["backbone.pos_embed"][:, 1:]
    return out


def mit_backbone(source: Mapping[str, torch.Tensor]) -> str:
    """The ``mit_b*`` of an mmseg MiT checkpoint: its blocks per stage and its first stage's width."""
    depths = tuple(len({m.group(2) for key in source if (m := re.match(_MIT_BLOCK, key)) and m.group(1) == str(i)})
                   for i in range(4))
    stem = source.get("backbone.layers.0.0.projection.weight")
    width = int(stem.shape[0]) if stem is not None else None
    found = [name for name, (sizes, dims) in MIT_SIZES.items() if sizes == depths and dims[0] == width]
    if not found:
        raise CheckpointError(f"cannot infer the backbone: a MiT {width} wide with {depths} blocks per stage is none "
                              f"of {', '.join(MIT_SIZES)}; convert with --model <zoo name>")
    return found[0]


def mit_config(head: str, form: Upstream, backbone: str, num_classes: int, source: Mapping[str, torch.Tensor]
               ) -> ModelConfig:
    """An mmseg SegFormer as its keys tell it: the MiT of its depth and width, the head's width from its fusion,
    mmseg's LayerNorm epsilon (1e-6 everywhere), ``align_corners=False``, no aux head."""
    fusion = source.get("decode_head.fusion_conv.conv.weight")
    if fusion is None:
        raise CheckpointError("not an mmseg SegFormer: the checkpoint has no decode_head.fusion_conv")
    return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, output_stride=32, aux=False,
                       align_corners=False, backbone_norm_eps=1e-6,
                       head_kwargs={**form.options, "channels": int(fusion.shape[0])}, input_size=(512, 512))
