"""torchvision's segmentation models (``fcn_resnet50``, ``deeplabv3_resnet101``, ...): their files
(download.pytorch.org, the sha256 prefix in each name), their dataset (COCO with the 20 Pascal VOC categories),
their licence and their checkpoint layout.

The backbone is torchvision's ResNet (v1b) under ``backbone.``, with the very key names timm uses; the head is
``classifier.`` and the aux head (an FCN head on layer3) ``aux_classifier.``. What differs per head is declared by
the head itself (``upstreams`` with source ``"torchvision"``).
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

from ..config import ModelConfig
from ..errors import CheckpointError
from ..upstream import KeyRule, PretrainedSpec, Upstream, conv_bn_act_keys
from .backbone_depth import resnet_by_depth
from .base import Host, UpstreamPlugin, ZooDataset
from .class_names import VOC_CLASSES
from .palettes import voc_palette

__all__ = ["TorchvisionUpstream", "SOURCE"]

SOURCE = "torchvision"
_BACKBONE = ((r"backbone", "backbone"),)
# aux_classifier = FCNHead(1024, classes): Sequential(conv, bn, relu, dropout, conv)
_AUX = conv_bn_act_keys(r"aux_classifier", "aux_head.block") + ((r"aux_classifier\.4", "aux_head.classifier"),)
_LAYER3_BLOCK = re.compile(r"backbone\.layer3\.(\d+)\.")
_DEPTH_TO_BACKBONE = {6: "resnet50", 23: "resnet101"}


# COCO images labelled with the 20 Pascal VOC categories (+ background)
_COCO_VOC = ZooDataset(
    "coco_voc", "COCO val2017, the 20 Pascal VOC categories", (520, 520), VOC_CLASSES, voc_palette, "coco",
    "COCO train2017 with the 20 Pascal VOC categories, torchvision's segmentation reference recipe (SGD, poly "
    "schedule, aux loss weight 0.5; github.com/pytorch/vision, references/segmentation).")


class TorchvisionUpstream(UpstreamPlugin):
    """torchvision's segmentation weights (``COCO_WITH_VOC_LABELS_V1``) on download.pytorch.org."""

    name = SOURCE
    order = 1
    hosts = {"torchvision": Host("SEGZOO_TORCHVISION_URL", "https://download.pytorch.org/models/")}
    license = "bsd-3-clause"
    terms = ("torchvision's BSD-3-Clause licence; trained on COCO (annotations CC BY 4.0, images under their "
             "Flickr licences), whose terms the weights may carry.")

    def datasets(self) -> dict[str, ZooDataset]:
        return {_COCO_VOC.key: _COCO_VOC}

    def base_model(self, spec: PretrainedSpec) -> Optional[str]:
        """torchvision's own ImageNet ResNets (timm's ``.tv_in1k`` tags)."""
        return f"timm/{spec.backbone}.tv_in1k"

    def detect(self, keys: Iterable[str]) -> str:
        """``"torchvision"`` when the keys are a torchvision segmentation model's, else ``CheckpointError``."""
        keys = list(keys)
        has_backbone = any(key.startswith("backbone.conv1.") for key in keys)
        if not (has_backbone and any(key.startswith("classifier.") for key in keys)):
            raise CheckpointError("not a torchvision segmentation checkpoint: expected keys under "
                                  "'backbone.conv1.' and 'classifier.'")
        return "torchvision"

    def infer_backbone(self, keys: Iterable[str], variant: str = "torchvision") -> str:
        """The timm ResNet (v1b, torchvision's own) whose layer3 has as many blocks as the checkpoint's."""
        return resnet_by_depth(keys, _LAYER3_BLOCK, _DEPTH_TO_BACKBONE)

    def rules(self, form: Upstream, config: ModelConfig, variant: str = "torchvision") -> tuple[KeyRule, ...]:
        """Every key rule of a torchvision checkpoint of this head form: backbone, aux head, head."""
        return _BACKBONE + _AUX + form.rules

    def config_for(self, head: str, form: Upstream, backbone: str, num_classes: int, keys: Iterable[str] = (),
                   variant: str = "torchvision") -> ModelConfig:
        """torchvision's recipe: output stride 8, aux head, ``align_corners=False``, evaluated at 520."""
        return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, aux=True, output_stride=8,
                           align_corners=False, head_kwargs=dict(form.options), input_size=(520, 520))
