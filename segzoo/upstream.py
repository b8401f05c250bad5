"""What a head or neck declares about itself besides its code: its upstream forms and its zoo entries.

Trained checkpoints of segzoo's architectures exist upstream (the reference zoo, PyTorch-Encoding, ...). Each
upstream trained a head with some options and named its parameters its own way. A head (or neck) class states
both, beside its code, as plain data:

    class PSPHead(SegmentationHead):
        aliases = ("psp",)
        upstreams = (Upstream("reference", "psp", options={"bins": (1, 2, 3, 4)}, rules=..., classifier=...),)
        pretrained = (PretrainedSpec("pspnet_resnet101_voc", upstream="reference", variant="psp", ...),)

The zoo (``segzoo.zoo``) collects ``pretrained`` from every registered head and takes the head options from the
matching ``Upstream``; the converter (``segzoo.weights``) collects ``rules``. A new head with weights is then
one file plus one entry-point line. Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

__all__ = ["Upstream", "PretrainedSpec", "KeyRule", "conv_bn_act_keys", "find_upstream"]

KeyRule = tuple[str, str]  # (checkpoint module path regex, segzoo module path); groups may be used as \1


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
    """

    source: str
    variant: str
    options: Mapping[str, Any] = field(default_factory=dict)
    rules: tuple[KeyRule, ...] = ()
    classifier: str = ""
    shared: tuple[KeyRule, ...] = ()


@dataclass(frozen=True)
class PretrainedSpec:
    """One zoo entry of a head, as data: which upstream form on which backbone and dataset, and its accuracy.

    Attributes:
        name: The zoo name (``pspnet_resnet101_voc``); it starts with the head's registered name.
        upstream: The ``Upstream.source`` that trained it.
        variant: The ``Upstream.variant`` whose options it was trained with.
        backbone: timm backbone name.
        dataset: A dataset key of ``segzoo.zoo.datasets`` (``"voc"``, ``"citys"``, ``"ade"``).
        neck: Neck name or None.
        output_stride: Backbone output stride.
        aux: Whether the upstream trained (and its checkpoints hold) the auxiliary head.
        align_corners: The upstream's bilinear upsampling mode.
        metrics: Reported accuracy (``{"mIoU": 78.48, "eval": "single scale"}``; mIoU None where not reported).
        metrics_source: Where the metrics come from.
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
    metrics: Mapping[str, Any] = field(default_factory=dict)
    metrics_source: str = ""

    @classmethod
    def reference(cls, name: str, variant: str, dataset: str, miou: Optional[float], *,
                  backbone: str = "resnet101s", dilated: bool = False, output_stride: Optional[int] = None,
                  note: str = "") -> "PretrainedSpec":
        """A model of the reference zoo: ResNet-101-v1s (timm ``resnet101s``) with the JPU neck at output
        stride 32, or ``dilated`` at output stride 8, aux head, ``align_corners=True``; the single-scale mIoU
        its README reports. ``output_stride`` sets another plain backbone (BiSeNet's 32, no neck)."""
        if output_stride is not None:
            structure = dict(neck=None, output_stride=output_stride)
        else:
            structure = dict(neck=None, output_stride=8) if dilated else dict(neck="jpu", output_stride=32)
        return cls(name=name, upstream="reference", variant=variant, backbone=backbone, dataset=dataset,
                   metrics={"mIoU": miou, "eval": "single scale"},
                   metrics_source="the reference zoo's README (single-scale mIoU)" + (f"; {note}" if note else ""),
                   **structure)


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
