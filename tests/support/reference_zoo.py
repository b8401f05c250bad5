"""The reference zoo's own outputs (``tests/reference_data/reference``, taken by its make_reference_outputs.py from the
reference code, AceCoooool/segmentation, in a scratch environment) and the seeded weights and input they ran with.

The weights are not stored: both sides fill the reference key layout with ``seeded_reference_value``. This module
imports numpy only at module level (torch inside the functions that return tensors), so the scratch script
imports it as well.
"""
from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .seeded_weights import seeded_uniform, seeded_value

__all__ = ["DATA", "INPUT_SHAPE", "FAMILIES", "seeded_reference_value", "seeded_input", "output_samples",
           "key_layouts", "reference_outputs", "seeded_state_dict", "max_difference"]

DATA = Path(__file__).resolve().parents[1] / "reference_data" / "reference"
# Odd on purpose, and wide: the JPU / dilated features are 7x37 (stride 8), so the ASPP's rate-36 taps and
# OCNet-ASP's rate-36 branch reach real pixels along the width; c3 (the aux head's input) is 4x19.
INPUT_SHAPE = (1, 3, 49, 289)
# family (the reference kind, as `segzoo convert --model` names it) -> its zoo entry (the voc one) or None
FAMILIES = {
    "fcn_jpu": "fcn_resnet101s_jpu.ref_voc",
    "psp_jpu": "pspnet_resnet101s_jpu.ref_voc",
    "psp_d8": "pspnet_resnet101s_d8.ref_voc",
    "deeplabv3_jpu": "deeplabv3_resnet101s_jpu.ref_voc",
    "danet_jpu": "danet_resnet101s_jpu.ref_voc",
    "ocnet_base_jpu": "ocnet_resnet101s_jpu.ref_voc",
    "ocnet_asp_jpu": None,  # a kind `segzoo convert --model` takes; the reference published no checkpoint of it
}


def seeded_reference_value(key: str, shape, dtype: str = "float32") -> np.ndarray:
    """``seeded_value`` by key (tests/support/seeded_weights.py: random BatchNorm statistics, attention gammas
    0.25..0.75, ...), with two changes:

    * OCNet's ``f_query`` takes ``f_key``'s value: in the reference they are one module (``self.f_query =
      self.f_key``), saved under both names.
    * The residual branches' last BatchNorm scale (``bn3.weight``) is 0.1..0.3 instead of 0.75..1.25 (the
      reference's ResNet has a ``last_gamma`` option that starts it at 0). With ~1 the 23 blocks of ResNet-101's
      layer3 grow activations from ~35 to ~4e6, the attention energies reach ~1e14 and every softmax is one-hot:
      an attention's scale would go untested, and float32 near-ties could flip it. With 0.1..0.3 the logits stay
      below ~200 and the attention is neither uniform nor one-hot (DANet's position attention: mean top
      probability ~0.5 over 259 positions).
    """
    shape = tuple(int(size) for size in shape)
    if key.endswith(".bn3.weight"):
        return (0.2 * (0.5 + seeded_uniform(key, int(np.prod(shape))))).astype(dtype).reshape(shape)
    return seeded_value(key.replace(".f_query.", ".f_key."), shape, dtype)


def seeded_input() -> np.ndarray:
    """The input image, ``INPUT_SHAPE`` float32."""
    return seeded_value("input", INPUT_SHAPE).astype(np.float32)


def output_samples(logits: np.ndarray) -> dict[str, np.ndarray]:
    """What is kept of the (1, C, 49, 289) logits. With align_corners=True, output row 8i / column 8j is exactly
    the head's logit (i, j) of the 7x37 map, so ``grid`` is every head logit; ``mid`` are points halfway between
    (every second column of them), where the interpolation weights count."""
    return {"grid": np.ascontiguousarray(logits[..., ::8, ::8]),
            "mid": np.ascontiguousarray(logits[..., 4::8, 4::16])}


@lru_cache(maxsize=None)
def key_layouts() -> dict[str, dict[str, list]]:
    """``{family: {state-dict key: [shape, dtype]}}``, the reference models' own state dicts, in their order."""
    with gzip.open(DATA / "key_layouts.json.gz", "rt") as file:
        return json.load(file)


@lru_cache(maxsize=None)
def reference_outputs() -> dict[str, np.ndarray]:
    """``<family>/grid``, ``<family>/mid`` (see ``output_samples``) and ``<family>/aux`` (the aux head's logits
    at c3's size, before the reference upsamples them), float32."""
    with np.load(DATA / "reference_outputs.npz") as data:
        return {key: data[key] for key in data.files}


@lru_cache(maxsize=None)
def _backbone_value(key: str, shape: tuple, dtype: str) -> np.ndarray:
    return seeded_reference_value(key, shape, dtype)


def _value(key: str, shape: tuple, dtype: str) -> np.ndarray:
    if key.startswith("base"):  # the ResNet-101 every family shares (~170 MB): made once, copied per use
        return _backbone_value(key, shape, dtype).copy()
    return seeded_reference_value(key, shape, dtype)


def seeded_state_dict(family: str) -> dict:
    """The state dict (the reference layout) that the reference model of ``family`` ran with, as torch tensors.
    The backbone's values are made once: the families share them."""
    import torch

    return {key: torch.from_numpy(_value(key, tuple(shape), dtype))
            for key, (shape, dtype) in key_layouts()[family].items()}


def max_difference(actual, expected: np.ndarray) -> tuple[float, float, float]:
    """(max |actual - expected|, allowed, scale): allowed is 1e-4 of the scale, the reference's largest magnitude
    (at least 1); random weights let activations grow through ResNet-101's residual stages."""
    import torch

    scale = max(1.0, float(np.abs(expected).max()))
    difference = float((actual.detach().float() - torch.from_numpy(expected)).abs().max())
    return difference, 1e-4 * scale, scale
