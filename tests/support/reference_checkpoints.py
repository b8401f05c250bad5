"""Random checkpoints in the reference zoo's key layout, from the key lists of its real checkpoints
(``tests/reference_data/reference-keys``: every key with its shape and dtype)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

KEYS_DIR = Path(__file__).resolve().parents[1] / "reference_data" / "reference-keys"
FILES = {"fcn_jpu": "fcn_r50_jpu_aux", "psp_d8": "psp_r50_d8_aux", "psp_jpu": "psp_r50_jpu_aux",
         "deeplabv3_jpu": "deeplabv3_r50_jpu_aux", "danet_jpu": "danet_r50_jpu_aux",
         "ocnet_base_jpu": "ocnet_base_r50_jpu_aux", "ocnet_asp_jpu": "ocnet_asp_r50_jpu_aux"}


def is_query_copy(key: str) -> bool:
    return ".f_query." in key


def random_state(kind: str, layer3_blocks: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of the reference layout, scaled so that a forward pass stays finite."""
    layout = json.loads((KEYS_DIR / f"{FILES[kind]}.keys.json").read_text())
    if layer3_blocks != 6:  # a ResNet-101 checkpoint: base2.6.. are shaped like base2.5
        extra = {key.replace("base2.5.", f"base2.{i}.", 1): spec for i in range(6, layer3_blocks)
                 for key, spec in layout.items() if key.startswith("base2.5.")}
        layout = {**layout, **extra}
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in layout.items():
        if dtype == "torch.int64":
            state[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            fan_in = max(1, torch.Size(shape[1:]).numel())
            state[key] = torch.randn(shape, generator=gen) / fan_in ** 0.5
    for key in filter(is_query_copy, layout):  # one shared module in the reference
        state[key] = state[key.replace(".f_query.", ".f_key.")].clone()
    return state
