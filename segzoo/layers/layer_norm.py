"""LayerNorm over the channels of NCHW maps."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LayerNorm2d"]


class LayerNorm2d(nn.LayerNorm):
    """``nn.LayerNorm(channels)`` applied at every pixel of an ``(N, C, H, W)`` map (keys ``weight`` and
    ``bias``, as the upstreams' per-level norms store them)."""

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
