"""What segzoo asks of each timm model family so that it gives NCHW feature pyramids at any input size.

timm builds every family's feature extractor itself (``features_only=True``); families differ in what they need
around that: Swin takes any size only with ``strict_img_size=False`` (and gives NHWC maps, turned to NCHW by the
model), ViT-style models only with ``dynamic_img_size=True`` (and pad to their patch with ``dynamic_img_pad``);
both compute as the segmentation upstreams do at sizes timm's classifiers never see (``swin_windows``,
``vit_positions``).
Families not named here (ResNets, ConvNeXt, EfficientNets, RegNets, ...) are built as timm builds them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from torch import nn

from .swin_windows import use_upstream_windows
from .vit_positions import use_upstream_positions

__all__ = ["Family", "family_of"]


@dataclass(frozen=True)
class Family:
    """How a timm model family is built as a segmentation backbone.

    Attributes:
        name: For messages (``"Swin"``).
        timm_kwargs: Arguments of ``timm.create_model`` segzoo adds (a user's ``backbone_kwargs`` win).
        pads_to_patch: The input is padded at the bottom and right to a multiple of the patch size before the
            backbone (Swin: timm refuses other sizes; the upstreams pad this way).
        after_build: Run on the built feature extractor (Swin: the upstreams' window order).
    """

    name: str
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    pads_to_patch: bool = False
    after_build: Optional[Callable[[nn.Module], Any]] = None


_ANY_SIZE = {"dynamic_img_size": True, "dynamic_img_pad": True}
_VIT_STYLE = Family("ViT", _ANY_SIZE, after_build=use_upstream_positions)
_FAMILIES = {
    "timm.models.swin_transformer": Family("Swin", {"strict_img_size": False, "always_partition": True},
                                           pads_to_patch=True, after_build=use_upstream_windows),
    "timm.models.vision_transformer": _VIT_STYLE,  # ViT, DINOv2 (with and without registers), MAE, ...
    "timm.models.deit": _VIT_STYLE,
    "timm.models.eva": Family("EVA", _ANY_SIZE),  # EVA, EVA-02
}
_PLAIN = Family("")


def family_of(arch: str) -> Family:
    """The family of timm model ``arch`` (known to timm), by the timm module that defines it."""
    from timm.models._registry import model_entrypoint

    return _FAMILIES.get(model_entrypoint(arch).__module__, _PLAIN)
