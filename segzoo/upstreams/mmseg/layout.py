"""mmsegmentation's checkpoint layout (``backbone.*``, ``decode_head.*``, ``auxiliary_head.*``).

An mmseg checkpoint is ``{"meta": ..., "state_dict": ...}`` (sometimes with optimizer state; only the state dict
is read). Its backbone is mmseg's ResNet: ``ResNetV1c`` keeps its deep stem as ``backbone.stem.{0,1,3,4,6,7}``
(conv, bn, relu, ...), ``ResNet`` (v1b) as ``backbone.conv1`` / ``backbone.bn1``; the residual stages carry the very
key names timm uses. The aux head is an ``FCNHead`` with one conv (``auxiliary_head.convs.0``,
``auxiliary_head.conv_seg``). What differs per head is declared by the head itself (``upstreams`` with source
``"mmseg"``). mmcv's ``Scale`` stores attention scales 0-d (``decode_head.pam.gamma.scale``); segzoo's are
``(1,)``: ``prepare`` reshapes them, nothing else is touched. ``MMSegUpstream`` (``segzoo.upstreams.mmseg``) uses
these functions as its layout.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping

from torch import Tensor

from ...backbones import contracted_dilations, resnet_style
from ...config import ModelConfig
from ...errors import CheckpointError
from ...registry import get_head
from ...upstream import KeyRule, Upstream
from . import transformer_layout

__all__ = ["detect", "backbone_of", "infer_backbone", "rules", "dropped", "config_for", "prepare"]

_STEM = tuple((rf"backbone\.stem\.{i}", f"backbone.conv1.{i}") for i in (0, 1, 3, 4, 6)) + (
    (r"backbone\.stem\.7", "backbone.bn1"),)
_BACKBONE = _STEM + ((r"backbone", "backbone"),)
_AUX = ((r"auxiliary_head\.convs\.0", "aux_head.block"), (r"auxiliary_head\.conv_seg", "aux_head.classifier"))
# mmseg's stage dilations at each output stride (its -d8, -d16 and plain configs)
_MMSEG_DILATIONS = {8: (1, 1, 2, 4), 16: (1, 1, 1, 2), 32: (1, 1, 1, 1)}
# the ResNet: the backbone itself, or inside BiSeNetV1's context path
_RESNET_PREFIXES = ("backbone.", "backbone.context_path.backbone.")
# (bottleneck blocks?, layer3 blocks) -> depth
_DEPTHS = {(False, 2): 18, (False, 6): 34, (True, 6): 50, (True, 23): 101, (True, 36): 152}


def detect(keys: Iterable[str]) -> str:
    """``"mmseg"`` when the keys are an mmseg segmentor's on a ResNet (``backbone.*`` and ``decode_head.*``), the
    transformer-era variant (``transformer_layout.VARIANTS``) on a Swin, ConvNeXt, BEiT, MAE or ViT."""
    keys = list(keys)
    if not (any(key.startswith("backbone.") for key in keys) and any(key.startswith("decode_head.") for key in keys)):
        raise CheckpointError("not an mmsegmentation checkpoint: expected keys under 'backbone.' and 'decode_head.'")
    return transformer_layout.detect(keys) or "mmseg"


def backbone_of(keys: Iterable[str]) -> tuple[str, dict]:
    """The timm ResNet (name, ``backbone_kwargs``) of an mmseg ResNet checkpoint: v1c with a ``stem``, else v1b;
    the depth from the block type and layer3's block count."""
    return resnet_style(*_resnet_of(keys))


def _resnet_of(keys: Iterable[str]) -> tuple[int, str]:
    """(depth, style) of the checkpoint's ResNet."""
    keys = list(keys)
    prefix = next((p for p in reversed(_RESNET_PREFIXES) if any(key.startswith(p + "layer1.") for key in keys)),
                  _RESNET_PREFIXES[0])
    layer3 = re.compile(re.escape(prefix) + r"layer3\.(\d+)\.")
    blocks = {int(match.group(1)) for key in keys if (match := layer3.match(key))}
    bottleneck = any(key.startswith(prefix + "layer1.0.conv3.") for key in keys)
    depth = _DEPTHS.get((bottleneck, max(blocks) + 1 if blocks else 0))
    if depth is None:
        raise CheckpointError(f"cannot infer the backbone: {len(blocks)} layer3 blocks of "
                              f"{'bottleneck' if bottleneck else 'basic'} type is no ResNet segzoo knows; "
                              "convert with --model <zoo name>")
    return depth, "c" if any(key.startswith(prefix + "stem.") for key in keys) else "b"


def infer_backbone(keys: Iterable[str], variant: str = "mmseg") -> str:
    """The timm ResNet of the checkpoint (see ``backbone_of``; ``config_for`` adds its ``backbone_kwargs``), or the
    MiT of a SegFormer."""
    if variant == transformer_layout.MIT:
        return transformer_layout.mit_backbone(keys)
    return backbone_of(keys)[0]


def rules(form: Upstream, config: ModelConfig, variant: str = "mmseg") -> tuple[KeyRule, ...]:
    """Every key rule of an mmseg checkpoint of this head form: the head's own first (BiSeNetV1 keeps its paths
    and the ResNet inside ``backbone.``), then the backbone and the aux head."""
    if variant in transformer_layout.VARIANTS:
        return transformer_layout.rules(form, config, variant)
    return form.rules + _BACKBONE + _AUX


def dropped(variant: str = "mmseg") -> tuple[str, ...]:
    return transformer_layout.dropped(variant) if variant in transformer_layout.VARIANTS else ()


def prepare(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """mmcv's 0-d ``Scale`` parameters (``*.gamma.scale``) as the ``(1,)`` tensors segzoo's attention keeps; the
    transformer-era backbones' fixes (``transformer_layout.prepare``)."""
    variant = transformer_layout.detect(state_dict)
    if variant is not None:
        return transformer_layout.prepare(state_dict, variant)
    return {key: value.reshape(1) if key.endswith(".scale") and value.dim() == 0 else value
            for key, value in state_dict.items()}


def config_for(head: str, form: Upstream, backbone: str, num_classes: int, keys: Iterable[str] = (),
               variant: str = "mmseg") -> ModelConfig:
    """mmseg's most common recipe, for a checkpoint converted without its zoo name: output stride 8 (or the
    head's own: BiSeNetV1's 32), ``align_corners=False``, an aux head when the checkpoint has one. What the keys
    cannot tell (a ``-d16`` model's dilations, the 769x769 models' ``align_corners=True``, other widths than the
    form's) needs the zoo name (``--model``)."""
    if variant == transformer_layout.MIT:
        return transformer_layout.mit_config(head, form, backbone, num_classes, keys)
    keys = list(keys)
    depth, style = _resnet_of(keys)
    name, kwargs = resnet_style(depth, style)
    output_stride = getattr(get_head(head), "output_stride", None) or 8
    dilations = contracted_dilations(depth, _MMSEG_DILATIONS[output_stride], output_stride)
    return ModelConfig(head=head, backbone=backbone, backbone_kwargs=kwargs if name == backbone else {},
                       block_dilations=dilations,
                       num_classes=num_classes, aux=any(key.startswith("auxiliary_head.") for key in keys),
                       output_stride=output_stride, align_corners=False, head_kwargs=dict(form.options),
                       input_size=(512, 1024))
