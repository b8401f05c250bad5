"""transformers' checkpoint layout of ``UperNetForSemanticSegmentation`` on ConvNeXt and Swin backbones.

A transformers segmentation repo holds ``config.json`` and ``model.safetensors``. Its backbone is transformers' own
port (``backbone.embeddings`` / ``backbone.encoder``) of the very architecture timm builds, so every tensor has a
timm counterpart: the rules below rename them, and ``prepare`` fuses Swin's separate query, key and value
projections into timm's ``qkv`` (a concatenation: the values are kept). ``backbone.hidden_states_norms.stageN``
are the per-level norms (segzoo's ``feature_norms``). The decode head is mmseg's UPerHead under transformers'
names (declared by the UPerNet head, source ``"transformers"``). The aux head (``auxiliary_head``, training only,
FCN with 256 channels) is left out: segzoo's aux head has another width, and eval outputs never read it.

BEiT (``beit.*``) is timm's BEiT at the checkpoint's grid, its query / key / value fused into timm's ``qkv`` weight
with the query and value biases (``q_bias``, ``v_bias``; BEiT has no key bias), ``lambda_1`` / ``lambda_2`` as
``gamma_1`` / ``gamma_2``, ``fpn1`` .. ``fpn4`` as the ``feature2pyramid`` neck. Which blocks feed the pyramid is
transformers' own reading of ``config.out_indices``: it takes ``hidden_states[i]`` for ``i + 1`` in them, and
``hidden_states[0]`` is the embedding, so ``out_indices`` ``[3, 5, 7, 11]`` are the outputs of blocks 1, 3, 5 and 9
(mmseg reads the same numbers as blocks 3, 5, 7 and 11). segzoo reproduces what transformers computes
(``feature_indices`` = each index - 2).

SegFormer (``segformer.*``, ``SegformerForSemanticSegmentation``) is segzoo's ``mit_b*`` (timm's PVT v2 at MiT's
sizes): the query kept, key and value fused into timm's ``kv``; every LayerNorm of transformers' MiT has PyTorch's
epsilon 1e-5 (``backbone_norm_eps``). Its head (declared by the ``segformer`` head) projects each level with a
linear layer (stored as a 1x1 convolution) and concatenates them top level first (c4 .. c1): ``prepare`` reorders the
fusion's input channels to segzoo's order (c1 first), which computes the same.

Mask2Former (``Mask2FormerForUniversalSegmentation``, ``model.*`` and ``class_predictor``) is UPerNet's Swin under
``model.pixel_level_module.encoder.`` and segzoo's ``mask2former`` head (``mask2former_layout``).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import torch

from ...backbones import MIT_SIZES
from ...config import ModelConfig
from ...errors import CheckpointError
from ...upstream import KeyRule, Upstream
from . import dpt_layout, mask2former_layout
from .dpt_layout import DPT
from .mask2former_layout import MASK2FORMER

__all__ = ["detect", "rules", "dropped", "unused", "prepare", "infer_backbone", "config_for", "CONVNEXT", "SWIN",
           "BEIT", "SEGFORMER", "DPT", "MASK2FORMER", "beit_fields", "feature_indices_of", "check_segformer_config"]

CONVNEXT, SWIN, BEIT, SEGFORMER = "upernet-convnext", "upernet-swin", "beit", "segformer"

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
_BEIT_LAYER = r"beit\.encoder\.layer\.(\d+)"
_BEIT = (
    (r"beit\.embeddings\.cls_token", "backbone.model.cls_token"),
    (r"beit\.embeddings\.patch_embeddings\.projection", "backbone.model.patch_embed.proj"),
    (_BEIT_LAYER + r"\.attention\.attention\.relative_position_bias", r"backbone.model.blocks.\1.attn"),
    (_BEIT_LAYER + r"\.attention\.attention", r"backbone.model.blocks.\1.attn"),  # qkv, q_bias, v_bias (fused)
    (_BEIT_LAYER + r"\.attention\.output\.dense", r"backbone.model.blocks.\1.attn.proj"),
    (_BEIT_LAYER + r"\.layernorm_before", r"backbone.model.blocks.\1.norm1"),
    (_BEIT_LAYER + r"\.layernorm_after", r"backbone.model.blocks.\1.norm2"),
    (_BEIT_LAYER + r"\.intermediate\.dense", r"backbone.model.blocks.\1.mlp.fc1"),
    (_BEIT_LAYER + r"\.output\.dense", r"backbone.model.blocks.\1.mlp.fc2"),
    (_BEIT_LAYER + r"\.lambda_(\d)", r"backbone.model.blocks.\1.gamma_\2"),
    (r"fpn1", "neck.rescale.0"),
    (r"fpn2", "neck.rescale.1"),
)
_MIT_BLOCK = r"segformer\.encoder\.block\.(\d)\.(\d+)"
_MIT_TIMM_BLOCK = r"backbone.stages_\1.blocks.\2"
_SEGFORMER = (  # transformers keeps every patch embedding in one list; timm the first outside its stages
    (r"segformer\.encoder\.patch_embeddings\.0\.proj", "backbone.patch_embed.proj"),
    (r"segformer\.encoder\.patch_embeddings\.0\.layer_norm", "backbone.patch_embed.norm"),
    (r"segformer\.encoder\.patch_embeddings\.(\d)\.proj", r"backbone.stages_\1.downsample.proj"),
    (r"segformer\.encoder\.patch_embeddings\.(\d)\.layer_norm", r"backbone.stages_\1.downsample.norm"),
    (_MIT_BLOCK + r"\.layer_norm_1", _MIT_TIMM_BLOCK + ".norm1"),
    (_MIT_BLOCK + r"\.layer_norm_2", _MIT_TIMM_BLOCK + ".norm2"),
    (_MIT_BLOCK + r"\.attention\.self\.layer_norm", _MIT_TIMM_BLOCK + ".attn.norm"),
    (_MIT_BLOCK + r"\.attention\.self", _MIT_TIMM_BLOCK + ".attn"),  # q, kv (fused by prepare), sr
    (_MIT_BLOCK + r"\.attention\.output\.dense", _MIT_TIMM_BLOCK + ".attn.proj"),
    (_MIT_BLOCK + r"\.mlp\.dense1", _MIT_TIMM_BLOCK + ".mlp.fc1"),
    (_MIT_BLOCK + r"\.mlp\.dwconv\.dwconv", _MIT_TIMM_BLOCK + ".mlp.dwconv"),
    (_MIT_BLOCK + r"\.mlp\.dense2", _MIT_TIMM_BLOCK + ".mlp.fc2"),
    (r"segformer\.encoder\.layer_norm\.(\d)", r"backbone.stages_\1.norm"),
)
_MIT_HEADS = (1, 2, 5, 8)  # every MiT size's attention heads per stage (not in the weights' shapes)
_DROPPED = (r"auxiliary_head", r".*\.relative_position_index")

# timm names of the sizes transformers' repos use: (channels of stage 1, blocks of stage 3) -> name
_CONVNEXT_NAMES = {(96, 9): "convnext_tiny", (96, 27): "convnext_small", (128, 27): "convnext_base",
                   (192, 27): "convnext_large", (256, 27): "convnext_xlarge"}
# (embed dim, blocks of stage 3, window) -> name
_SWIN_NAMES = {(96, 6, 7): "swin_tiny_patch4_window7_224", (96, 18, 7): "swin_small_patch4_window7_224",
               (128, 18, 7): "swin_base_patch4_window7_224", (128, 18, 12): "swin_base_patch4_window12_384",
               (192, 18, 7): "swin_large_patch4_window7_224", (192, 18, 12): "swin_large_patch4_window12_384"}


def detect(keys: Iterable[str]) -> str:
    """``"upernet-convnext"``, ``"upernet-swin"`` or ``"beit"`` from the keys, else ``CheckpointError``."""
    keys = list(keys)
    if mask2former_layout.is_mask2former(keys) and mask2former_layout.CLASSIFIER in keys:
        return MASK2FORMER
    if dpt_layout.is_dpt(keys) and any(key.startswith("head.head.") for key in keys):
        return DPT
    if any(key.startswith("decode_head.") for key in keys):
        if any(key.startswith("beit.encoder.layer.") for key in keys):
            return BEIT
        if any(key.startswith("segformer.encoder.block.") for key in keys):
            return SEGFORMER
        if any(key.startswith("backbone.encoder.stages.") for key in keys):
            return CONVNEXT
        if any(key.startswith("backbone.encoder.layers.") for key in keys):
            return SWIN
    raise CheckpointError("not a transformers UperNetForSemanticSegmentation (ConvNeXt, Swin), "
                          "BeitForSemanticSegmentation, SegformerForSemanticSegmentation, DPTForSemanticSegmentation "
                          "or Mask2FormerForUniversalSegmentation checkpoint: expected keys under 'decode_head.' and "
                          "'backbone.encoder.stages.' (ConvNeXt), 'backbone.encoder.layers.' (Swin), "
                          "'beit.encoder.layer.' (BEiT) or "
                          "'segformer.encoder.block.' (SegFormer), 'dpt.encoder.layer.' and 'head.head.' (DPT), or "
                          "'model.transformer_module.decoder.' and 'class_predictor.' (Mask2Former)")


def rules(form: Upstream, config: ModelConfig, variant: str) -> tuple[KeyRule, ...]:
    if variant == BEIT:
        return form.rules + _BEIT
    if variant == SEGFORMER:
        return form.rules + _SEGFORMER
    if variant == DPT:
        return form.rules + dpt_layout.RULES
    if variant == MASK2FORMER:
        return form.rules + mask2former_layout.backbone_rules(_SWIN + _NORMS)
    return form.rules + (_CONVNEXT if variant == CONVNEXT else _SWIN) + _NORMS


def dropped(variant: str) -> tuple[str, ...]:
    return _DROPPED + mask2former_layout.DROPPED if variant == MASK2FORMER else _DROPPED


def unused(config: ModelConfig, variant: str) -> tuple[str, ...]:
    """BEiT's blocks after the last one that feeds the pyramid: transformers computes them and reads nothing from
    them (default out_indices end at block 9 of 12), timm's feature extractor prunes them. DPT's too, and its final
    LayerNorm and first fusion layer's unused residual unit (``dpt_layout.UNUSED``)."""
    if variant == DPT:
        if config.feature_indices is None:
            return dpt_layout.UNUSED
        kept = "|".join(str(i) for i in range(max(config.feature_indices) + 1))
        return dpt_layout.UNUSED + (rf"dpt\.encoder\.layer\.(?!(?:{kept})\.)\d+\..*",)
    if variant != BEIT or config.feature_indices is None:
        return ()
    kept = "|".join(str(i) for i in range(max(config.feature_indices) + 1))
    return (rf"beit\.encoder\.layer\.(?!(?:{kept})\.)\d+",)


def prepare(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Swin's ``attention.self.{query,key,value}`` as timm's fused ``attention.self.qkv`` (concatenated in that
    order, weights and biases); BEiT's as ``attention.attention.qkv.weight`` with ``q_bias`` and ``v_bias``;
    SegFormer's as ``q`` and ``kv`` and its head's linear layers and fusion as segzoo's (``_segformer_tensor``);
    Mask2Former's class predictor split into its classes and no object; every other tensor as it is."""
    out = {}
    is_segformer = any(key.startswith("segformer.") for key in state_dict)  # once, not per tensor
    is_dpt = dpt_layout.is_dpt(state_dict)
    is_mask2former = mask2former_layout.is_mask2former(state_dict)
    for key, value in state_dict.items():
        segformer = _segformer_tensor(state_dict, key, value) if is_segformer else None
        if segformer is None and is_dpt:
            segformer = dpt_layout.fuse_qkv(state_dict, key)
        if segformer is None and is_mask2former:
            segformer = mask2former_layout.split_class_predictor(key, value)
        if segformer is not None:
            out.update(segformer)
            continue
        beit = re.fullmatch(r"(beit\..*\.attention\.attention)\.(query|key|value)\.(weight|bias)", key)
        if beit is not None:
            prefix, part, kind = beit.groups()
            if kind == "bias":
                out[f"{prefix}.{part[0]}_bias"] = value  # q_bias, v_bias (BEiT's keys have no bias)
            elif part == "query":
                parts = [state_dict.get(f"{prefix}.{name}.weight") for name in ("query", "key", "value")]
                if any(p is None for p in parts):
                    raise CheckpointError(f"{prefix} has a query weight but not a key and value weight")
                out[f"{prefix}.qkv.weight"] = torch.cat(parts)
            continue
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


def _segformer_tensor(state_dict: Mapping[str, torch.Tensor], key: str, value: torch.Tensor
                      ) -> dict[str, torch.Tensor] | None:
    """What a tensor of a SegFormer checkpoint becomes (``{}``: folded into another), or None where it stays as it
    is."""
    attention = re.fullmatch(r"(segformer\..*\.attention\.self)\.(query|key|value)\.(weight|bias)", key)
    if attention is not None:
        prefix, part, kind = attention.groups()
        if part == "query":
            return {f"{prefix}.q.{kind}": value}
        if part == "value":
            return {}
        other = state_dict.get(f"{prefix}.value.{kind}")
        if other is None:
            raise CheckpointError(f"{prefix} has a key {kind} but no value {kind}")
        return {f"{prefix}.kv.{kind}": torch.cat([value, other])}
    if key.startswith("segformer."):
        return None
    if re.fullmatch(r"decode_head\.linear_c\.\d\.proj\.weight", key):  # a linear layer as a 1x1 convolution
        return {key: value[:, :, None, None]}
    if key == "decode_head.linear_fuse.weight":  # over c4, c3, c2, c1 -> over c1, c2, c3, c4
        levels = len({k.split(".")[2] for k in state_dict if k.startswith("decode_head.linear_c.")})
        return {key: torch.cat(value.chunk(levels, dim=1)[::-1], dim=1)}
    return None


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


def _beit_backbone(source: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """timm's BEiT of the checkpoint's width and depth, at the grid its relative position bias is for."""
    width = _shape(source, "beit.embeddings.cls_token")[-1]
    depth = len({key.split(".")[3] for key in source if key.startswith("beit.encoder.layer.")})
    table = _shape(source, "beit.encoder.layer.0.attention.attention.relative_position_bias."
                           "relative_position_bias_table")[0]
    patch = _shape(source, "beit.embeddings.patch_embeddings.projection.weight")[-1]
    grid = (int(round((table - 3) ** 0.5)) + 1) // 2  # (2 * grid - 1) ** 2 distances + 3 for the class token
    name = {(768, 12): "beit_base_patch16_224", (1024, 24): "beit_large_patch16_224"}.get((width, depth))
    kwargs: dict[str, Any] = {"img_size": grid * patch}
    if name is None or patch != 16:
        name = "beit_base_patch16_224"
        heads = _shape(source, "beit.encoder.layer.0.attention.attention.relative_position_bias."
                               "relative_position_bias_table")[1]
        hidden = _shape(source, "beit.encoder.layer.0.intermediate.dense.weight")[0]
        kwargs.update(embed_dim=width, depth=depth, num_heads=heads, patch_size=patch, mlp_ratio=hidden / width)
    return name, kwargs


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


def _mit_backbone(source: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """segzoo's MiT of the checkpoint's depths and widths; another size as ``mit_b0`` with its sizes (depths,
    widths, reduction ratios from the reduction convolutions, feed-forward ratios) as ``backbone_kwargs``."""
    depths = tuple(_blocks(source, _MIT_BLOCK))
    dims = tuple(_shape(source, f"segformer.encoder.patch_embeddings.{i}.proj.weight")[0] for i in range(len(depths)))
    for name, sizes in MIT_SIZES.items():
        if sizes == (depths, dims):
            return name, {}
    block = "segformer.encoder.block.{}.0"
    srs = tuple(source[f"{block.format(i)}.attention.self.sr.weight"].shape[-1]
                if f"{block.format(i)}.attention.self.sr.weight" in source else 1 for i in range(len(depths)))
    ratios = tuple(_shape(source, f"{block.format(i)}.mlp.dense1.weight")[0] / dims[i] for i in range(len(depths)))
    return "mit_b0", {"depths": depths, "embed_dims": dims, "sr_ratios": srs, "mlp_ratios": ratios,
                      "num_heads": _MIT_HEADS[:len(depths)]}


def infer_backbone(source: Mapping[str, Any], variant: str) -> str:
    if variant == MASK2FORMER:
        return _backbone(mask2former_layout.as_backbone_keys(source), SWIN)[0]
    if variant == DPT:
        return dpt_layout.dpt_backbone(source)[0]
    if variant == SEGFORMER:
        return _mit_backbone(source)[0]
    return _beit_backbone(source)[0] if variant == BEIT else _backbone(source, variant)[0]


def config_for(head: str, form: Upstream, backbone: str, num_classes: int, source: Mapping[str, Any],
               variant: str) -> ModelConfig:
    """The checkpoint's model as the keys and shapes tell it: the backbone at its own size (and window), the
    per-level norms, UPerNet's width from its bottleneck, mmseg's ``align_corners=False``; no aux head."""
    if variant == DPT:
        return dpt_layout.dpt_config(head, form, backbone, num_classes, source)
    if variant == MASK2FORMER:  # its classes: the class predictor's rows less the no-object class
        name, backbone_kwargs, _ = _backbone(mask2former_layout.as_backbone_keys(source), SWIN)
        return mask2former_layout.mask2former_config(head, form, backbone, backbone_kwargs if backbone == name else {},
                                                     source)
    if variant == SEGFORMER:  # every LayerNorm of transformers' MiT: PyTorch's default epsilon
        name, backbone_kwargs = _mit_backbone(source)
        return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, output_stride=32,
                           backbone_kwargs=backbone_kwargs if backbone == name else {}, align_corners=False,
                           backbone_norm_eps=1e-5, input_size=(512, 512), head_kwargs={
                               **form.options, "channels": _shape(source, "decode_head.linear_fuse.weight")[0]})
    channels = _shape(source, "decode_head.bottleneck.conv.weight")[0]
    if variant == BEIT:  # the blocks: transformers' default out_indices (3, 5, 7, 11) as it reads them
        name, backbone_kwargs = _beit_backbone(source)
        depth = backbone_kwargs.get("depth", 24 if name == "beit_large_patch16_224" else 12)
        indices = (1, 3, 5, 9) if depth == 12 else (5, 9, 13, 21)
        return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, output_stride=32,
                           backbone_kwargs=backbone_kwargs if backbone == name else {}, feature_indices=indices,
                           neck="feature2pyramid", align_corners=False,
                           head_kwargs={**form.options, "channels": channels}, mean=(0.5,) * 3, std=(0.5,) * 3,
                           backbone_norm_eps=1e-12,  # transformers' BeitConfig default (timm's: 1e-6)
                           input_size=tuple(backbone_kwargs["img_size"] for _ in range(2)))
    name, backbone_kwargs, eps = _backbone(source, variant)
    if backbone != name:
        backbone_kwargs = {}  # a backbone given by the caller is taken as it is
    return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, output_stride=32,
                       backbone_kwargs=backbone_kwargs, feature_norms=("c1", "c2", "c3", "c4"),
                       feature_norm_eps=eps, align_corners=False, head_kwargs={**form.options, "channels": channels},
                       input_size=(512, 512))


def beit_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a BEiT ``config.json`` tells besides the keys: the blocks its ``out_indices`` select as transformers reads
    them (each - 2) and its LayerNorm epsilon; empty for another config."""
    if config.get("model_type") != "beit":
        return {}
    fields: dict[str, Any] = {}
    indices = feature_indices_of(config)
    if indices is not None:
        fields["feature_indices"] = indices
    eps = config.get("layer_norm_eps")
    if isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0:
        fields["backbone_norm_eps"] = float(eps)
    return fields


def feature_indices_of(config: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The timm blocks a BEiT ``config.json``'s ``out_indices`` select as transformers reads them (each - 2), or
    None for another config."""
    indices = config.get("out_indices")
    if config.get("model_type") != "beit" or not isinstance(indices, list) or len(indices) != 4:
        return None
    return tuple(int(i) - 2 for i in indices)


def check_segformer_config(config: Mapping[str, Any]) -> None:
    """A SegFormer ``config.json`` must have MiT's attention heads (1, 2, 5, 8): the weights' shapes do not tell
    them, and segzoo builds MiT's."""
    heads = config.get("num_attention_heads")
    if config.get("model_type") == "segformer" and heads is not None and tuple(heads) != _MIT_HEADS[:len(heads)]:
        raise CheckpointError(f"this SegFormer has {list(heads)} attention heads per stage; segzoo converts MiT's "
                              f"{list(_MIT_HEADS)} only")
