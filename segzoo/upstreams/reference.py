"""The reference zoo: its files (Google Drive), its datasets (Pascal VOC, Cityscapes, ADE20K), its licence, and
its checkpoint layout (GluonCV-style ``base1/2/3``, ``JPU.``) and PyTorch-Encoding / FastFCN's
(``pretrained.<timm key>``, ``jpu.``), which share their head layout.

This module knows what is common to every model of those upstreams: where the backbone, the neck and the aux
head sit in a checkpoint and what to drop. What differs per head (its options and head keys) is declared by the
head itself (``upstreams`` with source ``"reference"``); the JPU neck's keys by the neck. A *kind* names one
head form with one structure: ``psp_d8`` is the reference PSPNet on a dilated (output stride 8) backbone,
``psp_jpu`` the same head on the JPU neck.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from ..config import ModelConfig
from ..errors import CheckpointError, WeightsUnavailableError
from ..registry import get_neck, list_heads
from ..upstream import KeyRule, PretrainedSpec, Upstream, UpstreamFile, conv_bn_act_keys, find_upstream
from .backbone_depth import resnet_by_depth
from .base import Host, UpstreamPlugin, ZooDataset
from .class_names import ADE20K_CLASSES, CITYSCAPES_CLASSES, VOC_CLASSES
from .palettes import ade20k_palette, cityscapes_palette, voc_palette

__all__ = ["ReferenceUpstream", "SOURCE", "VARIANTS", "Kind", "reference_kinds", "kind_config"]

SOURCE = "reference"
VARIANTS = ("reference", "encoding")  # the two key layouts of this upstream's checkpoints
# How a kind's name ends, and the structure it stands for.
STRUCTURES: dict[str, dict[str, Any]] = {"jpu": dict(neck="jpu", output_stride=32), "d8": dict(output_stride=8)}

# The reference backbone is ResNet-v1s split into base1 (stem + layer1 + layer2's blocks one by one),
# base2 (= layer3) and base3 (= layer4). base1.{2,5,8,9} are ReLUs / the max-pool: no parameters.
_MAX_LAYER2_BLOCKS = 8  # resnet152s; indices a smaller checkpoint does not have are never used
_BACKBONE: dict[str, tuple[KeyRule, ...]] = {
    "reference": (
        tuple((rf"base1\.{i}", f"backbone.conv1.{i}") for i in (0, 1, 3, 4, 6))
        + ((r"base1\.7", "backbone.bn1"), (r"base1\.10", "backbone.layer1"))
        + tuple((rf"base1\.{11 + i}", f"backbone.layer2.{i}") for i in range(_MAX_LAYER2_BLOCKS))
        + ((r"base2", "backbone.layer3"), (r"base3", "backbone.layer4"))),
    # PyTorch-Encoding / FastFCN keep the backbone as ``pretrained`` with timm's own key names.
    "encoding": ((r"pretrained", "backbone"),),
}
_NECK_PREFIX = {"reference": "JPU", "encoding": "jpu"}
# Classification layers of the ImageNet backbone: not part of a segmentation model.
_DROPPED: dict[str, tuple[str, ...]] = {"reference": (r"fc",), "encoding": (r"pretrained\.fc",)}
# The aux head: auxlayer = FCNHead(block = Sequential(conv, bn, relu, dropout, classifier)).
_AUX = conv_bn_act_keys(r"auxlayer\.block", "aux_head.block") + ((r"auxlayer\.block\.4", "aux_head.classifier"),)
# Where the layer3 blocks are, to tell ResNet-50 / 101 / 152 apart.
_LAYER3_BLOCK = {"reference": re.compile(r"base2\.(\d+)\."), "encoding": re.compile(r"pretrained\.layer3\.(\d+)\.")}
_DEPTH_TO_BACKBONE = {6: "resnet50s", 23: "resnet101s", 36: "resnet152s"}


@dataclass(frozen=True)
class Kind:
    """One reference model: a head form on a structure (see the module docstring)."""

    name: str
    head: str
    form: Upstream
    structure: Mapping[str, Any]


def reference_kinds() -> dict[str, Kind]:
    """Every kind the registered heads make possible: ``<form variant>_<jpu|d8>`` for each reference form with
    key rules."""
    kinds = {}
    for info in list_heads():
        for form in getattr(info.plugin_class, "upstreams", ()):
            if form.source == SOURCE and form.rules:
                for suffix, structure in STRUCTURES.items():
                    name = f"{form.variant}_{suffix}"
                    kinds[name] = Kind(name, info.name, form, structure)
    return dict(sorted(kinds.items()))


def kind_config(kind: Kind, backbone: str, num_classes: int) -> ModelConfig:
    """The config of a reference model of ``kind`` (aux head, ``align_corners=True``, the form's options)."""
    return ModelConfig(head=kind.head, backbone=backbone, num_classes=num_classes, aux=True,
                       head_kwargs=dict(kind.form.options), **kind.structure)


_OPTIMISER = ("SGD momentum 0.9, weight decay 1e-4, lr {lr} x batch/8 x GPUs with 10x on head, neck and aux; 200 "
              "warm-up iterations, then poly (power 0.9); aux loss weight 0.4.")
_DATASETS = (
    ZooDataset("voc", "Pascal VOC 2012 val", (480, 480), VOC_CLASSES, voc_palette, "pascal-voc-2012",
               "Pascal VOC 2012 train_aug (10,582 images), 50 epochs; base size 540, crop 480; "
               + _OPTIMISER.format(lr="0.001")),
    ZooDataset("citys", "Cityscapes val", (1024, 2048), CITYSCAPES_CLASSES, cityscapes_palette, "cityscapes",
               "Cityscapes fine train (2,975 images), 120 epochs; base size 1024, crop 768; "
               + _OPTIMISER.format(lr="0.01")),
    ZooDataset("ade", "ADE20K val", (480, 480), ADE20K_CLASSES, ade20k_palette, "ade20k",
               "ADE20K train (20,210 images); base size 520, crop 480; the reference recipe (SGD, poly schedule)."),
)


class ReferenceUpstream(UpstreamPlugin):
    """The reference zoo and PyTorch-Encoding / FastFCN (``"encoding"``): Google Drive files without published
    hashes (a mirror serves them as ``<base>/<Drive file id>``), ImageNet backbones from GluonCV."""

    name = SOURCE
    order = 0
    aliases = ("encoding",)
    hosts = {"gdrive": Host("SEGZOO_GDRIVE_URL", None)}
    license = "unknown"
    terms = ("The reference zoo states no licence for its weights; the training data's terms apply (Pascal VOC: "
             "Flickr images for research; Cityscapes: non-commercial research only).")

    def describe(self, file: UpstreamFile) -> str:
        return self.file_url(file) or f"Google Drive file {file.path}"

    def transfer(self, file: UpstreamFile, target: Path, *, name: str, progress: bool) -> str:
        """From the mirror when ``SEGZOO_GDRIVE_URL`` is set, else from Google Drive through gdown."""
        if self.file_url(file) is not None:
            return super().transfer(file, target, name=name, progress=progress)
        try:
            import gdown
        except ImportError:
            raise WeightsUnavailableError(
                f"{name} is a Google Drive file ({file.path}): install gdown (pip install 'segzoo[gdrive]'), or set "
                f"{self.hosts[file.host].env} to a mirror, or download it yourself and run `segzoo convert`") from None
        try:
            written = gdown.download(id=file.path, output=str(target), quiet=not progress)
        except Exception as err:  # gdown raises its own errors for missing files, quota, HTML pages
            written = None
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
        else:
            reason = "gdown returned nothing"
        if not written or not target.is_file():
            raise WeightsUnavailableError(
                f"{name}: Google Drive file {file.path} could not be downloaded ({reason}); it may be gone. Download "
                f"it from the upstream's page yourself and run `segzoo convert`") from None
        return hashlib.sha256(target.read_bytes()).hexdigest()

    def datasets(self) -> dict[str, ZooDataset]:
        return {dataset.key: dataset for dataset in _DATASETS}

    def base_model(self, spec: PretrainedSpec) -> Optional[str]:
        """GluonCV's ImageNet ResNet-v1s (timm's ``.gluon_in1k`` tags)."""
        return f"timm/{spec.backbone}.gluon_in1k"

    def config_for(self, head: str, form: Upstream, backbone: str, num_classes: int, keys: Iterable[str],
                   variant: str) -> ModelConfig:
        """The reference's recipe for a checkpoint whose kind is not named: on the JPU neck when its keys hold
        one, else dilated (output stride 8)."""
        prefix = _NECK_PREFIX[variant] + "."
        structure = STRUCTURES["jpu" if any(key.startswith(prefix) for key in keys) else "d8"]
        return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, aux=True,
                           head_kwargs=dict(form.options), **structure)

    def detect(self, keys: Iterable[str]) -> str:
        """``"reference"`` (backbone under ``base1.``) or ``"encoding"`` (under ``pretrained.``)."""
        keys = list(keys)
        reference = any(key.startswith("base1.") for key in keys)
        encoding = any(key.startswith("pretrained.") for key in keys)
        if reference == encoding:
            raise CheckpointError("cannot tell the checkpoint layout: expected backbone keys under 'base1.' "
                                  "(reference) or under 'pretrained.' (PyTorch-Encoding), "
                                  + ("found both" if reference else "found neither"))
        return "reference" if reference else "encoding"

    def infer_backbone(self, keys: Iterable[str], variant: str) -> str:
        """The timm ResNet-v1s whose layer3 has as many blocks as the checkpoint's."""
        return resnet_by_depth(keys, _LAYER3_BLOCK[variant], _DEPTH_TO_BACKBONE, "; pass backbone= explicitly")

    def rules(self, form: Upstream, config: ModelConfig, variant: str) -> tuple[KeyRule, ...]:
        """Every key rule of a checkpoint of this head form and config in ``variant``: backbone, neck, aux,
        head."""
        neck = _neck_rules(config.neck, variant) if config.neck else ()
        return _BACKBONE[variant] + neck + _AUX + form.rules

    def dropped(self, variant: str) -> tuple[str, ...]:
        """The ImageNet classifier."""
        return _DROPPED[variant]


def _neck_rules(neck: str, variant: str) -> tuple[KeyRule, ...]:
    """The neck's own reference rules, placed where this layout keeps its neck."""
    form = find_upstream(get_neck(neck), SOURCE, neck)
    prefix = re.escape(_NECK_PREFIX[variant])
    return tuple((rf"{prefix}\.{source}", f"neck.{target}") for source, target in form.rules)
