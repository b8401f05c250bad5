"""Channel concatenation that keeps the channels-last memory format."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["concat_channels"]


def concat_channels(parts: list[Tensor]) -> Tensor:
    """``torch.cat(parts, dim=1)``, channels-last when any part is.

    ``torch.cat`` returns a contiguous (NCHW) tensor as soon as one part is not channels-last (a
    broadcast 1x1 pooled map, say); the next convolution then copies the whole result back to
    channels-last (73 ms for PSPNet's 4096 x 60 x 60 concat). Converting the small parts first is cheaper.
    """
    if any(not part.is_contiguous() and part.is_contiguous(memory_format=torch.channels_last) for part in parts):
        parts = [part.contiguous(memory_format=torch.channels_last) for part in parts]
    return torch.cat(parts, dim=1)
