"""``create_model`` and ``list_models``: names -> configs -> models."""
from __future__ import annotations

import fnmatch
import os
from typing import Optional

from .backbones.timm_backbone import check_backbone_name
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_pretrained, load_weights, read_weights
from .config import ModelConfig
from .errors import CheckpointError, UnknownModelError, WeightsUnavailableError, did_you_mean
from .hub import download_model_files, parse_hub_name
from .model import SegmentationModel
from .pretrained import get_pretrained, is_pretrained_name, list_pretrained
from .registry import list_heads

__all__ = ["create_model", "list_models", "list_pretrained", "parse_model_name", "DEFAULT_NUM_CLASSES", "LISTED_BACKBONES"]

LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
DEFAULT_NUM_CLASSES = 21  # Pascal VOC, the reference's main benchmark
# Backbones listed by list_models(); any timm model with features_only support works as well.
LISTED_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet50s", "resnet101s", "resnet152s")
# Spellings of the reference and of the papers, resolved to registered head names.
HEAD_ALIASES = {"psp": "pspnet", "deeplab": "deeplabv3"}


def _head_names(include_failed: bool = False) -> list[str]:
    return [info.name for info in list_heads(include_failed=include_failed)]


def parse_model_name(name: str) -> tuple[str, str]:
    """Split ``<head>_<timm backbone>`` into (head, backbone), resolving head aliases.

    The longest registered head name (or alias) that prefixes ``name`` wins, so heads may contain
    underscores. Heads whose plug-in failed to load still parse, so that using one raises the
    plug-in's error instead of "unknown model".
    """
    heads = set(_head_names(include_failed=True))
    spellings = sorted(heads | {alias for alias, head in HEAD_ALIASES.items() if head in heads},
                       key=len, reverse=True)
    for spelling in spellings:
        if name.startswith(spelling + "_") and len(name) > len(spelling) + 1:
            return HEAD_ALIASES.get(spelling, spelling), name[len(spelling) + 1:]
    raise UnknownModelError(f"Unknown model {name!r}: names are a zoo name (list_pretrained()) or "
                            f"'<head>_<timm backbone>' with a head among "
                            f"{', '.join(sorted(heads)) or '(none registered)'}.{did_you_mean(name, list_models())}")


def list_models(pattern: Optional[str] = None, pretrained: bool = False) -> list[str]:
    """Model names, optionally filtered by an fnmatch ``pattern`` (``"fcn_*"``, ``"*_voc"``).

    Args:
        pattern: fnmatch pattern.
        pretrained: Only the zoo names (which have published weights or will).

    Generic names are each head on each of ``LISTED_BACKBONES``; any other timm feature model can be
    used too (``fcn_convnext_tiny``).
    """
    names = list_pretrained()
    if not pretrained:
        names += [f"{head}_{backbone}" for head in _head_names() for backbone in LISTED_BACKBONES]
    names = sorted(set(names))
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def _apply_overrides(config: ModelConfig, **overrides) -> ModelConfig:
    changes = {key: value for key, value in overrides.items() if value is not None}
    if changes.get("num_classes", config.num_classes) != config.num_classes:
        changes["class_names"] = None  # the old names describe the old classes
    return config.replace(**changes) if changes else config


def _checkpoint_files(path: str) -> tuple[Optional[ModelConfig], dict]:
    """A checkpoint path is a directory from save_pretrained or a .safetensors file (config optional)."""
    if os.path.isdir(path):
        return load_pretrained(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path} (expected a directory with {CONFIG_NAME} and "
                              f"{WEIGHTS_NAME}, or a .safetensors file)")
    return None, read_weights(path)


def _check_backbone(model_name: str, backbone: str) -> None:
    """An unknown backbone may be a typo of a zoo name (``fcn_resnet101_vco``): suggest those too."""
    try:
        check_backbone_name(backbone, context=f"in model name {model_name!r}")
    except UnknownModelError as err:
        close_zoo = did_you_mean(model_name, list_pretrained())
        if not close_zoo:
            raise
        raise UnknownModelError(f"Unknown model {model_name!r}: not a zoo name.{close_zoo} {err}") from None


def _check_head_installed(config: ModelConfig) -> None:
    """A pulled model whose head comes from a plug-in that is not installed: say which package to install."""
    if config.head in _head_names(include_failed=True):
        return
    distribution = config.provenance.get("head_distribution")
    if distribution and distribution != "segzoo":
        version = config.provenance.get("head_version")
        pin = f"=={version}" if version else ""
        raise UnknownModelError(f"This model's head {config.head!r} comes from the plug-in package "
                                f"{distribution} {version or ''}, which is not installed: pip install "
                                f"'{distribution}{pin}'")


def _load_files(model_name: str, pretrained: bool, hub: dict) -> tuple[Optional[ModelConfig], Optional[dict]]:
    """Config and weights named by a ``local-dir:`` / ``hf-hub:`` name or a published zoo name."""
    if model_name.startswith(LOCAL_DIR_PREFIX):
        return load_pretrained(model_name[len(LOCAL_DIR_PREFIX):])
    if model_name.startswith(HF_HUB_PREFIX):
        repo_id, revision = parse_hub_name(model_name[len(HF_HUB_PREFIX):])
        return load_pretrained(download_model_files(repo_id, hub.pop("revision") or revision, **hub))
    if is_pretrained_name(model_name) and pretrained:
        entry = get_pretrained(model_name)
        if not entry.published:
            raise WeightsUnavailableError(
                f"Weights of {entry.name!r} are not published yet (Hub repo {entry.hf_hub_id}). Use "
                f"pretrained=False for the architecture, or convert a reference checkpoint with "
                f"`segzoo convert` and load it with checkpoint_path=.")
        revision = hub.pop("revision") or entry.revision
        directory = download_model_files(entry.hf_hub_id, revision, expected_sha256=entry.sha256, **hub)
        return load_pretrained(directory)
    return None, None


def create_model(
    model_name: str,
    pretrained: bool = False,
    pretrained_backbone: bool = False,
    num_classes: Optional[int] = None,
    aux: Optional[bool] = None,
    output_stride: Optional[int] = None,
    neck: Optional[str] = None,
    checkpoint_path: Optional[str] = None,
    *,
    cache_dir: Optional[str] = None,
    token: Optional[str] = None,
    revision: Optional[str] = None,
    endpoint: Optional[str] = None,
    local_files_only: bool = False,
    **head_kwargs,
) -> SegmentationModel:
    """Create a segmentation model.

    Args:
        model_name: A zoo name (``ocnet_resnet101_voc``, see ``list_pretrained()``), a generic
            ``<head>_<timm backbone>`` (``fcn_resnet101s``, ``fcn_convnext_tiny``), ``hf-hub:org/name[@rev]``
            for any repo pushed with segzoo, or ``local-dir:<dir>`` for a directory written by
            ``save_pretrained``.
        pretrained: Load the published weights of a zoo name (from its Hub repo, at its pinned revision).
        pretrained_backbone: Load timm's ImageNet weights into the backbone (GluonCV tags for ResNet
            v1b/v1s). Never applied when full weights are loaded (``hf-hub:``, ``local-dir:``,
            ``pretrained=True``, ``checkpoint_path``).
        num_classes: Number of classes (default 21). With loaded weights of another number of classes,
            the classifier layers are re-initialised with a warning.
        aux: Build the auxiliary FCN head on c3 (training only).
        output_stride: 8, 16 or 32. Default 8 (dilated), or 32 with the JPU neck.
        neck: ``"jpu"`` for Joint Pyramid Upsampling, or None.
        checkpoint_path: A ``save_pretrained`` directory or a ``.safetensors`` file to load after building.
        cache_dir: Hub cache directory (default ``HF_HUB_CACHE``).
        token: Hub token for private repos.
        revision: Hub branch, tag or commit (overrides ``@rev`` and the zoo's pinned revision).
        endpoint: Hub URL (default ``HF_ENDPOINT``, read at call time).
        local_files_only: Use the Hub cache only (as ``HF_HUB_OFFLINE=1`` does).
        **head_kwargs: Head arguments (e.g. ``dropout``); ``None`` values are ignored, as in timm.

    Returns:
        A ``SegmentationModel`` in eval mode.
    """
    head_kwargs = {key: value for key, value in head_kwargs.items() if value is not None}
    overrides = dict(num_classes=num_classes, aux=aux, output_stride=output_stride, neck=neck)
    hub = dict(cache_dir=cache_dir, token=token, revision=revision, endpoint=endpoint,
               local_files_only=local_files_only)
    config, state = _load_files(model_name, pretrained, hub)
    if state is not None:
        pretrained_backbone = False  # the checkpoint holds the whole model, backbone included
        _check_head_installed(config)
    elif is_pretrained_name(model_name):
        config = get_pretrained(model_name).config
    else:
        if pretrained:
            raise UnknownModelError(f"{model_name!r} has no published weights: pretrained=True needs a zoo name "
                                    f"(list_pretrained()).{did_you_mean(model_name, list_pretrained())} "
                                    f"Use pretrained_backbone=True for ImageNet backbone weights.")
        head, backbone = parse_model_name(model_name)
        _check_backbone(model_name, backbone)
        if output_stride is None:
            overrides["output_stride"] = 32 if neck == "jpu" else 8
        config = ModelConfig(head=head, backbone=backbone, num_classes=DEFAULT_NUM_CLASSES)
    if head_kwargs:
        config = config.replace(head_kwargs={**config.head_kwargs, **head_kwargs})
    config = _apply_overrides(config, **overrides)

    if checkpoint_path is not None:
        _, state = _checkpoint_files(os.fspath(checkpoint_path))
        pretrained_backbone = False
    model = SegmentationModel(config, pretrained_backbone=pretrained_backbone)
    if state is not None:
        load_weights(model, state, source=checkpoint_path or model_name)
    return model.eval()
