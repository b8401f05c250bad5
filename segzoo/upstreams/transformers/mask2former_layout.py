"""transformers' ``Mask2FormerForUniversalSegmentation`` on a Swin (``facebook/mask2former-swin-*``): the backbone under
``model.pixel_level_module.encoder`` (transformers' ``SwinBackbone``, the very keys of UPerNet's Swin under another
prefix: the same rules, its query, key and value fused into timm's ``qkv`` by the layout's ``prepare``), its per-level
norms ``hidden_states_norms.stageN`` as segzoo's ``feature_norms.cN`` (epsilon 1e-5), and the pixel decoder, the
transformer decoder and ``class_predictor`` as segzoo's ``mask2former`` head (its rules, source ``"transformers"``).
``criterion.empty_weight`` (the loss's class weights) is training only. ``class_predictor`` (the classes and, in its
last row, "no object") is split by ``split_class_predictor``: its classes' rows are the head's ``classifier`` (segzoo
re-initialises those for another number of classes), the last row its ``no_object``.

What the weights do not tell, ``config.json`` does: transformers' own defaults are what every Hub repo has (post-norm
decoder layers, no input projection between equal widths, ReLU); others are refused (``check_config``). The attention
heads are read from the deformable attention's offsets (heads x 3 levels x 4 points x 2 per row)."""
from __future__ import annotations

import re
from typing import Any, Mapping

from ...config import ModelConfig
from ...errors import CheckpointError
from ...upstream import KeyRule, Upstream

__all__ = ["MASK2FORMER", "PREFIX", "is_mask2former", "backbone_rules", "as_backbone_keys", "DROPPED",
           "head_options", "mask2former_config", "check_config", "CLASSIFIER", "split_class_predictor"]

MASK2FORMER = "mask2former"
PREFIX = "model.pixel_level_module.encoder."
CLASSIFIER = "class_predictor.weight"
DROPPED = (r"criterion",)
_PIXEL = "model.pixel_level_module.decoder."
_QUERIES = "model.transformer_module."


def is_mask2former(keys) -> bool:
    return any(key.startswith(_QUERIES + "decoder.") for key in keys)


def split_class_predictor(key: str, value) -> dict[str, Any] | None:
    """The class predictor's weight or bias as its classes' rows and the no-object row; None for another key."""
    match = re.fullmatch(r"class_predictor\.(weight|bias)", key)
    if match is None:
        return None
    return {key: value[:-1], f"class_predictor_no_object.{match.group(1)}": value[-1:]}


def backbone_rules(swin_rules: tuple[KeyRule, ...]) -> tuple[KeyRule, ...]:
    """UPerNet's Swin rules (``backbone.*``) with the backbone under Mask2Former's prefix."""
    upernet = r"backbone\."
    return tuple((re.escape(PREFIX) + source[len(upernet):] if source.startswith(upernet) else source, target)
                 for source, target in swin_rules)


def as_backbone_keys(source: Mapping[str, Any]) -> dict[str, Any]:
    """The backbone's entries under UPerNet's prefix (``backbone.``), to read its size the same way."""
    if not any(key.startswith(PREFIX + "encoder.layers.") for key in source):
        raise CheckpointError("this Mask2Former's backbone is not transformers' Swin (no keys under "
                              f"'{PREFIX}encoder.layers.'); segzoo converts Mask2Former on a Swin")
    return {"backbone." + key[len(PREFIX):]: value for key, value in source.items() if key.startswith(PREFIX)}


def _shape(source: Mapping[str, Any], key: str) -> tuple[int, ...]:
    if key not in source:
        raise CheckpointError(f"not a Mask2Former checkpoint: it has no {key}")
    return tuple(source[key].shape)


def _count(source: Mapping[str, Any], prefix: str) -> int:
    return len({key[len(prefix):].split(".")[0] for key in source if key.startswith(prefix)})


def head_options(source: Mapping[str, Any]) -> dict[str, Any]:
    """The head's sizes as the shapes tell them."""
    queries, hidden = _shape(source, _QUERIES + "queries_features.weight")
    mask_dim, feature_size = _shape(source, _PIXEL + "mask_projection.weight")[:2]
    decoder_layers = _count(source, _QUERIES + "decoder.layers.")
    encoder_layers = _count(source, _PIXEL + "encoder.layers.")
    options = {"hidden_dim": hidden, "num_queries": queries, "decoder_layers": decoder_layers + 1,
               "encoder_layers": encoder_layers, "feature_size": feature_size, "mask_feature_size": mask_dim,
               "common_stride": 4 if _PIXEL + "adapter_1.0.weight" in source else 8}
    if decoder_layers:
        options["dim_feedforward"] = _shape(source, _QUERIES + "decoder.layers.0.fc1.weight")[0]
    if encoder_layers:
        options["encoder_feedforward_dim"] = _shape(source, _PIXEL + "encoder.layers.0.fc1.weight")[0]
        offsets = _shape(source, _PIXEL + "encoder.layers.0.self_attn.sampling_offsets.weight")[0]
        options["num_heads"] = offsets // (3 * 4 * 2)
    return options


def mask2former_config(head: str, form: Upstream, backbone: str, backbone_kwargs: dict[str, Any],
                       source: Mapping[str, Any]) -> ModelConfig:
    """The checkpoint's model: the Swin with its per-level norms, the head's sizes from the shapes, the classes from
    the class predictor (its rows less the no-object class), no aux head, ``align_corners=False``."""
    classes = _shape(source, CLASSIFIER)[0] - 1
    return ModelConfig(head=head, backbone=backbone, num_classes=classes, output_stride=32, aux=False,
                       backbone_kwargs=backbone_kwargs, feature_norms=("c1", "c2", "c3", "c4"), feature_norm_eps=1e-5,
                       align_corners=False, head_kwargs={**form.options, **head_options(source)},
                       input_size=(512, 512))


def check_config(config: Mapping[str, Any]) -> None:
    """A Mask2Former ``config.json`` must be what the weights can tell: post-norm layers, ReLU, equal widths of the
    pixel and transformer decoders without the optional projection (transformers keeps that projection in a plain
    list: its weights are in no checkpoint), a Swin backbone."""
    if config.get("model_type") != MASK2FORMER:
        return
    problems = []
    if config.get("pre_norm"):
        problems.append("pre_norm true")
    if config.get("activation_function", "relu") != "relu":
        problems.append(f"activation_function {config.get('activation_function')!r}")
    if config.get("enforce_input_projection") or config.get("feature_size", 256) != config.get("hidden_dim", 256):
        problems.append("an input projection between its decoders (not saved by transformers)")
    backbone = (config.get("backbone_config") or {}).get("model_type", "swin")
    if backbone != "swin":
        problems.append(f"a {backbone!r} backbone")
    if problems:
        raise CheckpointError(f"this Mask2Former has {', '.join(problems)}; segzoo converts transformers' Mask2Former "
                              f"as its Hub repos are (post-norm, ReLU, a Swin backbone, equal decoder widths)")
