"""``create_model`` and ``list_models``: a name -> (``weights.resolver``) its config and weights -> a model.

The walk of a name is one way down: resolve the name (no download), fetch the weights from its sources if it
has any and they are wanted, apply the caller's overrides to the config, build the model (once), load the weights.
"""
from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import Any, Optional

from .backbones import pretrained_tag
from .config import ModelConfig, default_mean_std
from .errors import CheckpointError, ConfigError
from .model import SegmentationModel
from .registry import neck_output_stride
from .weights.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_pretrained, load_weights, read_weights
from .weights.resolver import (
    DEFAULT_NUM_CLASSES,
    LISTED_BACKBONES,
    GenericName,
    ResolvedModel,
    model_names,
    resolve_model_name,
)
from .weights.sources import HubOptions, fetch
from .zoo import list_pretrained

__all__ = ["create_model", "list_models", "DEFAULT_NUM_CLASSES", "LISTED_BACKBONES"]

ZOO_FILTERS = ("head", "backbone", "dataset", "source", "license")  # list_models(pretrained=True, <filter>=pattern)


def list_models(pattern: Optional[str] = None, pretrained: bool = False, **filters: Optional[str]) -> list[str]:
    """Model names, optionally filtered by an fnmatch ``pattern`` (``"fcn_*"``, ``"*_voc"``).

    Args:
        pattern: fnmatch pattern.
        pretrained: Only the zoo names (which have published weights or will).
        **filters: With ``pretrained``: ``head``, ``backbone``, ``dataset``, ``source``, ``license`` patterns (see
            ``segzoo.zoo.list_pretrained``).

    Generic names are each head on each of ``LISTED_BACKBONES``; any other timm feature model can be
    used too (``fcn_convnext_tiny``).
    """
    if pattern is not None and not isinstance(pattern, str):
        raise ConfigError(f"list_models: pattern must be an fnmatch pattern string (e.g. 'fcn_*'), got {pattern!r}")
    unknown = sorted(set(filters) - set(ZOO_FILTERS))
    if unknown:
        raise TypeError(f"list_models: unknown filter(s) {', '.join(unknown)}; the filters are "
                        f"{', '.join(ZOO_FILTERS)}")
    if filters and not pretrained:
        raise TypeError(f"list_models: {', '.join(sorted(filters))} filter(s) the zoo; pass pretrained=True")
    names = list_pretrained(**filters) if pretrained else model_names()
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def _as_tuple(values: Any) -> Any:
    return tuple(values) if isinstance(values, (list, tuple)) else values


def _apply_overrides(config: ModelConfig, **overrides) -> ModelConfig:
    changes = {key: value for key, value in overrides.items() if value is not None}
    if changes.get("num_classes", config.num_classes) != config.num_classes \
            or changes.get("mode", config.mode) != config.mode:
        changes["class_names"] = None  # the old names describe the old classes
        changes["palette"] = None
    if changes.get("neck", config.neck) != config.neck:
        changes.setdefault("neck_kwargs", {})  # the old neck's arguments are not the new one's
    if changes.get("in_chans", config.in_chans) != config.in_chans:
        # the old normalisation has another number of bands: the new one's default unless given
        defaults = default_mean_std(changes["in_chans"]) if _is_band_count(changes["in_chans"]) else (None, None)
        changes.setdefault("mean", defaults[0])
        changes.setdefault("std", defaults[1])
    return config.replace(**changes) if changes else config


def _is_band_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_arguments(model_name: Any, *, checkpoint_path: Any, cache_dir: Any, **arguments: Any) -> None:
    """``ConfigError`` naming the first argument of ``create_model`` whose type is wrong (the config checks the
    values of the model's own fields: num_classes, aux, output_stride, neck)."""
    if not isinstance(model_name, str):
        raise ConfigError(f"model_name must be a string: a zoo name (list_pretrained()), '<head>_<timm backbone>', "
                          f"'hf-hub:org/name[@rev]' or 'local-dir:DIR'; got {model_name!r}")
    for name, value in arguments.items():
        if name in ("pretrained", "pretrained_backbone", "local_files_only"):
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
        elif value is not None and not isinstance(value, str):
            raise ConfigError(f"{name} must be a string or None, got {value!r}")
    for name, value in (("checkpoint_path", checkpoint_path), ("cache_dir", cache_dir)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{name} must be a path (str or os.PathLike) or None, got {value!r}")


def _checkpoint_files(path: str) -> dict:
    """A checkpoint path is a directory from save_pretrained or a .safetensors file (config optional)."""
    if os.path.isdir(path):
        return load_pretrained(path)[1]
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path} (expected a directory with {CONFIG_NAME} and "
                              f"{WEIGHTS_NAME}, or a .safetensors file)")
    return read_weights(path)


def _base_model(resolved: ResolvedModel, named_weights: bool, pretrained_backbone: bool,
                config: ModelConfig) -> Optional[str]:
    """The Hub id of the weights the model starts from, for its model card: what the name's loaded weights say
    (the repo it was pulled from, a zoo entry's mirror or upstream base), or timm's ImageNet weights; None for
    random initialisation."""
    from_name = resolved.weights_base_model() if named_weights else None
    if from_name:
        return from_name
    if pretrained_backbone:
        return f"timm/{pretrained_tag(config.backbone)}"
    return config.provenance.get("base_model")


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
    mode: Optional[str] = None,
    threshold: Optional[float] = None,
    in_chans: Optional[int] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    backbone_kwargs: Optional[dict[str, Any]] = None,
    neck_kwargs: Optional[dict[str, Any]] = None,
    **head_kwargs: Any,
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
            the classifier layers are re-initialised with a warning. Without it, weights whose classifiers do not
            fit the config (a ``config.json`` that disagrees with its ``model.safetensors``) are an error.
        aux: Build the auxiliary FCN head on c3 (training only).
        output_stride: 8, 16 or 32. Default 8 (dilated), or what the neck reads (32 with JPU), or what the
            head is designed for.
        neck: A registered neck (``"jpu"`` for Joint Pyramid Upsampling), or None.
        checkpoint_path: A ``save_pretrained`` directory or a ``.safetensors`` file to load after building.
        cache_dir: Hub cache directory (default ``HF_HUB_CACHE``).
        token: Hub token for private repos.
        revision: Hub branch, tag or commit (overrides ``@rev`` and the zoo's pinned revision).
        endpoint: Hub URL (default ``HF_ENDPOINT``, read at call time).
        local_files_only: Use the Hub cache only (as ``HF_HUB_OFFLINE=1`` does).
        mode: ``"multiclass"`` (default), ``"binary"`` (with ``num_classes=1``: one sigmoid channel) or
            ``"multilabel"`` (``num_classes`` independent sigmoid channels); see ``ModelConfig``.
        threshold: Probability above which a binary / multilabel pixel is foreground (default 0.5).
        in_chans: Input channels (default 3, RGB): 1 for greyscale, N for multispectral. timm adapts a
            pretrained backbone's stem to it; loaded segzoo weights of another ``in_chans`` are adapted the same way.
        mean: The input normalisation's mean, ``in_chans`` values (default: ImageNet's, per
            ``segzoo.config.default_mean_std``).
        std: The input normalisation's standard deviation, ``in_chans`` values.
        backbone_kwargs: More arguments of ``timm.create_model`` for the backbone (``{"drop_path_rate": 0.3}``),
            over the config's.
        neck_kwargs: Arguments of the neck (``{"out_channels": 256}`` for the multi-level neck), over the config's.
        **head_kwargs: Head arguments (e.g. ``dropout``); ``None`` values are ignored, as in timm.

    Returns:
        A ``SegmentationModel`` in eval mode.
    """
    _check_arguments(model_name, pretrained=pretrained, pretrained_backbone=pretrained_backbone,
                     local_files_only=local_files_only, checkpoint_path=checkpoint_path, neck=neck, cache_dir=cache_dir,
                     token=token, revision=revision, endpoint=endpoint)
    head_kwargs = {key: value for key, value in head_kwargs.items() if value is not None}
    overrides = dict(num_classes=num_classes, aux=aux, output_stride=output_stride, neck=neck, mode=mode,
                     threshold=threshold, in_chans=in_chans, mean=_as_tuple(mean), std=_as_tuple(std))
    options = HubOptions(cache_dir=cache_dir, token=token, revision=revision, endpoint=endpoint,
                         local_files_only=local_files_only)
    resolved = resolve_model_name(model_name)
    state = None
    if resolved.loads_weights(pretrained):
        _, config, state = fetch(resolved.weights, options, resolved.name, resolved.missing_weights())
        pretrained_backbone = False  # the checkpoint holds the whole model, backbone included
    else:
        config = resolved.config
    if isinstance(resolved, GenericName) and neck is not None and output_stride is None:
        # a neck on a generic name reads the backbone at its own output stride
        overrides["output_stride"] = neck_output_stride(neck) or config.output_stride
    if head_kwargs:
        config = config.replace(head_kwargs={**config.head_kwargs, **head_kwargs})
    for name, given in (("backbone_kwargs", backbone_kwargs), ("neck_kwargs", neck_kwargs)):
        if given is not None and not isinstance(given, dict):
            raise ConfigError(f"{name} must be a dict or None, got {given!r}")
        if given:
            overrides[name] = {**(getattr(config, name) if name == "backbone_kwargs" or neck is None else {}),
                               **given}
    config = _apply_overrides(config, **overrides)

    if checkpoint_path is not None:
        state = _checkpoint_files(os.fspath(checkpoint_path))
        pretrained_backbone = False
    base_model = _base_model(resolved, state is not None and checkpoint_path is None, pretrained_backbone, config)
    if base_model:
        config = config.replace(provenance={**config.provenance, "base_model": base_model})
    model = SegmentationModel(config, pretrained_backbone=pretrained_backbone)
    if state is not None:
        # Only an explicit num_classes may re-initialise the classifiers: a saved model's own never does.
        load_weights(model, state, source=checkpoint_path or model_name, new_classes=num_classes is not None)
    return model.eval()
