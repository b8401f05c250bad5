"""torchvision's segmentation models' checkpoint layout (``fcn_resnet50``, ``deeplabv3_resnet101``, ...).

The backbone is torchvision's ResNet (v1b) under ``backbone.``, with the very key names timm uses; the head is
``classifier.`` and the aux head (an FCN head on layer3) ``aux_classifier.``. What differs per head is declared by
the head itself (``upstreams`` with source ``"torchvision"``).
"""
from __future__ import annotations

import re
from typing import Iterable

from ...config import ModelConfig
from ...errors import CheckpointError
from ...upstream import KeyRule, Upstream, conv_bn_act_keys
from .backbone_depth import resnet_by_depth

__all__ = ["SOURCE", "VARIANTS", "detect", "infer_backbone", "rules", "dropped", "prepare", "config_for"]

SOURCE = "torchvision"
VARIANTS = ("torchvision",)
_BACKBONE = ((r"backbone", "backbone"),)
# aux_classifier = FCNHead(1024, classes): Sequential(conv, bn, relu, dropout, conv)
_AUX = conv_bn_act_keys(r"aux_classifier", "aux_head.block") + ((r"aux_classifier\.4", "aux_head.classifier"),)
_LAYER3_BLOCK = re.compile(r"backbone\.layer3\.(\d+)\.")
_DEPTH_TO_BACKBONE = {6: "resnet50", 23: "resnet101"}


def detect(keys: Iterable[str]) -> str:
    """``"torchvision"`` when the keys are a torchvision segmentation model's, else ``CheckpointError``."""
    keys = list(keys)
    has_backbone = any(key.startswith("backbone.conv1.") for key in keys)
    if not (has_backbone and any(key.startswith("classifier.") for key in keys)):
        raise CheckpointError("not a torchvision segmentation checkpoint: expected keys under 'backbone.conv1.' "
                              "and 'classifier.'")
    return "torchvision"


def infer_backbone(keys: Iterable[str], variant: str = "torchvision") -> str:
    """The timm ResNet (v1b, torchvision's own) whose layer3 has as many blocks as the checkpoint's."""
    return resnet_by_depth(keys, _LAYER3_BLOCK, _DEPTH_TO_BACKBONE)


def rules(form: Upstream, config: ModelConfig, variant: str = "torchvision") -> tuple[KeyRule, ...]:
    """Every key rule of a torchvision checkpoint of this head form: backbone, aux head, head."""
    return _BACKBONE + _AUX + form.rules


def dropped(variant: str = "torchvision") -> tuple[str, ...]:
    return ()


def config_for(head: str, form: Upstream, backbone: str, num_classes: int, keys: Iterable[str] = (),
               variant: str = "torchvision") -> ModelConfig:
    """torchvision's recipe: output stride 8, aux head, ``align_corners=False``, evaluated at 520."""
    return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, aux=True, output_stride=8,
                       align_corners=False, head_kwargs=dict(form.options), input_size=(520, 520))


def prepare(state_dict):
    """Nothing to fix: this upstream stores every tensor as segzoo does."""
    return dict(state_dict)
