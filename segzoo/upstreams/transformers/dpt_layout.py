"""transformers' ``DPTForSemanticSegmentation`` (``Intel/dpt-large-ade``): a ViT (``dpt.*``) and DPT's neck and head.

The ViT is timm's ViT of the checkpoint's width, depth and patch, at the grid its position embedding is for; its
query, key and value are fused into timm's ``qkv`` (a concatenation). transformers resizes that embedding to other
grids bilinearly (``position_resize="bilinear"``) and its LayerNorms use the config's ``layer_norm_eps`` (DPTConfig's
default 1e-12). The neck reads the outputs of the blocks ``backbone_out_indices`` names (``hidden_states[1:]``: block
i's output is index i) without the final LayerNorm (``dpt.layernorm``: computed, never read). Neck and head are
segzoo's ``dpt`` head under transformers' names (declared by the head, source ``"transformers"``). The first fusion
layer's ``residual_layer1`` exists in the checkpoint and is never used; the aux head is training only. DPT-Hybrid
(a ResNet stem before the ViT) is refused.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from ...config import ModelConfig
from ...errors import CheckpointError
from ...upstream import KeyRule, Upstream

__all__ = ["DPT", "is_dpt", "RULES", "UNUSED", "fuse_qkv", "dpt_backbone", "dpt_config", "dpt_fields"]

DPT = "dpt"
_LAYER = r"dpt\.encoder\.layer\.(\d+)"
RULES: tuple[KeyRule, ...] = (
    (r"dpt\.embeddings\.cls_token", "backbone.model.cls_token"),
    (r"dpt\.embeddings\.position_embeddings", "backbone.model.pos_embed"),
    (r"dpt\.embeddings\.patch_embeddings\.projection", "backbone.model.patch_embed.proj"),
    (_LAYER + r"\.attention\.attention\.qkv", r"backbone.model.blocks.\1.attn.qkv"),  # fused by fuse_qkv
    (_LAYER + r"\.attention\.output\.dense", r"backbone.model.blocks.\1.attn.proj"),
    (_LAYER + r"\.layernorm_before", r"backbone.model.blocks.\1.norm1"),
    (_LAYER + r"\.layernorm_after", r"backbone.model.blocks.\1.norm2"),
    (_LAYER + r"\.intermediate\.dense", r"backbone.model.blocks.\1.mlp.fc1"),
    (_LAYER + r"\.output\.dense", r"backbone.model.blocks.\1.mlp.fc2"),
)
UNUSED = (r"dpt\.layernorm\..*", r"neck\.fusion_stage\.layers\.0\.residual_layer1\..*")
_NAMES = {(384, 12): "vit_small_patch16_224", (768, 12): "vit_base_patch16_224", (1024, 24): "vit_large_patch16_224"}


def is_dpt(keys) -> bool:
    return any(key.startswith("dpt.encoder.layer.") for key in keys)


def fuse_qkv(state_dict: Mapping[str, torch.Tensor], key: str) -> dict[str, torch.Tensor] | None:
    """What a DPT tensor becomes: the query's weight or bias as the fused ``qkv`` one (query, key, value
    concatenated), ``{}`` for the key's and value's (folded into it), None for any other tensor."""
    match = re.fullmatch(r"(dpt\..*\.attention\.attention)\.(query|key|value)\.(weight|bias)", key)
    if match is None:
        return None
    prefix, part, kind = match.groups()
    if part != "query":
        return {}
    parts = [state_dict.get(f"{prefix}.{name}.{kind}") for name in ("query", "key", "value")]
    if any(p is None for p in parts):
        raise CheckpointError(f"{prefix} has a query {kind} but not a key and value {kind}")
    return {f"{prefix}.qkv.{kind}": torch.cat(parts)}


def _shape(source: Mapping[str, Any], key: str) -> tuple[int, ...]:
    if key not in source:
        raise CheckpointError(f"not a DPT (ViT) checkpoint: it has no {key}")
    return tuple(source[key].shape)


def dpt_backbone(source: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """timm's ViT of the checkpoint's size at its position embedding's grid: (name, ``backbone_kwargs``)."""
    if any(key.startswith("dpt.embeddings.backbone.") for key in source):
        raise CheckpointError("this is DPT-Hybrid (a ResNet stem before the ViT); segzoo converts DPT on a plain ViT")
    width = _shape(source, "dpt.embeddings.cls_token")[-1]
    depth = len({key.split(".")[3] for key in source if key.startswith("dpt.encoder.layer.")})
    patch = _shape(source, "dpt.embeddings.patch_embeddings.projection.weight")[-1]
    grid = int(round((_shape(source, "dpt.embeddings.position_embeddings")[1] - 1) ** 0.5))
    kwargs: dict[str, Any] = {"img_size": grid * patch}
    name = _NAMES.get((width, depth))
    if name is None or patch != 16:
        hidden = _shape(source, "dpt.encoder.layer.0.intermediate.dense.weight")[0]
        name = "vit_base_patch16_224"
        kwargs.update(embed_dim=width, depth=depth, num_heads=max(1, width // 64), patch_size=patch,
                      mlp_ratio=hidden / width)
    return name, kwargs


def dpt_config(head: str, form: Upstream, backbone: str, num_classes: int, source: Mapping[str, Any]
               ) -> ModelConfig:
    """The checkpoint's DPT as the keys tell it: the ViT (its blocks evenly spaced, as DPT's configs choose them,
    unless ``config.json`` names them), the neck's widths, the readout, BatchNorms in the residual units or not;
    transformers' bilinear position resize, mean and std 0.5 (``DPTImageProcessor``), LayerNorm epsilon 1e-12."""
    name, backbone_kwargs = dpt_backbone(source)
    depth = backbone_kwargs.get("depth") or {"vit_large_patch16_224": 24}.get(name, 12)
    post = tuple(_shape(source, f"neck.reassemble_stage.layers.{i}.projection.weight")[0] for i in range(4))
    options = {**form.options, "channels": _shape(source, "neck.convs.0.weight")[0], "post_process_channels": post,
               "readout": "project" if any(".readout_projects." in key for key in source) else "ignore",
               "residual_norm": any(".batch_norm1." in key for key in source)}
    return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, output_stride=32, aux=False,
                       backbone_kwargs=backbone_kwargs if backbone == name else {},
                       feature_indices=tuple(depth // 4 * (i + 1) - 1 for i in range(4)), align_corners=False,
                       position_resize="bilinear", backbone_norm_eps=1e-12, mean=(0.5,) * 3, std=(0.5,) * 3,
                       head_kwargs=options,
                       input_size=(backbone_kwargs["img_size"],) * 2)


def dpt_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a DPT ``config.json`` tells besides the keys: its blocks (``backbone_out_indices``, block i's output being
    index i) and its LayerNorm epsilon; empty for another config. A hybrid, and what the weights cannot tell (a readout
    "add", attention heads other than one per 64 channels) are refused."""
    if config.get("model_type") != "dpt":
        return {}
    if config.get("is_hybrid"):
        raise CheckpointError("this is DPT-Hybrid (a ResNet stem before the ViT); segzoo converts DPT on a plain ViT")
    fields: dict[str, Any] = {}
    indices = config.get("backbone_out_indices")
    if isinstance(indices, list) and len(indices) == 4 and all(isinstance(i, int) for i in indices):
        fields["feature_indices"] = tuple(indices)
    eps = config.get("layer_norm_eps")
    if isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0:
        fields["backbone_norm_eps"] = float(eps)
    heads, width = config.get("num_attention_heads"), config.get("hidden_size")
    if isinstance(heads, int) and isinstance(width, int) and heads != max(1, width // 64):
        raise CheckpointError(f"this DPT's ViT has {heads} attention heads for {width} channels; segzoo converts one "
                              f"head per 64 channels ({max(1, width // 64)}), as every DPT has (the weights do not "
                              f"tell the heads)")
    if config.get("readout_type") == "add":  # the weights tell "project" (its layers) from "ignore" (none), not "add"
        raise CheckpointError("this DPT adds the class token (readout_type 'add'); segzoo converts transformers' DPT "
                              "with readout 'project' or 'ignore'")
    return fields
