"""BatchNorm folding: the arithmetic that turns ``bn(conv(x))`` into one convolution (used by ``FusedConv2d``)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["batch_norm_scale_shift", "scale_weight", "fold_bias", "fold_batch_norm"]


def batch_norm_scale_shift(bn: nn.Module) -> tuple[Tensor, Tensor]:
    """Per-channel ``(scale, shift)`` with ``bn(y) == y * scale + shift`` in eval mode (computed in float64)."""
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def scale_weight(weight: Tensor, scale: Tensor) -> Tensor:
    """``weight * scale`` (``scale`` broadcasts: ``(out, 1, 1, 1)`` or ``(out, in, 1, 1)``) in ``weight``'s dtype
    and memory format. The product is taken in that dtype (one rounding, and no float64 copy of a weight
    that may be 75 MB); for a float16 / bfloat16 weight in float32, so that the result is rounded once, not
    the scale and then the product."""
    channels_last = weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    compute = torch.float32 if weight.dtype in (torch.float16, torch.bfloat16) else weight.dtype
    folded = (weight.detach().to(compute) * scale.to(compute)).to(weight.dtype)
    return folded.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def fold_bias(bias: Optional[Tensor], scale: Tensor, shift: Tensor, dtype: torch.dtype) -> Tensor:
    return ((bias.detach().double() * scale if bias is not None else 0) + shift).to(dtype)


def fold_batch_norm(weight: Tensor, bias: Optional[Tensor], bn: nn.Module) -> tuple[Tensor, Tensor]:
    """The weight and bias of ``conv`` such that ``conv'(x) == bn(conv(x))`` in eval mode.

    Args:
        weight: The convolution's weight ``(out, in / groups, kh, kw)``.
        bias: Its bias, or None.
        bn: A BatchNorm with running statistics.

    Returns:
        (weight, bias) in ``weight``'s dtype and memory format.
    """
    scale, shift = batch_norm_scale_shift(bn)
    return scale_weight(weight, scale.view(-1, 1, 1, 1)), fold_bias(bias, scale, shift, weight.dtype)
