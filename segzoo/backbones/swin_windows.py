"""Swin's shifted windows as Swin's authors, mmsegmentation and transformers compute them at any input size.

timm's Swin block shifts the feature map first and pads it to whole windows afterwards; the segmentation
upstreams pad first and shift the padded map (and never shrink a window to a small map: ``always_partition``).
Both agree when no padding is needed (224x224 classification), but at segmentation sizes (512x683 is 128x171 at
stride 4, not a multiple of 7) the padded tokens land in other windows, and checkpoints trained the upstreams' way
would not reproduce their outputs. ``use_upstream_windows`` gives each of timm's blocks the upstreams' order; the
modules and weights stay timm's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .overrides import override_method

__all__ = ["use_upstream_windows"]


def _pad_then_shift_attention(block: nn.Module, x: Tensor) -> Tensor:
    """``SwinTransformerBlock._attn`` with the pad before the cyclic shift (``x``: B, H, W, C)."""
    from timm.models.swin_transformer import window_partition, window_reverse

    _, height, width, channels = x.shape
    window_h, window_w = block.window_size
    x = F.pad(x, (0, 0, 0, (window_w - width % window_w) % window_w, 0, (window_h - height % window_h) % window_h))
    shift = tuple(block.shift_size)
    if any(shift):
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    _, padded_h, padded_w, _ = x.shape
    windows = window_partition(x, block.window_size).view(-1, block.window_area, channels)
    mask = block.get_attn_mask(x)  # the regions of the padded, shifted map (None without a shift)
    attended = block.attn(windows, mask=mask).view(-1, window_h, window_w, channels)
    x = window_reverse(attended, block.window_size, padded_h, padded_w)
    if any(shift):
        x = torch.roll(x, shifts=shift, dims=(1, 2))
    return x[:, :height, :width, :].contiguous()


def use_upstream_windows(model: nn.Module) -> int:
    """Give every timm Swin (v1) block in ``model`` the upstreams' pad-then-shift order; returns how many.

    The block's class is swapped for a subclass that overrides ``_attn`` only, so parameters, buffers and
    state-dict keys are unchanged. The blocks must compute their masks per input (timm's ``dynamic_mask``, which
    ``strict_img_size=False`` sets) and keep whole windows (``always_partition=True``)."""
    from timm.models.swin_transformer import SwinTransformerBlock

    return override_method(model, SwinTransformerBlock, "_attn", _pad_then_shift_attention,
                           "padding its map to whole windows before the shift, as the segmentation upstreams do")
