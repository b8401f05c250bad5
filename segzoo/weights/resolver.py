"""The one place model names are parsed: a name -> its config and where its weights come from.

Kinds of names, tried in this order:

- ``local-dir:<dir>``: a directory written by ``save_pretrained``; config and weights are in it.
- ``hf-hub:<namespace>/<name>[@<revision>]``: a repo pushed with segzoo (config and weights are in it), or an
  upstream's repo (transformers' ``openmmlab/upernet-convnext-tiny``): the zoo entry of that repo when there is one
  and no other revision is asked for, else the repo, converted when it is fetched (``HubSource``).
- a zoo name (``pspnet_resnet101s_jpu.ref_voc``, ``fcn_resnet50.tv_coco_voc``) or short name
  (``ocnet_resnet101_voc``), in any spelling of the head (``psp_resnet101_voc``): the zoo entry's config, and its
  weights from the sources that have them, in this order: segzoo's Hub mirror (when the publishing manifest
  records it), then the upstream's own file (downloaded once, converted, cached).
- ``<head>_<timm backbone>[_<structure>]`` (``fcn_resnet101s``, ``fcn_convnext_tiny``, ``pspnet_resnet50_d16``,
  ``fcn_resnet101s_jpu``): a head on a backbone, random weights. The structure is ``d8`` / ``d16`` / ``d32``
  (output stride) or a neck's name; without it, the head's own output stride (BiSeNet: 32), else 8 where the
  backbone can dilate (ResNets, ConvNeXt), else 32 (Swin, ViT: the backbone as built).

Each kind of name is a type (``LocalDirName``, ``HubRepoName``, ``ZooName``, ``GenericName``) that says whether
it loads weights and what its weights started from. Nothing is downloaded here: resolving is parsing and looking
up; ``sources.fetch`` fetches.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

from ..backbones import check_backbone_name, default_output_stride, import_timm
from ..config import ModelConfig
from ..errors import UnknownModelError, did_you_mean
from ..registry import get_head, list_heads, list_necks, neck_output_stride, split_head_prefix
from ..upstreams import get_upstream
from ..zoo import PretrainedEntry, get_pretrained, is_pretrained_name, list_pretrained, zoo_names
from .hub import parse_hub_name
from .sources import HubSource, LocalDirSource, UpstreamSource, WeightsSource

__all__ = ["ResolvedModel", "LocalDirName", "HubRepoName", "ZooName", "UpstreamRepoName", "GenericName",
           "resolve_model_name", "parse_model_name", "model_names", "LOCAL_DIR_PREFIX", "HF_HUB_PREFIX",
           "DEFAULT_NUM_CLASSES", "LISTED_BACKBONES"]

LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
DEFAULT_NUM_CLASSES = 21  # Pascal VOC, the reference's main benchmark
# Backbones listed by list_models(); any timm model with features_only support works as well.
LISTED_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet50s", "resnet101s", "resnet152s")


@dataclass(frozen=True)
class ResolvedModel:
    """What a model name stands for; one subclass per kind of name.

    Attributes:
        name: The name as given.
        config: The model's config when the name alone tells it (zoo and generic names); None when the config
            lives with the weights (``local-dir:``, ``hf-hub:``: ``weights[0].read_config()``).
        weights: Where trained weights come from, in the order they are tried; empty when there are none (generic
            names, zoo entries without a file).
        entry: The zoo entry of a zoo name.
    """

    kind: ClassVar[str] = ""  # for display ("zoo", "generic", ...); code asks the type
    name: str
    config: Optional[ModelConfig] = None
    weights: tuple[WeightsSource, ...] = ()
    entry: Optional[PretrainedEntry] = None

    def loads_weights(self, pretrained: bool) -> bool:
        """Whether ``create_model(name, pretrained=pretrained)`` loads trained weights for this name."""
        return True

    def missing_weights(self) -> str:
        """Why there are no weights to fetch, for a name without sources."""
        return f"{self.name!r} has no weights"

    def weights_base_model(self) -> Optional[str]:
        """The Hub id of the loaded weights (model cards' ``base_model``), when the name says it."""
        return None


@dataclass(frozen=True)
class LocalDirName(ResolvedModel):
    """``local-dir:<dir>``: config and weights in a directory written by ``save_pretrained``."""

    kind: ClassVar[str] = "local-dir"


@dataclass(frozen=True)
class HubRepoName(ResolvedModel):
    """``hf-hub:<namespace>/<name>[@<revision>]``: config and weights in a Hub repo pushed with segzoo."""

    kind: ClassVar[str] = "hf-hub"

    def weights_base_model(self) -> Optional[str]:
        return self.weights[0].repo_id


@dataclass(frozen=True)
class ZooName(ResolvedModel):
    """A zoo name or short name: the entry's config; its weights only with ``pretrained=True``."""

    kind: ClassVar[str] = "zoo"

    def loads_weights(self, pretrained: bool) -> bool:
        return pretrained

    def missing_weights(self) -> str:
        return (f"{self.entry.name!r} has no trained weights anywhere: {self.entry.source or 'its upstream'} reports "
                f"its results but no checkpoint was published. Use pretrained=False for the architecture.")

    def weights_base_model(self) -> Optional[str]:
        """segzoo's Hub mirror, or, unmirrored, the ImageNet backbone the upstream started from."""
        return self.entry.hf_hub_id if self.entry.published else self.entry.base_model


@dataclass(frozen=True)
class GenericName(ResolvedModel):
    """``<head>_<timm backbone>[_<structure>]``: a head on a backbone, random weights."""

    kind: ClassVar[str] = "generic"

    def loads_weights(self, pretrained: bool) -> bool:
        if pretrained:
            raise UnknownModelError(f"{self.name!r} has no published weights: pretrained=True needs a zoo name "
                                    f"(list_pretrained()).{did_you_mean(self.name, zoo_names())} "
                                    f"Use pretrained_backbone=True for ImageNet backbone weights.")
        return False


@dataclass(frozen=True)
class UpstreamRepoName(ZooName):
    """``hf-hub:<repo>`` of an upstream's repo that is a zoo entry (transformers' ``openmmlab/upernet-swin-tiny``):
    the entry, whose weights ``hf-hub:`` names always load."""

    kind: ClassVar[str] = "hf-hub"

    def loads_weights(self, pretrained: bool) -> bool:
        return True


def _entry_of_hub_repo(repo_id: str) -> Optional[PretrainedEntry]:
    """The zoo entry whose upstream file is in Hub repo ``repo_id``, if any."""
    for name in list_pretrained():
        entry = get_pretrained(name)
        if entry.file is not None and get_upstream(entry.upstream).hub_repo(entry.file) == repo_id:
            return entry
    return None


def _head_names() -> list[str]:
    return [info.name for info in list_heads()]


def model_names() -> list[str]:
    """Zoo names and ``<head>_<backbone>`` names for every head on ``LISTED_BACKBONES``, sorted."""
    generic = [f"{head}_{backbone}" for head in _head_names() for backbone in LISTED_BACKBONES]
    return sorted(set(list_pretrained() + generic))


def parse_model_name(name: str) -> tuple[str, str]:
    """Split ``<head>_<timm backbone>`` into (head, backbone), with the head's registered name.

    The longest head spelling (registered name or alias) that prefixes ``name`` wins, so heads may contain
    underscores. Heads whose plug-in failed to load still parse, so that using one raises the plug-in's error
    instead of "unknown model".
    """
    split = split_head_prefix(name)
    if split is None:
        heads = sorted(info.name for info in list_heads(include_failed=True))
        raise UnknownModelError(f"Unknown model {name!r}: names are a zoo name (list_pretrained()) or "
                                f"'<head>_<timm backbone>' with a head among "
                                f"{', '.join(heads) or '(none registered)'}."
                                f"{did_you_mean(name, model_names() + zoo_names())}")
    return split


def _check_backbone(model_name: str, backbone: str) -> None:
    """An unknown backbone may be a typo of a zoo name (``fcn_resnet101_vco``): suggest those too."""
    try:
        check_backbone_name(backbone, context=f"in model name {model_name!r}")
    except UnknownModelError as err:
        close_zoo = did_you_mean(model_name, zoo_names())
        if not close_zoo:
            raise
        raise UnknownModelError(f"Unknown model {model_name!r}: not a zoo name.{close_zoo} {err}") from None


def _zoo_sources(entry: PretrainedEntry) -> tuple[WeightsSource, ...]:
    """segzoo's Hub mirror first (safetensors, pinned, hash-checked), then the upstream's own file."""
    mirror = (HubSource(entry.hf_hub_id, entry.revision, entry.sha256),) if entry.published else ()
    return mirror + ((UpstreamSource(entry),) if entry.file is not None else ())


def _structure(head: str, backbone: str) -> tuple[str, dict]:
    """Split a structure suffix off ``backbone`` (``resnet50_d16`` -> ``resnet50``, output stride 16;
    ``resnet101s_jpu`` -> the JPU neck at the neck's output stride) when what remains is a timm model; the
    default structure is the head's own output stride, else 8 where the backbone can dilate, else 32 (Swin, ViT)."""
    timm = import_timm()
    stem, _, suffix = backbone.rpartition("_")
    if stem and not timm.is_model(backbone.split(".")[0]) and timm.is_model(stem.split(".")[0]):
        if suffix in ("d8", "d16", "d32"):
            return stem, {"output_stride": int(suffix[1:])}
        if suffix in {info.name for info in list_necks()}:
            return stem, {"neck": suffix, "output_stride": neck_output_stride(suffix) or 8}
    return backbone, {"output_stride": getattr(get_head(head), "output_stride", None)
                      or default_output_stride(backbone)}


def resolve_model_name(name: str) -> ResolvedModel:
    """Resolve any model name (see the module docstring); ``UnknownModelError`` with suggestions otherwise."""
    if name.startswith(LOCAL_DIR_PREFIX):
        return LocalDirName(name, weights=(LocalDirSource(Path(name[len(LOCAL_DIR_PREFIX):])),))
    if name.startswith(HF_HUB_PREFIX):
        repo_id, revision = parse_hub_name(name[len(HF_HUB_PREFIX):])
        entry = _entry_of_hub_repo(repo_id) if revision is None else None
        if entry is not None:
            return UpstreamRepoName(name, config=entry.config, weights=_zoo_sources(entry), entry=entry)
        return HubRepoName(name, weights=(HubSource(repo_id, revision),))
    if is_pretrained_name(name):
        entry = get_pretrained(name)
        return ZooName(name, config=entry.config, weights=_zoo_sources(entry), entry=entry)
    head, backbone = parse_model_name(name)
    backbone, structure = _structure(head, backbone)
    _check_backbone(name, backbone)
    return GenericName(name, config=ModelConfig(head=head, backbone=backbone, num_classes=DEFAULT_NUM_CLASSES,
                                                **structure))
