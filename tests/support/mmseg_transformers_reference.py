"""mmsegmentation's transformer-era reference outputs and key layouts (tests/reference_data/mmseg_transformers,
taken by its make_reference.py), and the seeded state dicts and inputs they ran with."""
from __future__ import annotations

import gzip
import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .seeded_weights import seeded_value

__all__ = ["DATA", "CLASS_STEP", "cases", "reference_logits", "seeded_layout", "seeded_state_dict", "seeded_input",
           "pixel_step"]

DATA = Path(__file__).resolve().parents[1] / "reference_data" / "mmseg_transformers"
CLASS_STEP = 10


@lru_cache(maxsize=None)
def _layouts() -> dict:
    with gzip.open(DATA / "key_layouts.json.gz", "rt", encoding="utf-8") as file:
        return json.load(file)


@lru_cache(maxsize=None)
def _logits() -> dict[str, np.ndarray]:
    with np.load(DATA / "reference.npz") as data:
        return {key: data[key] for key in data.files}


def cases() -> list[tuple[str, tuple[int, int]]]:
    """(mmseg config name, input size) of every reference output."""
    return [(key.rsplit("/", 1)[0], tuple(int(v) for v in key.rsplit("/", 1)[1].split("x"))) for key in _logits()]


def pixel_step(size: tuple[int, int]) -> int:
    return max(1, math.ceil(math.sqrt(size[0] * size[1] / 1000)))


def reference_logits(name: str, size: tuple[int, int]) -> np.ndarray:
    """mmseg's logits at every CLASS_STEP-th class and every pixel_step(size)-th row and column."""
    return _logits()[f"{name}/{size[0]}x{size[1]}"]


@lru_cache(maxsize=None)
def _models() -> dict:
    return json.loads((DATA / "models.json").read_text())


def seeded_layout(name: str) -> dict[str, torch.Tensor]:
    """Empty tensors of every key of a config's layout (integer buffers included), on the current device."""
    state = {key: torch.empty(shape, dtype=getattr(torch, dtype)) for key, shape, dtype in _layouts()[name]}
    for key in _models()[name]["integer_buffers"]:
        state[key] = torch.empty((), dtype=torch.int64) if key.endswith("num_batches_tracked") else \
            torch.empty(1, dtype=torch.int64)
    return state


def seeded_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The state dict (mmseg's layout) the reference ran with: its floating-point tensors seeded, its integer buffers
    as a checkpoint holds them (BatchNorm counters; the relative-position indices, which segzoo drops, as zeros)."""
    state = {key: torch.from_numpy(seeded_value(key, tuple(shape), dtype)) for key, shape, dtype in _layouts()[name]}
    for key in _models()[name]["integer_buffers"]:
        state[key] = torch.zeros((), dtype=torch.int64) if key.endswith("num_batches_tracked") else \
            torch.zeros(1, dtype=torch.int64)
    return state


def seeded_input(name: str, size: tuple[int, int]) -> torch.Tensor:
    return torch.from_numpy(seeded_value(f"{name}/input/{size[0]}x{size[1]}", (1, 3, *size)) * 0.5)
