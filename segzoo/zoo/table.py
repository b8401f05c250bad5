"""The zoo table: every zoo model name with its full config, Hub repo, dataset and reported accuracy.

The entries are not written here: each head declares its own (``pretrained``, see ``segzoo.upstream``), with
the head options of the upstream form it was trained in (``upstreams``); a head's ``FromCatalogue(<upstream>)``
takes the entries of that upstream's catalogue its forms build; an upstream plug-in may declare entries of its own
(``segzoo.upstreams``). This module collects them, builds each config (dataset classes and evaluation size from
``zoo.datasets``), takes licence, terms and base model from the upstream where the entry does not state them,
and applies the publishing manifest (``zoo.manifest``).

Names follow timm's ``<architecture>.<tag>`` (``pspnet_resnet101s_jpu.ref_voc``, ``fcn_resnet50.tv_coco_voc``):
the architecture part starts with the head's registered name and the tag says where the weights come from.
An entry may also have short names (the seed zoo's ``pspnet_resnet101_voc``). Any spelling the head declares is
accepted for it (``psp_resnet101_voc``).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

from ..config import ModelConfig
from ..errors import UnknownModelError, did_you_mean
from ..registry import head_spellings, list_heads, registry_fingerprint, split_head_prefix
from ..upstream import FromCatalogue, PretrainedSpec, UpstreamFile
from ..upstreams import get_upstream, head_form, list_upstreams
from .datasets import get_dataset
from .manifest import read_manifest

__all__ = ["PretrainedEntry", "HUB_ORGANISATION", "get_pretrained", "is_pretrained_name", "list_pretrained",
           "canonical_zoo_name", "find_pretrained_entry", "zoo_entries", "zoo_names"]

HUB_ORGANISATION = "segzoo"


@dataclass(frozen=True)
class PretrainedEntry:
    """One zoo model.

    Attributes:
        name: Zoo name.
        config: The model's full config.
        dataset: Its dataset key (``"voc"``, ``"citys"``, ``"ade"``; see ``segzoo.zoo.datasets``).
        hf_hub_id: Hub repository the weights are published to.
        revision: Pinned Hub commit of the published weights; None while unpublished.
        sha256: sha256 of the published ``model.safetensors`` (checked after download).
        metrics: Reported accuracy (``{"mIoU": 76.89, "split": ...}``); ``mIoU`` None where not reported.
        source: Where the metrics come from.
        upstream: The upstream that trained it (``"reference"``, ``"torchvision"``).
        variant: The upstream's name for the head's form (``"psp"``).
        file: The upstream's checkpoint file, or None where the upstream published none.
        backbone_file: The backbone's weights where the upstream publishes them apart (DINOv2's heads).
        short_names: Other names of the entry.
        license: The weights' licence (a Hub licence id).
        terms: The licence and the training data's terms, in words.
        base_model: The Hub id of the weights the upstream started from, if known.
    """

    name: str
    config: ModelConfig
    dataset: str
    hf_hub_id: str
    revision: Optional[str] = None
    sha256: Optional[str] = None
    metrics: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    upstream: str = ""
    variant: str = ""
    file: Optional[UpstreamFile] = None
    backbone_file: Optional[UpstreamFile] = None
    short_names: tuple[str, ...] = ()
    license: str = "unknown"
    terms: str = ""
    base_model: Optional[str] = None

    @property
    def published(self) -> bool:
        """Whether segzoo's Hub mirror holds the weights (the manifest records them)."""
        return self.revision is not None

    @property
    def has_weights(self) -> bool:
        """Whether trained weights exist anywhere: segzoo's mirror or the upstream's file."""
        return self.published or self.file is not None


def _entry(head: str, spec: PretrainedSpec) -> PretrainedEntry:
    upstream = get_upstream(spec.upstream)
    dataset = get_dataset(spec.dataset)
    options = head_form(head, spec.upstream, spec.variant).options
    config = ModelConfig(head=head, backbone=spec.backbone, num_classes=len(dataset.class_names), aux=spec.aux,
                         output_stride=spec.output_stride, neck=spec.neck, head_kwargs={**options, **spec.options},
                         backbone_kwargs=dict(spec.backbone_kwargs), block_dilations=dict(spec.block_dilations),
                         class_names=dataset.class_names,
                         palette=tuple(map(tuple, dataset.palette().tolist())) if spec.carry_palette else None,
                         input_size=spec.input_size or dataset.input_size, align_corners=spec.align_corners,
                         inference=dict(spec.inference), **dict(spec.config_fields))
    metrics = dict(spec.metrics)
    metrics = {"mIoU": metrics.pop("mIoU", None), "split": dataset.eval_split, **metrics}
    return PretrainedEntry(name=spec.name, config=config, dataset=spec.dataset,
                           hf_hub_id=f"{HUB_ORGANISATION}/{spec.name}", metrics=metrics, source=spec.metrics_source,
                           upstream=spec.upstream, variant=spec.variant, file=spec.file,
                           backbone_file=spec.backbone_file,
                           short_names=tuple(spec.short_names),
                           license=spec.license if spec.license is not None else upstream.license,
                           terms=spec.terms if spec.terms is not None else upstream.terms,
                           base_model=spec.base_model if spec.base_model is not None else upstream.base_model(spec))


_cache: tuple[tuple, dict[str, PretrainedEntry], dict[str, str]] = ((None,), {}, {})


def zoo_entries() -> dict[str, PretrainedEntry]:
    """Every zoo entry by name, as the heads and upstreams declare them (before the manifest), built once per
    registry state.

    An entry that cannot be built (a name that does not start with the head's name, an unknown dataset, upstream
    or upstream form) gets a warning and is left out; on a name clash the first declared wins (heads by name, then
    the upstreams' own entries).
    """
    return _table()[0]


def _table() -> tuple[dict[str, PretrainedEntry], dict[str, str]]:
    """(entries by name, every name and short name -> the entry's name), built once per set of plug-ins (kept
    across ``refresh_heads`` while the plug-ins are the same: ``registry_fingerprint``)."""
    global _cache
    fingerprint = registry_fingerprint()
    if _cache[0] == fingerprint:
        return _cache[1], _cache[2]
    entries: dict[str, PretrainedEntry] = {}
    names: dict[str, str] = {}
    for head, spec, declared_by in _declared():
        try:
            if not all(name.startswith(head + "_") for name in (spec.name, *spec.short_names)):
                raise ValueError(f"zoo names must start with the head's name ({head}_...)")
            entry = _entry(head, spec)
        except Exception as err:  # a plug-in's bad entry must not break the zoo
            warnings.warn(f"zoo entry {spec.name!r} of head {head!r} ({declared_by}) is left out: "
                          f"{type(err).__name__}: {err}", stacklevel=2)
            continue
        taken = [name for name in (entry.name, *entry.short_names) if name in names]
        if taken:
            warnings.warn(f"zoo name {taken[0]!r} is declared twice; keeping the first", stacklevel=3)
            continue
        entries[entry.name] = entry
        names.update({name: entry.name for name in (entry.name, *entry.short_names)})
    _cache = (fingerprint, entries, names)
    return entries, names


def _declared() -> list[tuple[str, PretrainedSpec, str]]:
    """(head, spec, who declares it) for every entry: the heads' own (a ``FromCatalogue`` asks its upstream for
    the catalogue's entries of that head), then those the upstream plug-ins declare."""
    declared = []
    for info in list_heads():
        for item in getattr(info.plugin_class, "pretrained", ()):
            if isinstance(item, FromCatalogue):
                try:
                    specs = get_upstream(item.upstream).catalogue(info.name, info.plugin_class)
                except Exception as err:  # an upstream that is not installed or fails must not break the zoo
                    warnings.warn(f"the {item.upstream} catalogue of head {info.name!r} is left out: "
                                  f"{type(err).__name__}: {err}", stacklevel=3)
                    continue
                declared += [(info.name, spec, info.distribution) for spec in specs]
            else:
                declared.append((info.name, item, info.distribution))
    for upstream in list_upstreams():
        for spec in upstream.entries():
            declared.append((_head_of(spec), spec, f"upstream {upstream.name}"))
    return declared


def _head_of(spec: PretrainedSpec) -> str:
    """The registered name of the head an upstream's own entry names, in any spelling (an unknown head fails in
    ``_entry``)."""
    return head_spellings().get(spec.head, spec.head)


def _published(entry: PretrainedEntry, manifest: dict[str, dict[str, Any]]) -> PretrainedEntry:
    record = next((manifest[name] for name in (entry.name, *entry.short_names) if name in manifest), None)
    if not record:
        return entry
    return dataclasses.replace(entry, hf_hub_id=record["repo_id"], revision=record["revision"],
                               sha256=record["sha256"], metrics=record.get("metrics", entry.metrics),
                               source=record.get("source", entry.source))


def canonical_zoo_name(name: str) -> str:
    """The name with its head part spelled as the registered head (``psp_resnet101_voc`` ->
    ``pspnet_resnet101_voc``); names that start with no head spelling are returned unchanged. Short names are
    not replaced by the entry's name (``get_pretrained(name).name`` does that)."""
    split = split_head_prefix(name)
    return f"{split[0]}_{split[1]}" if split else name


def is_pretrained_name(name: str) -> bool:
    """Whether ``name`` (a zoo name or short name, in any spelling of its head) names a zoo entry."""
    return canonical_zoo_name(name) in _table()[1]


def get_pretrained(name: str) -> PretrainedEntry:
    """The zoo entry of ``name`` (a zoo name or short name, any spelling of its head), with what the manifest
    says is published, or ``UnknownModelError`` with the closest names."""
    entries, names = _table()
    canonical = canonical_zoo_name(name)
    if canonical not in names:
        raise UnknownModelError(f"Unknown zoo model {name!r}.{did_you_mean(canonical, names)}")
    return _published(entries[names[canonical]], read_manifest())


def find_pretrained_entry(config: ModelConfig) -> Optional[PretrainedEntry]:
    """The zoo entry whose config this is (provenance aside), if any."""
    plain = config.replace(provenance={})
    return next((get_pretrained(name) for name, entry in zoo_entries().items() if entry.config == plain), None)


def zoo_names() -> list[str]:
    """Every zoo name and short name, sorted (what names are checked against and suggested from)."""
    return sorted(_table()[1])


def list_pretrained(pattern: Optional[str] = None, *, head: Optional[str] = None, backbone: Optional[str] = None,
                    dataset: Optional[str] = None, source: Optional[str] = None,
                    license: Union[str, Sequence[str], None] = None) -> list[str]:
    """Zoo names, optionally filtered: by an fnmatch ``pattern`` on the name (``"*_voc"``), and by fnmatch patterns
    on the entry's head (registered name, ``"pspnet"``), timm backbone (``"resnet101*"``), dataset key
    (``"mmseg_cityscapes"``, ``"*ade*"``), upstream source (``"mmseg"``, ``"torchvision"``, ``"reference"``) and
    licence (a Hub licence id: ``"apache-2.0"``, ``"bsd-*"``; or a list of patterns, any of which may match:
    ``license=sorted(segzoo.zoo.OPEN_LICENSES)`` leaves out non-commercial weights and unknown terms)."""
    filters = {"head": head, "backbone": backbone, "dataset": dataset, "source": source}
    licenses = [license] if isinstance(license, str) else license
    for key, value in {"pattern": pattern, **filters}.items():
        if value is not None and not isinstance(value, str):
            raise TypeError(f"list_pretrained's {key} is an fnmatch pattern (a string), got {type(value).__name__}")
    if licenses is not None and (not isinstance(licenses, (list, tuple, set, frozenset)) or not licenses
                                 or not all(isinstance(item, str) for item in licenses)):
        raise TypeError(f"list_pretrained's license is a pattern (a string) or a non-empty list of them, got "
                        f"{license!r}")
    chosen = []
    for name, entry in sorted(zoo_entries().items()):
        fields = {"head": entry.config.head, "backbone": entry.config.backbone, "dataset": entry.dataset,
                  "source": entry.upstream}
        if pattern and not fnmatch.fnmatch(name, pattern):
            continue
        if licenses is not None and not any(fnmatch.fnmatch(entry.license, item) for item in licenses):
            continue
        if all(value is None or fnmatch.fnmatch(fields[key], value) for key, value in filters.items()):
            chosen.append(name)
    return chosen
