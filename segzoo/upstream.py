"""What a head or neck declares about itself besides its code: its upstream forms and its zoo entries.

Trained checkpoints of segzoo's architectures exist upstream (the reference zoo, PyTorch-Encoding, ...). Each
upstream trained a head with some options and named its parameters its own way. A head (or neck) class states
both, beside its code, as plain data:

    class PSPHead(SegmentationHead):
        aliases = ("psp",)
        upstreams = (Upstream("reference", "psp", options={"bins": (1, 2, 3, 4)}, rules=..., classifier=...),)
        pretrained = (PretrainedSpec("pspnet_resnet101_voc", upstream="reference", variant="psp", ...),)

An upstream's catalogue (mmseg's 233 checkpoints) is not listed in the heads: a head opts in with
``FromCatalogue("mmseg")`` in ``pretrained``, and its form says which catalogue records are its own
(``catalogue``) and how their options map to the head's (``adapter``). Everything else about an upstream (hosts,
download and integrity rule, checkpoint layout, datasets, licence) is the upstream plug-in's
(``segzoo.upstreams``).

The zoo (``segzoo.zoo``) collects ``pretrained`` from every registered head and takes the head options from the
matching ``Upstream``; the converter (``segzoo.weights``) collects ``rules``. A new head with weights is then
one file plus one entry-point line. Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

__all__ = ["Upstream", "UpstreamFile", "PretrainedSpec", "FromCatalogue", "KeyRule", "CatalogueAdapter",
           "conv_bn_act_keys", "find_upstream", "hash_in_name"]

KeyRule = tuple[str, str]  # (checkpoint module path regex, segzoo module path); groups may be used as \1
# an upstream catalogue's record -> (the head options it was trained with, "" ) or ({}, why segzoo cannot build it)
CatalogueAdapter = Callable[[Mapping[str, Any]], tuple[dict[str, Any], str]]


@dataclass(frozen=True)
class Upstream:
    """One upstream's form of a head (or neck).

    Attributes:
        source: The upstream, e.g. ``"reference"`` (the reference zoo and PyTorch-Encoding / FastFCN, which
            share the head layout).
        variant: The upstream's name for this form (``"psp"``, ``"ocnet_asp"``); unique per head and source.
        options: The head arguments the upstream trained with (``{"bins": (1, 2, 3, 4)}``).
        rules: How the upstream's checkpoint keys name this module's parameters: ``(regex, segzoo path)``
            pairs over module paths, the first match wins. A head's paths are whole checkpoint paths to
            ``head.*``; a neck's are relative to the neck (the upstream layout knows where its neck sits).
            Empty when no checkpoint of this form can be converted (its options still serve zoo entries).
        classifier: The checkpoint key of the main classifier weight (its rows give ``num_classes``).
        shared: ``(regex, module it duplicates)`` pairs: checkpoint modules stored under two names (OCNet's
            ``f_query`` is ``f_key``), placed by checking that both hold the same tensors.
        catalogue: The upstream catalogue's name of this form, when the upstream has a catalogue (mmseg: the
            architecture its model names start with, ``"fcn"``, ``"fcn-d6"``, ``"bisenetv1"``).
        adapter: How a catalogue record's options map to this head's: ``adapter(record) -> (options, "")``, or
            ``({}, why)`` for a record segzoo cannot build exactly. A small function beside the head.
    """

    source: str
    variant: str
    options: Mapping[str, Any] = field(default_factory=dict)
    rules: tuple[KeyRule, ...] = ()
    classifier: str = ""
    shared: tuple[KeyRule, ...] = ()
    catalogue: str = ""
    adapter: Optional[CatalogueAdapter] = None


@dataclass(frozen=True)
class FromCatalogue:
    """In a head's ``pretrained``: every entry of an upstream's catalogue that this head's forms build (the zoo
    asks the upstream plug-in for them, so no head imports a catalogue)."""

    upstream: str


@dataclass(frozen=True)
class UpstreamFile:
    """A trained checkpoint file where its upstream publishes it.

    Attributes:
        host: Which of its upstream's hosts has it (``"torchvision"``, ``"gdrive"``, ``"openmmlab"``); the
            upstream plug-in (``segzoo.upstreams``) knows each host's base URL and the variable that sets a
            mirror.
        path: The file's name under the host's base URL, or the Drive file id.
        sha256: Its sha256, or the prefix the upstream publishes in the file name (as ``torch.hub`` checks it);
            None where the upstream publishes none.
    """

    host: str
    path: str
    sha256: Optional[str] = None


@dataclass(frozen=True)
class PretrainedSpec:
    """One zoo entry of a head, as data: which upstream form on which backbone and dataset, where its checkpoint
    is, its licence and its accuracy.

    Attributes:
        name: The zoo name, timm's ``<architecture>.<tag>`` (``pspnet_resnet101s_jpu.ref_voc``): it starts with
            the head's registered name, and the tag says where the weights come from.
        upstream: The ``Upstream.source`` that trained it.
        variant: The ``Upstream.variant`` whose options it was trained with.
        backbone: timm backbone name.
        dataset: A dataset key of ``segzoo.zoo.datasets`` (``"voc"``, ``"citys"``, ``"ade"``, ``"coco_voc"``).
        neck: Neck name or None.
        output_stride: Backbone output stride.
        aux: Whether the upstream trained (and its checkpoints hold) the auxiliary head.
        align_corners: The upstream's bilinear upsampling mode.
        input_size: The upstream's evaluation size, when it is not the dataset's usual one.
        file: The trained checkpoint, or None where the upstream reports results but published no file.
        backbone_file: The backbone's weights where the upstream publishes them apart from the head's (DINOv2's
            heads): downloaded too, its keys placed under ``backbone.`` before converting.
        short_names: Other names of the entry (the seed zoo's ``pspnet_resnet101_voc``).
        license: The weights' licence as a Hub licence id (``"bsd-3-clause"``); None: the upstream's.
        terms: The licence and the training data's terms, in words (model cards, ``segzoo list --pretrained``);
            None: the upstream's.
        base_model: The Hub id of the weights the upstream started from (ImageNet backbone); None: what the
            upstream says for this backbone, if anything.
        metrics: Reported accuracy (``{"mIoU": 78.48, "eval": "single scale"}``; mIoU None where not reported).
        metrics_source: Where the metrics come from.
        options: Head options of this entry over its form's (mmseg's per-config widths and rates).
        backbone_kwargs: ``backbone_kwargs`` of its config (a v1c ResNet-18's deep stem).
        block_dilations: ``block_dilations`` of its config (mmseg's ResNet-18 and multi-grid dilations).
        carry_palette: Write the dataset's palette into the config (mmseg's official palettes, which differ
            from segzoo's own for ADE20K).
        inference: How the upstream evaluated it (its config's ``inference``, which ``segzoo predict`` and
            ``examples/evaluate.py`` follow): ``{"resize": (2048, 1024), "mode": "whole"}`` or
            ``{"mode": "slide", "crop": (h, w), "stride": (h, w)}``.
        head: The registered head; set only by an upstream plug-in declaring entries of heads it does not own
            (a head's own ``pretrained`` leaves it empty).
        config_fields: Other ``ModelConfig`` fields of its config (``feature_norms``, ``neck_kwargs``, ...).
    """

    name: str
    upstream: str
    variant: str
    backbone: str
    dataset: str
    neck: Optional[str] = None
    output_stride: int = 8
    aux: bool = True
    align_corners: bool = True
    input_size: Optional[tuple[int, int]] = None
    file: Optional[UpstreamFile] = None
    backbone_file: Optional[UpstreamFile] = None
    short_names: tuple[str, ...] = ()
    license: Optional[str] = None
    terms: Optional[str] = None
    base_model: Optional[str] = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    metrics_source: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    backbone_kwargs: Mapping[str, Any] = field(default_factory=dict)
    block_dilations: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    carry_palette: bool = False
    inference: Mapping[str, Any] = field(default_factory=dict)
    head: str = ""
    config_fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def reference(cls, name: str, variant: str, dataset: str, miou: Optional[float], *,
                  short_name: str, pixacc: Optional[float] = None, drive_id: Optional[str] = None,
                  backbone: str = "resnet101s", dilated: bool = False, output_stride: Optional[int] = None,
                  note: str = "") -> "PretrainedSpec":
        """A model of the reference zoo: ResNet-101-v1s (timm ``resnet101s``) with the JPU neck at output
        stride 32, or ``dilated`` at output stride 8, aux head, ``align_corners=True``; the single-scale pixAcc
        and mIoU its README reports; its checkpoint a Google Drive file (``drive_id``; no hash is published).
        ``output_stride`` sets another plain backbone (BiSeNet's 32, no neck). Licence, terms and base model are
        the ``reference`` upstream plug-in's."""
        if output_stride is not None:
            structure = dict(neck=None, output_stride=output_stride)
        else:
            structure = dict(neck=None, output_stride=8) if dilated else dict(neck="jpu", output_stride=32)
        metrics = {"mIoU": miou, **({"pixAcc": pixacc} if pixacc is not None else {}), "eval": "single scale"}
        return cls(name=name, upstream="reference", variant=variant, backbone=backbone, dataset=dataset,
                   file=UpstreamFile("gdrive", drive_id) if drive_id else None, short_names=(short_name,),
                   metrics=metrics,
                   metrics_source="the reference zoo's README (single-scale)" + (f"; {note}" if note else ""),
                   **structure)

    @classmethod
    def torchvision(cls, name: str, variant: str, backbone: str, miou: float, pixacc: float,
                    file_name: str) -> "PretrainedSpec":
        """A torchvision segmentation model (``COCO_WITH_VOC_LABELS_V1``): ResNet-v1b at output stride 8, aux
        head, ``align_corners=False``, COCO images with the 20 Pascal VOC categories, evaluated with the short
        side resized to 520; the metrics torchvision's weights enum reports. The file name carries the sha256
        prefix. Licence, terms and base model are the ``torchvision`` upstream plug-in's."""
        return cls(name=name, upstream="torchvision", variant=variant, backbone=backbone, dataset="coco_voc",
                   output_stride=8, align_corners=False,
                   file=UpstreamFile("torchvision", file_name, hash_in_name(file_name)),
                   metrics={"mIoU": miou, "pixAcc": pixacc, "eval": "single scale, short side 520"},
                   metrics_source="torchvision's weights enum (COCO_WITH_VOC_LABELS_V1)")  # the split says the rest


def hash_in_name(file_name: str) -> Optional[str]:
    """The sha256 prefix torchvision (and torch.hub) put in a file name: ``fcn_resnet50_coco-1167a1af.pth``."""
    stem = file_name.rsplit(".", 1)[0]
    prefix = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    return prefix if len(prefix) >= 8 and all(c in "0123456789abcdef" for c in prefix) else None


def conv_bn_act_keys(source: str, target: str) -> tuple[KeyRule, ...]:
    """Rules for an upstream ``Sequential(conv, bn, act)`` stored as ``source.0`` / ``source.1`` onto a segzoo
    ``ConvBnAct`` (``target.conv`` / ``target.bn``). ``source`` is a regex; ``target`` a module path."""
    return ((rf"{source}\.0", f"{target}.conv"), (rf"{source}\.1", f"{target}.bn"))


def find_upstream(owner: type, source: str, variant: str) -> Upstream:
    """The ``Upstream`` of a head or neck class with this source and variant (``LookupError`` if it has none)."""
    for form in getattr(owner, "upstreams", ()):
        if form.source == source and form.variant == variant:
            return form
    known = ", ".join(f"{f.source}/{f.variant}" for f in getattr(owner, "upstreams", ())) or "none"
    raise LookupError(f"{owner.__name__} has no upstream form {source}/{variant} (it has: {known})")
