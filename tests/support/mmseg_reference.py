"""mmsegmentation's reference outputs and key layouts (``tests/reference_data/mmseg``, taken by its make_reference.py), and
the seeded state dicts they ran with."""
from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .seeded_weights import seeded_value

__all__ = ["DATA", "reference_outputs", "key_layouts", "seeded_state_dict", "max_difference"]

DATA = Path(__file__).resolve().parents[1] / "reference_data" / "mmseg"


@lru_cache(maxsize=None)
def reference_outputs() -> dict[str, np.ndarray]:
    """``input`` and ``<mmseg config>/logits`` / ``/aux`` (``/aux0``, ``/aux1``) as mmseg computed them."""
    with np.load(DATA / "reference.npz") as data:
        return {key: data[key] for key in data.files}


@lru_cache(maxsize=None)
def key_layouts() -> dict[str, dict[str, list]]:
    """``{mmseg config: {state-dict key: [shape, dtype]}}`` in mmseg's order."""
    with gzip.open(DATA / "key_layouts.json.gz", "rt") as file:
        return json.load(file)


def seeded_state_dict(reference: str) -> dict[str, torch.Tensor]:
    """The state dict (mmseg's layout) that the reference model ran with."""
    return {key: torch.from_numpy(seeded_value(key, tuple(shape), dtype))
            for key, (shape, dtype) in key_layouts()[reference].items()}


def max_difference(actual: torch.Tensor, expected: np.ndarray) -> tuple[float, float]:
    """(max |actual - expected|, allowed): the allowance is 1e-4 of the reference's largest magnitude, at least 1e-4
    (random weights let activations grow through the residual stages: ResNet-101's logits reach 1.7e4)."""
    difference = float((actual.detach().float() - torch.from_numpy(expected)).abs().max())
    return difference, 1e-4 * max(1.0, float(np.abs(expected).max()))
