"""transformers' reference outputs and key layouts (``tests/reference_data/transformers``, taken by its
make_reference.py), and the seeded state dicts and inputs they ran with."""
from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .seeded_weights import seeded_value

__all__ = ["DATA", "CASES", "SIZES", "sizes_of", "pixel_step", "reference_logits", "full_layout", "hf_config",
           "seeded_state_dict", "seeded_input"]

DATA = Path(__file__).resolve().parents[1] / "reference_data" / "transformers"
CASES = ("convnext", "swin_window7", "swin_window12", "beit", "segformer", "dpt", "mask2former")
SIZES = ((97, 131), (128, 128))


def sizes_of(case: str) -> tuple[tuple[int, int], ...]:
    """The sizes a case was run at: BEiT at its grid only (its position bias is tied to it), SegFormer also at the
    ADE20K training crop, DPT at square multiples of its patch (transformers' ViT drops a partial patch, and its
    semantic model reshapes the tokens to a square grid) and its crop."""
    if case == "dpt":
        return (128, 128), (480, 480)
    return ((64, 64),) if case == "beit" else SIZES + ((512, 512),) if case == "segformer" else SIZES


def pixel_step(size: tuple[int, int]) -> int:
    """The reference keeps every step-th pixel of every step-th row."""
    return 16 if size[0] >= 512 else 4


@lru_cache(maxsize=None)
def _models() -> dict:
    with gzip.open(DATA / "models.json.gz", "rt", encoding="utf-8") as file:
        return json.load(file)


@lru_cache(maxsize=None)
def _logits() -> dict[str, np.ndarray]:
    with np.load(DATA / "reference.npz") as data:
        return {key: data[key] for key in data.files}


def reference_logits(case: str, size: tuple[int, int]) -> np.ndarray:
    """transformers' logits at every ``pixel_step(size)``-th pixel of every such row."""
    return _logits()[f"{case}/{size[0]}x{size[1]}"]


def hf_config(case: str) -> dict:
    """The case's transformers ``config.json`` contents."""
    return _models()[case]["config"]


def seeded_state_dict(case: str) -> dict[str, torch.Tensor]:
    """The state dict (transformers' layout, without the relative-position index buffers) the reference ran with."""
    return {key: torch.from_numpy(seeded_value(key, tuple(shape), dtype))
            for key, shape, dtype in _models()[case]["layout"]}


def seeded_input(case: str, size: tuple[int, int]) -> torch.Tensor:
    return torch.from_numpy(seeded_value(f"{case}/input/{size[0]}x{size[1]}", (1, 3, *size)) * 0.5)


def full_layout(name: str) -> dict[str, tuple[int, ...]]:
    """A full-size model's keys and shapes (``"segformer-b0"``, ``"upernet-convnext-tiny"``)."""
    return {key: tuple(shape) for key, shape, _ in _models()[name]["layout"]}
