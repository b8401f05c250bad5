"""Attention primitives that never hold the full (HW x HW) matrix.

Spatial self-attention over ``N`` queries and ``M`` keys is computed in chunks (of queries, or of keys when the
softmax runs over the queries) of at most ``max_elements`` scores each, so memory is O(chunk x M) instead of
O(N x M); on the CPU the chunks are also kept cache-sized. torch's SDPA would do this by
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
# Where the CPU computes scores, softmax and the weighted sum as three steps (everything but SDPA), a chunk of about
# this many scores (2 MB) stays in cache from one step to the next; at least 128 rows, or the matrix products get
# too thin. Measured for DANet's shapes (64-wide keys, 512-wide values) on the 2-core machine: 3600 positions
# (480x480 input) 126 -> 100 ms over keys, 150 -> 101 ms over queries; 32768 positions (1024x2048) 11.8 -> 10.1 s
# and 18.1 -> 11.5 s (the latter also from the single pass over key chunks below).
CPU_CACHE_SCORES = 1 << 19


def _chunk_size(num_keys: int, max_elements: int) -> int:
    return max(1, max_elements // max(num_keys, 1))


def _cpu_chunk_size(num_columns: int, memory_chunk: int) -> int:
    return min(memory_chunk, max(128, CPU_CACHE_SCORES // max(num_columns, 1)))


def _tracks_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _run_chunk(fn, *args):
    if _tracks_grad(*args):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _scores(query: Tensor, key: Tensor, scale: float) -> Tensor:
    """``scale * q . k``, the scale applied to the query (N x D values, not N x M scores; none for 1.0)."""
    return torch.matmul(query * scale if scale != 1.0 else query, key.transpose(-1, -2))


def _explicit_on_cpu(query: Tensor, value: Tensor) -> bool:
    # torch's SDPA has no fused CPU kernel for a value width other than the key width (DANet): it builds the
    # score matrix all the same and then rescales it, a whole extra pass even for a scale of 1.
    return query.device.type == "cpu" and value.shape[-1] != query.shape[-1]


def _softmax_over_keys(query: Tensor, key: Tensor, value: Tensor, scale: float) -> Tensor:
    if _explicit_on_cpu(query, value):
        return torch.matmul(torch.softmax(_scores(query, key, scale), dim=-1), value)
    # Not under torch.compile: the compiler makes its own kernel (and cannot trace get_num_threads).
    if (query.device.type == "cpu" and query.shape[0] == 1 and not torch.compiler.is_compiling()
            and not _tracks_grad(query, key, value)):
        threads = torch.get_num_threads()
        if threads > 1:
            return _sdpa_queries_as_batch(query, key, value, scale, threads)
    return F.scaled_dot_product_attention(query, key, value, scale=scale)


def _sdpa_queries_as_batch(query: Tensor, key: Tensor, value: Tensor, scale: float, parts: int) -> Tensor:
    """SDPA for one image with its queries cut into ``parts`` batch entries that share the keys and values
    (broadcast, not copied). torch's CPU kernel runs this faster than one entry with all the queries: OCNet's
    3600 x 256 attention (480x480 input) took 81 ms instead of 92 on 2 threads; no gain at 32768 queries or
    for a batch of 2, hence one image only."""
    num_queries = query.shape[1]
    padding = -num_queries % parts
    if padding:  # zero queries at the end: their outputs are dropped
        query = F.pad(query, (0, 0, 0, padding))
    query = query.reshape(parts, -1, query.shape[-1])
    out = F.scaled_dot_product_attention(query, key.expand(parts, -1, -1), value.expand(parts, -1, -1), scale=scale)
    return out.reshape(1, -1, out.shape[-1])[:, :num_queries]


def _weights_over_queries(query: Tensor, key_block: Tensor, scale: float) -> Tensor:
    """``(B, N, m)``: each key's softmax over all ``N`` queries, for a block of ``m`` keys. Computed as
    ``(B, m, N)`` so that the softmax runs along contiguous memory."""
    return torch.softmax(_scores(key_block, query, scale), dim=-1).transpose(-1, -2)


def _key_block_output(query: Tensor, key_block: Tensor, value_block: Tensor, scale: float) -> Tensor:
    return torch.matmul(_weights_over_queries(query, key_block, scale), value_block)


def spatial_attention(query: Tensor, key: Tensor, value: Tensor, scale: float = 1.0, softmax_over: str = "keys",
                      max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """``out_i = sum_j A_ij v_j`` with ``A = softmax(scale * q_i . k_j)``, computed in chunks: of queries for a
    softmax over keys, of keys for a softmax over queries (each chunk's weights are then complete by themselves).

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
        # An exported graph serves every input size, but the number of chunks below depends on the size and
        # would be frozen at the example's (wrong or refused at larger sizes). Exported graphs compute all
        # scores in one pass instead (same math): (N x M) floats per image. Not SDPA: the ONNX exporter takes
        # it with 4-D inputs only.
        scores = _scores(query, key, scale)
        return torch.matmul(torch.softmax(scores, dim=-1 if softmax_over == "keys" else -2), value)
    num_queries, num_keys = query.shape[-2], key.shape[-2]
    chunk = _chunk_size(num_keys, max_elements)
    if softmax_over == "keys":
        if _explicit_on_cpu(query, value):
            chunk = _cpu_chunk_size(num_keys, chunk)
        parts = [_run_chunk(lambda q, k, v: _softmax_over_keys(q, k, v, scale), query[:, i:i + chunk], key, value)
                 for i in range(0, num_queries, chunk)]
        return torch.cat(parts, dim=1)
    # Each key's weights over all queries are complete within a block of keys: one pass over key blocks, adding
    # up their contributions (in place when no gradient is tracked).
    key_chunk = _chunk_size(num_queries, max_elements)
    if query.device.type == "cpu":
        key_chunk = _cpu_chunk_size(num_queries, key_chunk)
    out = None
    for j in range(0, num_keys, key_chunk):
        key_block, value_block = key[:, j:j + key_chunk], value[:, j:j + key_chunk]
        if out is None or _tracks_grad(query, key_block, value_block):
            part = _run_chunk(lambda q, k, v: _key_block_output(q, k, v, scale), query, key_block, value_block)
            out = part if out is None else out + part
        else:
            out.baddbmm_(_weights_over_queries(query, key_block, scale), value_block)
    return out


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
