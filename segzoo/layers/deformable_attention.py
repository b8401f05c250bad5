"""Multi-scale deformable attention (Zhu et al., "Deformable DETR", ICLR 2021) in plain PyTorch: each query samples a
few points around its reference point on every level, bilinearly (``F.grid_sample``, zeros outside the map,
``align_corners=False``), and sums them with softmax weights. What the authors' CUDA kernel computes, and what
transformers' pure-PyTorch ``multi_scale_deformable_attention`` computes, with its parameter names
(``sampling_offsets``, ``attention_weights``, ``value_proj``, ``output_proj``)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MultiScaleDeformableAttention", "deformable_sample"]


def deformable_sample(value: Tensor, shapes: Sequence[tuple[int, int]], locations: Tensor, weights: Tensor) -> Tensor:
    """The weighted sum of bilinear samples.

    Args:
        value: ``(N, S, heads, C)``, the levels' maps flattened row-major and concatenated (``S = sum(h * w)``).
        shapes: Each level's ``(h, w)``.
        locations: ``(N, Q, heads, levels, points, 2)``, (x, y) in [0, 1] of each level (0 and 1 are its outer
            edges, as ``align_corners=False`` reads them).
        weights: ``(N, Q, heads, levels, points)``.

    Returns:
        ``(N, Q, heads * C)``.
    """
    batch, _, heads, channels = value.shape
    queries, levels, points = locations.shape[1], locations.shape[3], locations.shape[4]
    grids = 2 * locations - 1  # grid_sample's [-1, 1]
    sampled = []
    start = 0
    for level, (height, width) in enumerate(shapes):
        # one image per (sample, head): (N * heads, C, h, w), sampled at (N * heads, Q, points, 2)
        level_value = value[:, start:start + height * width].permute(0, 2, 3, 1)
        level_value = level_value.reshape(batch * heads, channels, height, width)
        start += height * width
        grid = grids[:, :, :, level].transpose(1, 2).reshape(batch * heads, queries, points, 2)
        sampled.append(F.grid_sample(level_value, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    # (N * heads, C, Q, levels * points) against (N * heads, 1, Q, levels * points), summed over the samples
    samples = torch.stack(sampled, dim=-2).flatten(-2)
    weights = weights.transpose(1, 2).reshape(batch * heads, 1, queries, levels * points)
    out = (samples * weights).sum(-1).view(batch, heads * channels, queries)
    return out.transpose(1, 2)


class MultiScaleDeformableAttention(nn.Module):
    """Deformable attention of each query over ``levels`` maps, ``points`` samples per head and level.

    Args:
        dim: Width of the queries and values.
        heads: Attention heads (``dim`` must divide by it).
        levels: Number of maps the values come from.
        points: Samples per head and level.
    """

    def __init__(self, dim: int, heads: int = 8, levels: int = 3, points: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"deformable attention: width {dim} does not divide into {heads} heads")
        self.heads, self.levels, self.points = heads, levels, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor,
                shapes: Sequence[tuple[int, int]]) -> Tensor:
        """``query`` ``(N, Q, dim)`` (position embedding already added), ``reference_points`` ``(N or 1, Q, levels,
        2)`` as (x, y) in [0, 1], ``value`` ``(N, S, dim)`` over the levels of ``shapes``; returns ``(N, Q, dim)``."""
        batch, queries, _ = query.shape
        heads, levels, points = self.heads, self.levels, self.points
        value = self.value_proj(value).view(batch, value.shape[1], heads, -1)
        offsets = self.sampling_offsets(query).view(batch, queries, heads, levels, points, 2)
        weights = self.attention_weights(query).view(batch, queries, heads, levels * points).softmax(-1)
        weights = weights.view(batch, queries, heads, levels, points)
        # offsets are in pixels of each level: divided by its (w, h) to be in the reference points' [0, 1] units
        # (per level with the sizes as numbers, not a tensor made of them: traced sizes stay symbolic for export)
        locations = torch.stack([
            reference_points[:, :, None, level, None, :] + torch.stack(
                (offsets[:, :, :, level, :, 0] / width, offsets[:, :, :, level, :, 1] / height), dim=-1)
            for level, (height, width) in enumerate(shapes)], dim=3)
        return self.output_proj(deformable_sample(value, shapes, locations, weights))
