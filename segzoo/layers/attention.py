"""Attention primitives that never hold the full (HW x HW) matrix.

Spatial self-attention over ``N`` queries and ``M`` keys is computed in query chunks of at most
``max_elements`` scores each, so memory is O(chunk x M) instead of O(N x M). torch's SDPA would do this by
itself only for some shapes: on the CPU it falls back to the full matrix when the value width differs from
the key width (DANet: 64 vs 512), which needs 9.3 GB at a 1024x2048 input. In training each chunk is
recomputed in the backward pass (activation checkpointing) for the same reason. Exported graphs (ONNX,
``torch.export``) are the exception: they compute the scores in one pass (see ``spatial_attention``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .tracing import is_exporting

__all__ = ["spatial_attention", "ChannelAttention", "DEFAULT_MAX_ELEMENTS"]

DEFAULT_MAX_ELEMENTS = 1 << 24  # scores per chunk: 64 MB in fp32


def _chunk_size(num_keys: int, max_elements: int) -> int:
    return max(1, max_elements // max(num_keys, 1))


def _run_chunk(fn, *args):
    if torch.is_grad_enabled() and any(a.requires_grad for a in args):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _scores(query: Tensor, key: Tensor, scale: float) -> Tensor:
    """``scale * q . k``, the scale applied to the query (N x D values, not N x M scores; none for 1.0)."""
    return torch.matmul(query * scale if scale != 1.0 else query, key.transpose(-1, -2))


def _softmax_over_keys(query: Tensor, key: Tensor, value: Tensor, scale: float) -> Tensor:
    if query.device.type == "cpu" and value.shape[-1] != query.shape[-1]:
        # torch's SDPA has no fused CPU kernel for a value width other than the key width (DANet): it builds
        # the score matrix all the same and then rescales it, a whole extra pass even for a scale of 1.
        return torch.matmul(torch.softmax(_scores(query, key, scale), dim=-1), value)
    return F.scaled_dot_product_attention(query, key, value, scale=scale)


def _column_normalised(query: Tensor, key: Tensor, value: Tensor, log_norm: Tensor, scale: float) -> Tensor:
    return torch.matmul(torch.exp(_scores(query, key, scale) - log_norm.unsqueeze(-2)), value)


def _column_log_norm(query: Tensor, key: Tensor, scale: float) -> Tensor:
    return torch.logsumexp(_scores(query, key, scale), dim=-2)


def spatial_attention(query: Tensor, key: Tensor, value: Tensor, scale: float = 1.0, softmax_over: str = "keys",
                      max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """``out_i = sum_j A_ij v_j`` with ``A = softmax(scale * q_i . k_j)``, computed in query chunks.

    Args:
        query: ``(B, N, D)``.
        key: ``(B, M, D)``.
        value: ``(B, M, Dv)``; ``Dv`` may differ from ``D``.
        scale: Factor on the dot products (1.0 in DANet, ``D ** -0.5`` in OCNet).
        softmax_over: ``"keys"`` (each query's weights sum to 1: the papers) or ``"queries"`` (each key's
            weights over all queries sum to 1: the reference DANet's ``softmax(dim=1)``).
        max_elements: Most scores held at once per batch element.

    Returns:
        ``(B, N, Dv)``.
    """
    if softmax_over not in ("keys", "queries"):
        raise ValueError(f"softmax_over must be 'keys' or 'queries', got {softmax_over!r}")
    if is_exporting():
        # An exported graph serves every input size, but the number of chunks and the one-pass branch below
        # depend on the size and would be frozen at the example's (wrong or refused at larger sizes). Exported
        # graphs compute all scores in one pass instead (same math): (N x M) floats per image. Not SDPA: the
        # ONNX exporter takes it with 4-D inputs only.
        scores = _scores(query, key, scale)
        return torch.matmul(torch.softmax(scores, dim=-1 if softmax_over == "keys" else -2), value)
    num_queries, num_keys = query.shape[-2], key.shape[-2]
    chunk = _chunk_size(num_keys, max_elements)
    if softmax_over == "keys":
        parts = [_run_chunk(lambda q, k, v: _softmax_over_keys(q, k, v, scale), query[:, i:i + chunk], key, value)
                 for i in range(0, num_queries, chunk)]
        return torch.cat(parts, dim=1)
    if num_queries * num_keys <= max_elements:  # small enough to hold: one pass
        return torch.matmul(torch.softmax(_scores(query, key, scale), dim=-2), value)
    # Column softmax: first the per-key normaliser over all queries (in key chunks), then the output.
    key_chunk = _chunk_size(num_queries, max_elements)
    log_norm = torch.cat([_run_chunk(lambda q, k: _column_log_norm(q, k, scale), query, key[:, j:j + key_chunk])
                          for j in range(0, num_keys, key_chunk)], dim=-1)
    parts = [_run_chunk(lambda q, k, v, z: _column_normalised(q, k, v, z, scale), query[:, i:i + chunk], key, value,
                        log_norm)
             for i in range(0, num_queries, chunk)]
    return torch.cat(parts, dim=1)


class ChannelAttention(nn.Module):
    """DANet's channel attention: ``A = softmax(rowmax(X X^T) - X X^T)``, ``out = gamma * A X + x``.

    The (C x C) matrix is small; only ``gamma`` (initialised to 0) is a parameter.
    """

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        flat = x.reshape(batch, channels, -1)
        energy = torch.bmm(flat, flat.transpose(1, 2))
        energy = energy.amax(dim=-1, keepdim=True).expand_as(energy) - energy
        attention = torch.softmax(energy, dim=-1)
        out = torch.bmm(attention, flat).reshape(batch, channels, height, width)
        return self.gamma * out + x
