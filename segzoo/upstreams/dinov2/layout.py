"""DINOv2's checkpoint layout: a backbone file (``dinov2_<arch>_pretrain.pth``, the ViT's tensors at the top level)
and a head file (``..._head.pth``: ``decode_head.bn`` and ``decode_head.conv_seg`` under ``state_dict``), combined
under ``backbone.`` and ``decode_head.``.

DINOv2's ViT is the architecture timm builds as ``vit_*_patch14_dinov2`` under the same tensor names (layer scale as
``ls1.gamma`` / ``ls2.gamma``); the giant's SwiGLU feed-forward stores its packed input projection as ``mlp.w12`` and
its output as ``mlp.w3`` (timm: ``mlp.fc1``, ``mlp.fc2``). Its final LayerNorm normalises every level the heads read
(Meta's ``get_intermediate_layers(norm=True)``): segzoo's ``feature_norms``, one copy per level. The mask token is a
pre-training tensor (dropped).
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch

from ...config import ModelConfig
from ...errors import CheckpointError
from ...upstream import KeyRule, Upstream

__all__ = ["VARIANT", "detect", "rules", "dropped", "with_level_norms"]

VARIANT = "dinov2"
_RULES: tuple[KeyRule, ...] = (
    (r"backbone\.(cls_token|pos_embed)", r"backbone.model.\1"),
    (r"backbone\.patch_embed\.proj", "backbone.model.patch_embed.proj"),
    (r"backbone\.blocks\.(\d+)\.mlp\.w12", r"backbone.model.blocks.\1.mlp.fc1"),
    (r"backbone\.blocks\.(\d+)\.mlp\.w3", r"backbone.model.blocks.\1.mlp.fc2"),
    (r"backbone\.blocks\.(\d+)", r"backbone.model.blocks.\1"),
    (r"backbone\.norm\.(c\d)", r"feature_norms.\1"),  # the final norm, once per level (with_level_norms)
)


def detect(keys: Iterable[str]) -> str:
    keys = set(keys)
    if "backbone.blocks.0.attn.qkv.weight" not in keys:
        raise CheckpointError("not a DINOv2 backbone + head checkpoint: no backbone.blocks.0.attn.qkv.weight (a DINOv2 "
                              "head file holds the head only: give the backbone's weights too, "
                              "dinov2_<arch>_pretrain.pth)")
    return VARIANT


def rules(form: Upstream, config: ModelConfig) -> tuple[KeyRule, ...]:
    return form.rules + _RULES


def dropped() -> tuple[str, ...]:
    return (r"backbone\.mask_token",)


def with_level_norms(state_dict: Mapping[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """The final LayerNorm (``backbone.norm``) as one copy per level the config normalises (``backbone.norm.c4``,
    ...): the same weights, as Meta applies the one norm to every level it reads."""
    out = {key: value for key, value in state_dict.items() if not key.startswith("backbone.norm.")}
    for level in config.feature_norms:
        for kind in ("weight", "bias"):
            value = state_dict.get(f"backbone.norm.{kind}")
            if value is None:
                raise CheckpointError(f"the DINOv2 backbone has no backbone.norm.{kind} (its final LayerNorm)")
            out[f"backbone.norm.{level}.{kind}"] = value
    return out
