"""transformers' checkpoint layout of ``UperNetForSemanticSegmentation`` on ConvNeXt and Swin backbones.

A transformers segmentation repo holds ``config.json`` and ``model.safetensors``. Its backbone is transformers' own
port (``backbone.embeddings`` / ``backbone.encoder``) of the very architecture timm builds, so every tensor has a
timm counterpart: the rules below rename them, and ``prepare`` fuses Swin's separate query, key and value
projections into timm's ``qkv`` (a concatenation: the values are kept). ``backbone.hidden_states_norms.stageN``
are the per-level norms (segzoo's ``feature_norms``). The decode head is mmseg's UPerHead under transformers'
names (declared by the UPerNet head, source ``"transformers"``). The aux head (``auxiliary_head``, training only,
FCN with 256 channels) is left out: segzoo's aux head has another width, and eval outputs never read it.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import torch

from ...config import ModelConfig
from ...errors import CheckpointError
from ...upstream import KeyRule, Upstream

__all__ = ["detect", "rules", "dropped", "prepare", "infer_backbone", "config_for", "CONVNEXT", "SWIN"]

CONVNEXT, SWIN = "upernet-convnext", "upernet-swin"

_CONVNEXT_BLOCK = r"backbone\.encoder\.stages\.(\d)\.layers\.(\d+)"
_CONVNEXT = (
    (r"backbone\.embeddings\.patch_embeddings", "backbone.stem_0"),
    (r"backbone\.embeddings\.layernorm", "backbone.stem_1"),
    (r"backbone\.encoder\.stages\.(\d)\.downsampling_layer", r"backbone.stages_\1.downsample"),
    (_CONVNEXT_BLOCK + r"\.layer_scale_parameter", r"backbone.stages_\1.blocks.\2.gamma"),
    (_CONVNEXT_BLOCK + r"\.dwconv", r"backbone.stages_\1.blocks.\2.conv_dw"),
    (_CONVNEXT_BLOCK + r"\.layernorm", r"backbone.stages_\1.blocks.\2.norm"),
    (_CONVNEXT_BLOCK + r"\.pwconv1", r"backbone.stages_\1.blocks.\2.mlp.fc1"),
    (_CONVNEXT_BLOCK + r"\.pwconv2", r"backbone.stages_\1.blocks.\2.mlp.fc2"),
)
_SWIN_BLOCK = r"backbone\.encoder\.layers\.(\d)\.blocks\.(\d+)"
_SWIN = (
    (r"backbone\.embeddings\.patch_embeddings\.projection", "backbone.patch_embed.proj"),
    (r"backbone\.embeddings\.norm", "backbone.patch_embed.norm"),
    (_SWIN_BLOCK + r"\.layernorm_before", r"backbone.layers_\1.blocks.\2.norm1"),
    (_SWIN_BLOCK + r"\.attention\.self", r"backbone.layers_\1.blocks.\2.attn"),  # qkv (fused) and the bias table
    (_SWIN_BLOCK + r"\.attention\.output\.dense", r"backbone.layers_\1.blocks.\2.attn.proj"),
    (_SWIN_BLOCK + r"\.layernorm_after", r"backbone.layers_\1.blocks.\2.norm2"),
    (_SWIN_BLOCK + r"\.intermediate\.dense", r"backbone.layers_\1.blocks.\2.mlp.fc1"),
    (_SWIN_BLOCK + r"\.output\.dense", r"backbone.layers_\1.blocks.\2.mlp.fc2"),
    # transformers merges patches at the end of a stage, timm at the start of the next
    *((rf"backbone\.encoder\.layers\.{i}\.downsample", f"backbone.layers_{i + 1}.downsample") for i in range(3)),
)
_NORMS = ((r"backbone\.hidden_states_norms\.stage(\d)", r"feature_norms.c\1"),)
_DROPPED = (r"auxiliary_head", r".*\.relative_position_index")

# timm names of the sizes transformers' repos use: (channels of stage 1, blocks of stage 3) -> name
_CONVNEXT_NAMES = {(96, 9): "convnext_tiny", (96, 27): "convnext_small", (128, 27): "convnext_base",
                   (192, 27): "convnext_large", (256, 27): "convnext_xlarge"}
# (embed dim, blocks of stage 3, window) -> name
_SWIN_NAMES = {(96, 6, 7): "swin_tiny_patch4_window7_224", (96, 18, 7): "swin_small_patch4_window7_224",
               (128, 18, 7): "swin_base_patch4_window7_224", (128, 18, 12): "swin_base_patch4_window12_384",
               (192, 18, 7): "swin_large_patch4_window7_224", (192, 18, 12): "swin_large_patch4_window12_384"}


def detect(keys: Iterable[str]) -> str:
    """``"upernet-convnext"`` or ``"upernet-swin"`` from the keys, else ``CheckpointError``."""
    keys = list(keys)
    if any(key.startswith("decode_head.") for key in keys):
        if any(key.startswith("backbone.encoder.stages.") for key in keys):
            return CONVNEXT
        if any(key.startswith("backbone.encoder.layers.") for key in keys):
            return SWIN
    raise CheckpointError("not a transformers UperNetForSemanticSegmentation checkpoint on ConvNeXt or Swin: "
                          "expected keys under 'decode_head.' and 'backbone.encoder.stages.' (ConvNeXt) or "
                          "'backbone.encoder.layers.' (Swin)")


def rules(form: Upstream, config: ModelConfig, variant: str) -> tuple[KeyRule, ...]:
    return form.rules + (_CONVNEXT if variant == CONVNEXT else _SWIN) + _NORMS


def dropped(variant: str) -> tuple[str, ...]:
    return _DROPPED


def prepare(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Swin's ``attention.self.{query,key,value}`` as timm's fused ``attention.self.qkv`` (concatenated in that
    order, weights and biases); every other tensor as it is."""
    out = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r"(.*\.attention\.self)\.(query|key|value)\.(weight|bias)", key)
        if match is None:
            out[key] = value
        elif match.group(2) == "query":
            prefix, kind = match.group(1), match.group(3)
            parts = [state_dict.get(f"{prefix}.{name}.{kind}") for name in ("query", "key", "value")]
            if any(part is None for part in parts):
                raise CheckpointError(f"{prefix} has a query {kind} but not a key and value {kind}")
            out[f"{prefix}.qkv.{kind}"] = torch.cat(parts)
    return out


def _blocks(keys: Iterable[str], pattern: str) -> list[int]:
    """Blocks per stage: the number of distinct block indices under each stage."""
    found: dict[int, set[int]] = {}
    for key in keys:
        match = re.match(pattern, key)
        if match:
            found.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    return [len(found[stage]) for stage in sorted(found)]


def _shape(source: Mapping[str, Any], key: str) -> tuple[int, ...]:
    if key not in source:
        raise CheckpointError(f"cannot read the backbone's size: the checkpoint has no {key}")
    return tuple(source[key].shape)


def _backbone(source: Mapping[str, Any], variant: str) -> tuple[str, dict[str, Any], float]:
    """(timm name, backbone_kwargs, per-level norm epsilon): a timm name of that size where timm has one, else
    the family's smallest with the sizes as ``backbone_kwargs``."""
    if variant == CONVNEXT:
        depths = _blocks(source, _CONVNEXT_BLOCK)
        dims = [_shape(source, f"backbone.hidden_states_norms.stage{i + 1}.weight")[0] for i in range(4)]
        name = _CONVNEXT_NAMES.get((dims[0], depths[2])) if len(depths) == 4 else None
        if name is not None and dims == [dims[0] * 2 ** i for i in range(4)]:
            return name, {}, 1e-6
        return "convnext_tiny", {"depths": tuple(depths), "dims": tuple(dims)}, 1e-6
    depths = _blocks(source, _SWIN_BLOCK)
    embed = _shape(source, "backbone.embeddings.patch_embeddings.projection.weight")[0]
    heads = [_shape(source, f"backbone.encoder.layers.{i}.blocks.0.attention.self.relative_position_bias_table")
             for i in range(len(depths))]
    window = (int(round(heads[0][0] ** 0.5)) + 1) // 2
    name = _SWIN_NAMES.get((embed, depths[2], window)) if len(depths) == 4 else None
    if name is not None and [h[1] for h in heads] == [embed // 32 * 2 ** i for i in range(4)]:
        return name, {}, 1e-5
    return "swin_tiny_patch4_window7_224", {"embed_dim": embed, "depths": tuple(depths),
                                            "num_heads": tuple(h[1] for h in heads), "window_size": window}, 1e-5


def infer_backbone(source: Mapping[str, Any], variant: str) -> str:
    return _backbone(source, variant)[0]


def config_for(head: str, form: Upstream, backbone: str, num_classes: int, source: Mapping[str, Any],
               variant: str) -> ModelConfig:
    """The checkpoint's model as the keys and shapes tell it: the backbone at its own size (and window), the
    per-level norms, UPerNet's width from its bottleneck, mmseg's ``align_corners=False``; no aux head."""
    name, backbone_kwargs, eps = _backbone(source, variant)
    if backbone != name:
        backbone_kwargs = {}  # a backbone given by the caller is taken as it is
    channels = _shape(source, "decode_head.bottleneck.conv.weight")[0]
    return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, output_stride=32,
                       backbone_kwargs=backbone_kwargs, feature_norms=("c1", "c2", "c3", "c4"),
                       feature_norm_eps=eps, align_corners=False, head_kwargs={**form.options, "channels": channels},
                       input_size=(512, 512))
