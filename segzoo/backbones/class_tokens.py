"""A ViT's class token at each feature level, for heads that read it (DPT's readout, DINOv2's linear heads).

timm's feature extractor for ViT-style models (``FeatureGetterNet``) returns the patch tokens of the chosen blocks as
maps and drops the prefix tokens. The same ``forward_intermediates`` call returns them when asked
(``return_prefix_tokens``); the class token is the first of them (register tokens follow it).
"""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["has_class_token", "levels_with_class_tokens"]


def _vit(backbone: nn.Module) -> nn.Module | None:
    model = getattr(backbone, "model", None)
    return model if model is not None and hasattr(model, "forward_intermediates") else None


def has_class_token(backbone: nn.Module) -> bool:
    """Whether ``backbone`` (a timm feature extractor) is a ViT-style model with a class token."""
    vit = _vit(backbone)
    return vit is not None and getattr(vit, "cls_token", None) is not None and hasattr(backbone, "out_indices")


def levels_with_class_tokens(backbone: nn.Module, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """The four levels as ``FeatureGetterNet.forward`` gives them (NCHW maps) and each level's class token
    ``(N, C)``, from one pass of the ViT."""
    levels = _vit(backbone).forward_intermediates(
        images, indices=backbone.out_indices, norm=backbone.norm, output_fmt="NCHW", intermediates_only=True,
        return_prefix_tokens=True)
    return [level for level, _ in levels], [prefix[:, 0] for _, prefix in levels]
