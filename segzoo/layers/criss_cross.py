"""Criss-cross attention (CCNet, Huang et al. 2019) in pure torch, memory O(HW (H + W))."""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CrissCrossAttention", "criss_cross_attention"]


def criss_cross_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """Each position attends to its column and its row, itself counted once, with one joint softmax.

    Args:
        query: ``(B, D, H, W)``.
        key: ``(B, D, H, W)``.
        value: ``(B, C, H, W)``.

    Returns:
        ``sum_candidates softmax(q . k) v`` as ``(B, C, H, W)``.
    """
    height = query.shape[2]
    # Column scores [b, h, w, h'] and row scores [b, h, w, w'].
    column = torch.einsum("bdhw,bdgw->bhwg", query, key)
    row = torch.einsum("bdhw,bdhv->bhwv", query, key)
    # The position itself appears in both its row and its column: drop it from the column.
    self_mask = torch.eye(height, dtype=torch.bool, device=query.device).view(1, height, 1, height)
    column = column.masked_fill(self_mask, float("-inf"))
    attention = torch.softmax(torch.cat([column, row], dim=-1), dim=-1)
    column_att, row_att = attention[..., :height], attention[..., height:]
    return torch.einsum("bhwg,bcgw->bchw", column_att, value) + torch.einsum("bhwv,bchv->bchw", row_att, value)


class CrissCrossAttention(nn.Module):
    """CCNet's criss-cross attention block: ``out = gamma * attend(x) + x``.

    Args:
        channels: Input (and value) channels.
        key_channels: Query/key channels (``channels // 8`` in CCNet).
    """

    def __init__(self, channels: int, key_channels: int):
        super().__init__()
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.gamma * criss_cross_attention(self.query(x), self.key(x), self.value(x)) + x
