"""A ViT's position embedding resized to other grids as the segmentation upstreams resize it.

timm resizes a ViT's position embedding for another input size with an antialiased bicubic kernel (PIL's, a=-0.5);
mmsegmentation's ViT (``resize_pos_embed``) and the checkpoints trained with it use plain bicubic interpolation
(a=-0.75, ``align_corners=False``). At the size the embedding was made for nothing is resized and both agree; at
any other size (mmseg evaluates ADE20K at 512 x 683 and the like) they differ. ``use_upstream_positions`` gives
each of timm's ViTs in a model the upstreams' resize; modules and weights stay timm's. transformers' DPT resizes
bilinearly instead, and DINOv2 by scale factors with an offset (``set_position_resize``;
``ModelConfig.position_resize``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .overrides import override_method

__all__ = ["use_upstream_positions", "set_position_resize", "POSITION_RESIZES"]

POSITION_RESIZES = ("bicubic", "bilinear", "dinov2")


def _dinov2_resized(pos_embed: Tensor, new_size: tuple[int, int], old_size: tuple[int, int], prefix: int) -> Tensor:
    """DINOv2's own resize (``interpolate_pos_encoding``): bicubic by the scale factors ``(new + 0.1) / old`` rather
    than to the size (the sampling positions differ slightly), in float32, no antialiasing; none at the stored
    grid."""
    if tuple(new_size) == tuple(old_size):
        return pos_embed
    prefix_part, grid = pos_embed[:, :prefix], pos_embed[:, prefix:]
    channels = grid.shape[-1]
    grid = grid.float().reshape(1, *old_size, channels).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, mode="bicubic", antialias=False, scale_factor=(
        (new_size[0] + 0.1) / old_size[0], (new_size[1] + 0.1) / old_size[1]))
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, channels).to(pos_embed.dtype)
    return torch.cat([prefix_part, grid], dim=1)


def _position_embedded(vit: nn.Module, x: Tensor) -> Tensor:
    """``VisionTransformer._pos_embed`` with plain bicubic (or the ViT's ``position_resize``) resizing (``x``: B, H, W,
    C under dynamic sizes)."""
    from timm.layers import resample_abs_pos_embed

    if vit.pos_embed is None or not vit.dynamic_img_size:
        return type(vit).__mro__[1]._pos_embed(vit, x)
    batch, height, width, channels = x.shape
    prefix = [token.expand(batch, -1, -1) for token in (vit.cls_token, vit.reg_token) if token is not None]
    mode = getattr(vit, "position_resize", "bicubic")
    prefix_positions = 0 if vit.no_embed_class else vit.num_prefix_tokens
    if mode == "dinov2":
        positions = _dinov2_resized(vit.pos_embed, (height, width), tuple(vit.patch_embed.grid_size), prefix_positions)
    else:
        positions = resample_abs_pos_embed(vit.pos_embed, new_size=(height, width),
                                           old_size=vit.patch_embed.grid_size, num_prefix_tokens=prefix_positions,
                                           interpolation=mode, antialias=False)
    x = x.reshape(batch, -1, channels)
    if vit.no_embed_class:  # the embedding does not cover the prefix tokens
        x = torch.cat(prefix + [x + positions], dim=1) if prefix else x + positions
    else:
        x = (torch.cat(prefix + [x], dim=1) if prefix else x) + positions
    return vit.pos_drop(x)


def use_upstream_positions(model: nn.Module) -> int:
    """Give every timm ``VisionTransformer`` in ``model`` (whose class keeps timm's ``_pos_embed``) the upstreams'
    position-embedding resize; returns how many. The class is swapped for a subclass overriding ``_pos_embed``
    only (state-dict keys unchanged)."""
    from timm.models.vision_transformer import VisionTransformer

    # a subclass with its own _pos_embed (DeiT's distilled ViT and its extra token) keeps it
    return override_method(model, VisionTransformer, "_pos_embed", _position_embedded,
                           "resizing its position embedding with plain bicubic interpolation, as the segmentation "
                           "upstreams do",
                           applies=lambda cls: cls._pos_embed is VisionTransformer._pos_embed)


def set_position_resize(model: nn.Module, mode: str) -> int:
    """Resize the position embedding of every ViT in ``model`` given the upstreams' resize with ``mode`` (one of
    ``POSITION_RESIZES``, ``align_corners=False``, no antialiasing); returns how many."""
    if mode not in POSITION_RESIZES:
        raise ValueError(f"position_resize must be one of {', '.join(POSITION_RESIZES)}, got {mode!r}")
    count = 0
    for module in model.modules():
        if getattr(type(module), "_pos_embed", None) is _position_embedded:
            module.position_resize = mode
            count += 1
    return count
