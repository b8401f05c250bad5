"""timm feature extractors as segmentation backbones.

segzoo never re-implements a backbone: it asks timm for ``features_only=True`` with four feature levels (the
last four unless the config names others), named ``c1`` .. ``c4`` (strides 4, 8, 16, 32 before dilation for
hierarchical backbones; the patch stride at every level for ViT-style ones). The module returned is timm's own,
so its state-dict keys are timm's keys and timm checkpoints load unchanged. What a family needs to take any input
size is in ``families``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Optional

from torch import nn

from ..errors import ConfigError, UnknownModelError, WeightsUnavailableError, did_you_mean
from ..network import failing_fast_offline, no_network_cause
from .families import family_of
from .mit import import_timm

__all__ = ["FEATURE_NAMES", "BackboneInfo", "create_backbone", "pretrained_tag", "VALID_OUTPUT_STRIDES",
           "check_backbone_name", "stem_conv_names", "default_output_stride"]

FEATURE_NAMES = ("c1", "c2", "c3", "c4")
VALID_OUTPUT_STRIDES = (8, 16, 32)

# The reference trained on GluonCV ImageNet weights. For ResNet-v1b the bare timm name resolves to
# another tag (a1_in1k), so the GluonCV tag is named explicitly.
_GLUON_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                    "resnet50s", "resnet101s", "resnet152s")


@dataclass(frozen=True)
class BackboneInfo:
    """What the rest of the model needs to know about a backbone's features."""

    channels: dict[str, int]
    reductions: dict[str, int]
    nhwc: bool = False  # the maps come channels-last as (N, H, W, C) tensors (Swin): the model permutes them
    pad_multiple: int = 1  # the input is padded at the bottom and right to a multiple of this first (Swin)
    fixed_size: Optional[tuple[int, int]] = None  # the only input size it takes (BEiT: its position bias's grid)
    patch_size: int = 1  # the patch of a backbone that embeds patches (ViT-style, Swin), else 1


def pretrained_tag(name: str) -> str:
    """The timm ``name.tag`` whose ImageNet weights ``pretrained_backbone=True`` loads."""
    if "." in name:
        return name
    return f"{name}.gluon_in1k" if name in _GLUON_BACKBONES else name


def check_backbone_name(name: str, context: str = "") -> None:
    """Raise ``UnknownModelError`` with the closest timm names when timm has no model ``name`` (``arch`` or
    ``arch.tag``: an unknown tag is timm's ``RuntimeError: Invalid pretrained tag`` otherwise)."""
    timm = import_timm()  # imported on first use: it takes about a second, and `import segzoo` should not pay it
    from timm.models import get_arch_pretrained_cfgs

    where = f" {context}" if context else ""
    arch, dot, tag = name.partition(".")
    if dot and not tag:  # "resnet50." would quietly be resnet50 with timm's default weights
        raise UnknownModelError(f"Backbone {name!r}{where} ends in '.' with no pretrained tag: name the tag "
                                f"({arch}.<tag>) or leave out the '.'")
    if timm.is_model(arch):
        tagged = list(get_arch_pretrained_cfgs(arch))
        if not tag or name in tagged:
            return
        close = did_you_mean(name, tagged)  # else all of them: a model has a handful of tags
        raise UnknownModelError(f"Unknown pretrained tag {tag!r} of timm model {arch!r}{where}." + (
            close or f" Its tags: {', '.join(t.partition('.')[2] for t in tagged) or '(none)'}."))
    raise UnknownModelError(f"Unknown backbone {name!r}{where}: timm has no such model."
                            f"{did_you_mean(name, timm.list_models())}")


# timm families known to take output_stride 8 (no need to ask timm); others are asked
_DILATABLE_MODULES = ("timm.models.resnet", "timm.models.convnext", "timm.models.efficientnet",
                      "timm.models.regnet", "timm.models.resnest", "timm.models.res2net")


@lru_cache(maxsize=256)
def default_output_stride(name: str) -> int:
    """8 (dilated, as the CNN-era heads are trained) for a backbone that can dilate, else 32 (the backbone as
    built: Swin, ViT, MaxViT, ... take no ``output_stride``). Known families are looked up; others are asked of
    timm on the meta device: nothing is allocated or downloaded."""
    import torch
    from timm.models._registry import model_entrypoint

    timm = import_timm()

    arch = name.partition(".")[0]
    if not timm.is_model(arch):  # an unknown name is reported by check_backbone_name, with suggestions
        return 8
    if model_entrypoint(arch).__module__ in _DILATABLE_MODULES:
        return 8

    with torch.device("meta"):
        try:
            timm.create_model(arch, output_stride=8)
        except Exception:  # noqa: BLE001 - TypeError mostly; any refusal means "not dilatable"
            return 32
    return 8


def create_backbone(name: str, output_stride: int = 32, pretrained: bool = False,
                    timm_kwargs: Optional[Mapping[str, Any]] = None,
                    in_chans: int = 3,
                    feature_indices: Optional[tuple[int, ...]] = None) -> tuple[nn.Module, BackboneInfo]:
    """Build a timm feature extractor giving four feature levels.

    Args:
        name: A timm model name (optionally ``name.tag``) that supports ``features_only``.
        output_stride: 8 or 16 dilate the last stages (the reference "dilated" backbones); 32 is plain.
        pretrained: Load timm's ImageNet weights (the GluonCV tag for ResNet-v1b/v1s, see ``pretrained_tag``).
        timm_kwargs: More arguments of ``timm.create_model`` (``stem_type``, ``drop_path_rate``, ...).
        in_chans: Input channels, passed to timm (``in_chans``): with ``pretrained``, timm adapts the RGB stem
            weights itself (``timm.models.adapt_input_conv``: one channel gets the sum of the RGB filters, N
            channels the RGB filters repeated cyclically, scaled by 3 / N).

    Returns:
        The timm module (forward returns a list of 4 tensors) and its ``BackboneInfo``.
    """
    if output_stride not in VALID_OUTPUT_STRIDES:
        raise ConfigError(f"output_stride must be one of {VALID_OUTPUT_STRIDES}, got {output_stride!r}")
    check_backbone_name(name)
    timm = import_timm()

    reserved = sorted({"features_only", "out_indices", "pretrained", "output_stride", "in_chans"}
                      & set(timm_kwargs or {}))
    if reserved:
        raise ConfigError(f"backbone_kwargs may not set {', '.join(reserved)}: segzoo sets them from the config")
    family = family_of(name.partition(".")[0])
    indices = tuple(feature_indices) if feature_indices is not None else (-4, -3, -2, -1)
    if len(indices) != len(FEATURE_NAMES):
        raise ConfigError(f"feature_indices must name {len(FEATURE_NAMES)} levels of the backbone, got {indices!r}")
    kwargs = dict(family.timm_kwargs, **(timm_kwargs or {}), features_only=True, out_indices=indices,
                  pretrained=pretrained)
    if output_stride != 32:  # many timm models do not take the argument at all; 32 is their default
        kwargs["output_stride"] = output_stride
    if in_chans != 3:  # timm's default; left out so that an RGB backbone is built exactly as before
        kwargs["in_chans"] = in_chans
    model_name = pretrained_tag(name) if pretrained else name
    try:
        with failing_fast_offline():
            model = timm.create_model(model_name, **kwargs)
    except OSError as err:  # download or cache miss (huggingface_hub errors are OSErrors)
        if no_network_cause(err) is not None:
            raise WeightsUnavailableError(
                f"Could not load ImageNet weights for backbone {name!r}: no network to download timm's "
                f"{model_name!r} from the Hugging Face Hub ({no_network_cause(err)}). Run once where there is a "
                f"network and copy the Hugging Face cache (HF_HUB_CACHE) here, or build without "
                f"pretrained_backbone (--pretrained-backbone)") from err
        raise WeightsUnavailableError(
            f"Could not load ImageNet weights for backbone {name!r} (timm {model_name!r}): "
            f"{type(err).__name__}: {err}") from err
    except TypeError as err:
        if "unexpected keyword" in str(err) and timm_kwargs:
            raise ConfigError(f"Backbone {name!r} does not accept backbone_kwargs {dict(timm_kwargs)!r}: "
                              f"{err}") from err
        if "output_stride" in str(err):
            raise ConfigError(f"Backbone {name!r} does not support output_stride={output_stride}; use 32") from err
        if "in_chans" in str(err):
            raise ConfigError(f"Backbone {name!r} does not support in_chans={in_chans}: {err}") from err
        raise
    except RuntimeError as err:
        if pretrained and "No pretrained weights" in str(err):  # timm's refusal (segzoo's MiT models have none)
            raise WeightsUnavailableError(f"timm has no ImageNet weights for backbone {name!r}: build it without "
                                          f"pretrained_backbone, or load a trained checkpoint of it") from err
        if "features_only" in str(err) or "feature" in str(err).lower():
            raise ConfigError(f"Backbone {name!r} cannot be used as a feature extractor: {err}") from err
        raise
    except (IndexError, AssertionError) as err:  # out_indices beyond the model's levels or blocks
        if feature_indices is None:
            raise
        raise ConfigError(f"Backbone {name!r} has no feature levels {indices!r} (feature_indices): "
                          f"{type(err).__name__}: {err}") from err
    info = model.feature_info
    if len(info.channels()) < len(FEATURE_NAMES):
        raise ConfigError(f"Backbone {name!r} gives {len(info.channels())} feature levels; segzoo needs 4")
    if family.after_build is not None:
        family.after_build(model)
    patch_embed = getattr(model, "patch_embed", None) or getattr(getattr(model, "model", None), "patch_embed", None)
    patch = getattr(patch_embed, "patch_size", None)
    fixed = tuple(patch_embed.img_size) if getattr(patch_embed, "strict_img_size", False) else None
    return model, BackboneInfo(
        channels=dict(zip(FEATURE_NAMES, info.channels())),
        reductions=dict(zip(FEATURE_NAMES, info.reduction())),
        nhwc=str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC"),
        pad_multiple=int(patch[0]) if family.pads_to_patch and patch else 1,
        fixed_size=fixed,
        patch_size=int(patch[0]) if patch else 1,
    )


def stem_conv_names(backbone: nn.Module) -> list[str]:
    """Module names (in ``backbone``) of the convolutions that read the image: the stem convolution(s) timm
    declares (``first_conv`` of the model, what timm adapts to another ``in_chans``), located in the feature
    extractor, whose module names may differ from the classifier's (``stem.0`` becomes ``stem_0``); a declared
    module that is not a convolution (a deep stem's ``conv1``: 3x3, 3x3, 3x3) stands for the first convolution in
    it (``conv1.0``). Without a declaration, the first ``Conv2d`` of the backbone."""
    modules = dict(backbone.named_modules())
    traits = getattr(backbone, "_traits", None) or {}  # timm >= 1.0.2x: the built model's own stem
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    declared = traits.get("first_conv") or cfg.get("first_conv") or ()
    found = []
    for name in (declared,) if isinstance(declared, str) else declared:
        for candidate in (name, name.replace(".", "_", 1)):  # FeatureListNet flattens one level: stem.0 -> stem_0
            module = modules.get(candidate)
            if module is None:
                continue
            if not isinstance(module, nn.Conv2d):
                inner = next(((sub, m) for sub, m in module.named_modules() if isinstance(m, nn.Conv2d)), None)
                if inner is None:
                    break
                candidate = f"{candidate}.{inner[0]}"
            found.append(candidate)
            break
    if not found:
        found = [next((name for name, module in modules.items() if isinstance(module, nn.Conv2d)), None)]
    return [name for name in found if name is not None]
