"""From logits to masks, as the model's task says: argmax (multiclass) or sigmoid > threshold (binary, multilabel)."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["decode_logits", "main_output"]


def main_output(out) -> Tensor:
    """The logits of a model's output: the tensor itself, the ``"out"`` entry of a dict (torchvision's
    ``{"out": ..., "aux": ...}``; else its first value), or the first element of a tuple or list."""
    if isinstance(out, dict):
        return out["out"] if "out" in out else next(iter(out.values()))
    return out[0] if isinstance(out, (tuple, list)) else out


def decode_logits(logits: Tensor, mode: str = "multiclass", threshold: float = 0.5) -> Tensor:
    """The predicted masks of ``(N, C, H, W)`` logits.

    Args:
        logits: The model's (test-time averaged) logits.
        mode: ``"multiclass"``: the class of the largest logit, ``(N, H, W)`` int64. ``"binary"``: 1 where the
            single channel's sigmoid is above ``threshold``, ``(N, H, W)`` uint8. ``"multilabel"``: the same per
            channel, ``(N, C, H, W)`` uint8.
        threshold: The probability above which a pixel has the label (binary, multilabel).
    """
    if mode == "multiclass":
        return logits.argmax(1)
    if mode not in ("binary", "multilabel"):
        raise ValueError(f"mode must be 'multiclass', 'binary' or 'multilabel', got {mode!r}")
    # sigmoid(x) > t  <=>  x > logit(t): no sigmoid over the whole tensor, and exact at t = 0.5 (x > 0)
    cut = torch.logit(torch.tensor(float(threshold), dtype=torch.float64)).item()
    masks = (logits.float() > cut).to(torch.uint8)
    return masks[:, 0] if mode == "binary" else masks
