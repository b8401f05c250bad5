"""Deterministic weights for a state-dict layout, the same on every machine, numpy version and torch version.

Parity tests against an upstream's own code (mmsegmentation, run once in a scratch environment by
``tests/reference_data/mmseg/make_reference.py``) fill both models from the upstream's key layout with these values,
so the reference outputs can be committed small while the weights are regenerated. The values come from splitmix64 over
``crc32(key)`` and the element index in integer arithmetic: nothing depends on a library's random generator.
This module imports numpy only, so the scratch environment can load it by path.
"""
from __future__ import annotations

import zlib

import numpy as np

__all__ = ["seeded_uniform", "seeded_value"]

_GOLDEN, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def seeded_uniform(name: str, count: int) -> np.ndarray:
    """``count`` float64 values in [0, 1) determined by ``name`` alone."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as splitmix64 intends
        x = (np.arange(count, dtype=np.uint64) + np.uint64(zlib.crc32(name.encode()))) * _GOLDEN
        x ^= x >> np.uint64(30)
        x *= _MIX1
        x ^= x >> np.uint64(27)
        x *= _MIX2
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def seeded_value(key: str, shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    """The value of state-dict entry ``key``: He-scaled uniform convolution weights, BatchNorm statistics near
    (0, 1), small biases, 0.5 for attention scales (``gamma``, 0 when trained from scratch, so the attention
    counts), zero batch counters."""
    shape = tuple(int(size) for size in shape)
    count = int(np.prod(shape)) if shape else 1
    if "int" in dtype:
        return np.zeros(shape, dtype=dtype)
    u = seeded_uniform(key, count)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        values = 0.5 + u
    elif "gamma" in key:
        values = 0.25 + 0.5 * u
    elif len(shape) >= 2:  # convolution / linear weight: variance 2 / fan_in
        fan_in = count // shape[0]
        values = (2 * u - 1) * np.sqrt(6.0 / fan_in)
    elif leaf == "weight":  # normalisation scale
        values = 0.75 + 0.5 * u
    else:  # biases, running means
        values = 0.2 * (u - 0.5)
    return values.astype(dtype).reshape(shape)
