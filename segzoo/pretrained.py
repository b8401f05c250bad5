"""The zoo table: every published model name with its full config, Hub repo, dataset and reported accuracy.

Names follow the reference zoo's spelling (``fcn_resnet101_voc``, ``psp_resnet101_citys``,
``deeplab_resnet101_ade``); ``pspnet_`` and ``deeplabv3_`` are accepted as aliases of ``psp_`` and
``deeplab_``. All ResNet-101 entries use ResNet-101-v1s (timm ``resnet101s``), aux heads, and the
reference's options (PSP bins 1-4, DANet softmax over queries without deep supervision, OCNet with ReLU),
so that converted reference checkpoints reproduce the reference outputs.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .class_names import DATASET_CLASSES
from .config import ModelConfig
from .errors import UnknownModelError, did_you_mean

__all__ = ["PretrainedEntry", "get_pretrained", "is_pretrained_name", "list_pretrained", "resolve_alias",
           "find_pretrained_entry", "read_manifest", "MANIFEST_ENV", "HUB_ORGANISATION"]

HUB_ORGANISATION = "segzoo"
ALIASES = {"pspnet_": "psp_", "deeplabv3_": "deeplab_"}
DATASETS = {
    "voc": ("Pascal VOC 2012 val", (480, 480)),
    "citys": ("Cityscapes val", (1024, 2048)),
    "ade": ("ADE20K val", (480, 480)),
}
REFERENCE_SOURCE = "reference zoo README (single-scale mIoU), as collected in segzoo's SPEC.md"
# What hub/publish.py has published: name -> repo_id, revision, sha256, metrics, source.
MANIFEST_ENV = "SEGZOO_MANIFEST"
DEFAULT_MANIFEST = Path(__file__).with_name("published.json")


@dataclass(frozen=True)
class PretrainedEntry:
    """One zoo model.

    Attributes:
        name: Zoo name.
        config: The model's full config.
        dataset: ``"voc"``, ``"citys"`` or ``"ade"``.
        hf_hub_id: Hub repository the weights are published to.
        revision: Pinned Hub commit of the published weights; None while unpublished.
        sha256: sha256 of the published ``model.safetensors`` (checked after download).
        metrics: Reported accuracy (``{"mIoU": 76.89, "split": ...}``); ``mIoU`` None where not reported.
        source: Where the metrics come from.
    """

    name: str
    config: ModelConfig
    dataset: str
    hf_hub_id: str
    revision: Optional[str] = None
    sha256: Optional[str] = None
    metrics: dict[str, Any] = field(default_factory=dict)
    source: str = REFERENCE_SOURCE

    @property
    def published(self) -> bool:
        return self.revision is not None


_HEAD_OPTIONS = {
    "fcn": ("fcn", {}),
    "psp": ("pspnet", {"bins": (1, 2, 3, 4)}),
    "deeplab": ("deeplabv3", {}),
    "danet": ("danet", {"softmax_over": "queries", "deep_supervision": False}),
    "ocnet": ("ocnet", {"activation": "relu"}),
    "ccnet": ("ccnet", {}),
    "bisenet": ("bisenet", {}),
}


def _entry(prefix: str, dataset: str, miou: Optional[float], backbone: str = "resnet101s", dilated: bool = False,
           suffix: str = "") -> PretrainedEntry:
    head, head_kwargs = _HEAD_OPTIONS[prefix]
    split, input_size = DATASETS[dataset]
    classes = DATASET_CLASSES[dataset]
    if head == "bisenet":  # ResNet-18 context path at stride 32, its own aux heads
        structure = dict(output_stride=32, neck=None)
    elif dilated:
        structure = dict(output_stride=8, neck=None)
    else:
        structure = dict(output_stride=32, neck="jpu")
    config = ModelConfig(head=head, backbone=backbone, num_classes=len(classes), aux=True,
                         head_kwargs=dict(head_kwargs), class_names=classes, input_size=input_size,
                         align_corners=True, **structure)
    name = f"{prefix}_{backbone.removesuffix('s')}{suffix}_{dataset}"  # the reference says resnet101 for v1s
    metrics = {"mIoU": miou, "split": split, "eval": "single scale"}
    return PretrainedEntry(name=name, config=config, dataset=dataset, hf_hub_id=f"{HUB_ORGANISATION}/{name}",
                           metrics=metrics)


_ENTRIES = [
    _entry("fcn", "voc", 76.89),
    _entry("psp", "voc", 78.48),
    _entry("psp", "voc", 78.57, dilated=True, suffix="_dilated"),
    _entry("deeplab", "voc", 78.75),
    _entry("danet", "voc", 78.72),
    _entry("bisenet", "voc", 67.11, backbone="resnet18"),
    _entry("ocnet", "voc", 79.07),
    _entry("ccnet", "voc", None),
    _entry("fcn", "citys", 78.61),
    _entry("psp", "citys", 78.62),
    _entry("deeplab", "citys", 79.03),
    _entry("danet", "citys", None),
    _entry("ocnet", "citys", 74.18),  # the reference evaluated this one on centre crops
    _entry("bisenet", "citys", None, backbone="resnet18"),
    _entry("deeplab", "ade", None),
]
PRETRAINED: dict[str, PretrainedEntry] = {entry.name: entry for entry in _ENTRIES}


def read_manifest(path: Optional[str | os.PathLike] = None) -> dict[str, dict[str, Any]]:
    """The publishing manifest (``SEGZOO_MANIFEST`` or the packaged ``published.json``); {} if absent."""
    path = Path(path or os.environ.get(MANIFEST_ENV) or DEFAULT_MANIFEST)
    return json.loads(path.read_text()) if path.is_file() else {}


def _published(entry: PretrainedEntry, manifest: dict[str, dict[str, Any]]) -> PretrainedEntry:
    record = manifest.get(entry.name)
    if not record:
        return entry
    return dataclasses.replace(entry, hf_hub_id=record["repo_id"], revision=record["revision"],
                               sha256=record["sha256"], metrics=record.get("metrics", entry.metrics),
                               source=record.get("source", entry.source))


def find_pretrained_entry(config: ModelConfig) -> Optional[PretrainedEntry]:
    """The zoo entry whose config this is (provenance aside), if any."""
    plain = config.replace(provenance={})
    return next((get_pretrained(name) for name, entry in PRETRAINED.items() if entry.config == plain), None)


def resolve_alias(name: str) -> str:
    """``pspnet_resnet101_voc`` -> ``psp_resnet101_voc``; other names unchanged."""
    for alias, canonical in ALIASES.items():
        if name.startswith(alias):
            return canonical + name[len(alias):]
    return name


def is_pretrained_name(name: str) -> bool:
    return resolve_alias(name) in PRETRAINED


def get_pretrained(name: str) -> PretrainedEntry:
    """The zoo entry of ``name`` (aliases allowed), or ``UnknownModelError`` with the closest names."""
    canonical = resolve_alias(name)
    if canonical not in PRETRAINED:
        raise UnknownModelError(f"Unknown zoo model {name!r}.{did_you_mean(canonical, PRETRAINED)}")
    return _published(PRETRAINED[canonical], read_manifest())


def list_pretrained(pattern: Optional[str] = None) -> list[str]:
    """Zoo names, optionally filtered by an fnmatch pattern (``"*_voc"``)."""
    names = sorted(PRETRAINED)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names
