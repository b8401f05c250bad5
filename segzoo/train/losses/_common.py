"""What every segzoo loss shares: the three target modes, their validation, float32 math and the empty batch.

Every loss turns ``(logits, target)`` into a :class:`Labels` first, so the conventions live in one place:

- ``"multiclass"``: logits ``(N, C, H, W)``, target ``(N, H, W)`` integer class indices.
- ``"binary"``: logits ``(N, 1, H, W)``, target ``(N, H, W)`` with values 0/1.
- ``"multilabel"``: logits ``(N, C, H, W)``, target ``(N, C, H, W)`` with values 0/1 per channel.

In every mode a target value equal to ``ignore_index`` marks an unlabelled pixel (or, in multilabel mode, an
unlabelled pixel of one label), which contributes nothing to the value or the gradient.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

MODES = ("multiclass", "binary", "multilabel")


def check_mode(mode: str, supported: Sequence[str] = MODES, loss: str = "this loss") -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if mode not in supported:
        raise ValueError(f"{loss} supports mode={' or '.join(map(repr, supported))} only, got mode={mode!r}")
    return mode


def check_ignore_index(ignore_index: int) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise ValueError(f"ignore_index must be an int, got {ignore_index!r}")
    return ignore_index


def as_weights(weights: Sequence[float] | Tensor | None, name: str = "class_weight") -> Tensor | None:
    """One non-negative float per class as a float32 tensor (``None`` stays ``None``)."""
    if weights is None:
        return None
    try:
        tensor = torch.as_tensor(weights, dtype=torch.float32).detach().clone()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a sequence of floats, one per class, got {weights!r}") from None
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(f"{name} must be a non-empty sequence of floats, one per class, got {weights!r}")
    if not bool(torch.isfinite(tensor).all()) or bool((tensor < 0).any()) or not float(tensor.sum()) > 0:
        raise ValueError(f"{name} must hold finite weights >= 0 that are not all 0, got {tensor.tolist()}")
    return tensor


def check_weight_count(weights: Tensor | None, num_classes: int, name: str = "class_weight") -> None:
    if weights is not None and weights.numel() != num_classes:
        raise ValueError(f"{name} has {weights.numel()} weights but the logits have {num_classes} "
                         f"class{'es' if num_classes != 1 else ''}")


def zero_loss(logits: Tensor) -> Tensor:
    """A float32 zero that keeps the graph connected, so backward() and DDP's gradient hooks still run."""
    return logits.float().sum() * 0.0


def safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, 0 where the denominator is 0 (nothing labelled) instead of NaN."""
    return numerator / torch.where(denominator > 0, denominator, torch.ones_like(denominator))


@dataclass
class Labels:
    """A validated batch.

    Attributes:
        logits: float32 ``(N, C, H, W)``.
        target: multiclass: int64 ``(N, H, W)`` with ignored pixels set to class 0; binary / multilabel: float32
            ``(N, C, H, W)`` of 0/1 with ignored entries set to 0 (so they can be multiplied by ``valid``).
        valid: bool, the target's shape: True where labelled.
        num_labelled: number of True in ``valid``.
    """

    logits: Tensor
    target: Tensor
    valid: Tensor
    num_labelled: int

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    def one_hot(self) -> Tensor:
        """Multiclass only: float32 ``(N, C, H, W)`` one-hot target, 0 at ignored pixels."""
        one_hot = torch.nn.functional.one_hot(self.target, self.num_classes).permute(0, 3, 1, 2)
        return one_hot.float() * self.valid.unsqueeze(1)

    def pixel_weights(self, weights: Tensor | None) -> Tensor:
        """The weight of every target entry (the weight of its class / label), 0 where ignored."""
        if weights is None:
            return self.valid.float()
        weights = weights.to(self.logits.device)
        if self.target.dim() == 3:  # multiclass
            return weights[self.target] * self.valid
        return weights.view(1, -1, 1, 1) * self.valid


def prepare(logits: Tensor, target: Tensor, mode: str, ignore_index: int) -> Labels:
    """Check shapes and values against ``mode`` (one-line ``ValueError``s) and return the batch in float32.

    One host sync (the value check and the count of labelled pixels are read together).
    """
    if logits.dim() != 4:
        raise ValueError(f"expected logits of shape (N, C, H, W), got {tuple(logits.shape)}")
    n, c, h, w = logits.shape
    if not logits.is_floating_point():
        raise ValueError(f"expected floating-point logits, got {logits.dtype}")
    if mode == "multiclass":
        if target.shape != (n, h, w):
            raise ValueError(f"expected a target of shape (N, H, W) = {(n, h, w)}, got {tuple(target.shape)}")
        if target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(f"expected an integer target of class indices, got {target.dtype}")
        valid = target != ignore_index
        bad = valid & ((target < 0) | (target >= c))
        expected = f"class indices in [0, {c}) or ignore_index={ignore_index}"
    else:
        if mode == "binary" and c != 1:
            raise ValueError(f"expected logits of shape (N, 1, H, W) in binary mode, got {tuple(logits.shape)}")
        shape = (n, h, w) if mode == "binary" else (n, c, h, w)
        if target.shape != shape:
            dims = "(N, H, W)" if mode == "binary" else "(N, C, H, W)"
            raise ValueError(f"expected a target of shape {dims} = {shape} in {mode} mode, got {tuple(target.shape)}")
        if mode == "binary":
            target = target.unsqueeze(1)
        valid = target != ignore_index
        bad = valid & (target != 0) & (target != 1)
        expected = f"0, 1 or ignore_index={ignore_index}"
    num_bad, num_labelled = torch.stack([bad.sum(), valid.sum()]).tolist()
    if num_bad:
        value = target[bad][0].item()
        raise ValueError(f"expected target values {expected} in {mode} mode, got {value}")
    if mode == "multiclass":
        target = target.long().masked_fill(~valid, 0)
    else:
        target = target.float().masked_fill(~valid, 0.0)
    return Labels(logits.float(), target, valid, num_labelled)


class SegmentationLossBase(nn.Module):
    """Base of segzoo's losses: validation, autocast off (float32 math), ``class_weight`` as a buffer.

    Subclasses implement ``compute(labels) -> float32 scalar``; it is only called when at least one entry is
    labelled (an empty batch gives a zero that back-propagates).
    """

    supported_modes: tuple[str, ...] = MODES

    def __init__(self, mode: str = "multiclass", ignore_index: int = 255,
                 class_weight: Sequence[float] | Tensor | None = None):
        super().__init__()
        self.mode = check_mode(mode, self.supported_modes, type(self).__name__)
        self.ignore_index = check_ignore_index(ignore_index)
        # Not persistent: a loss is configuration, not state to save in a checkpoint.
        self.register_buffer("class_weight", as_weights(class_weight), persistent=False)

    def extra_repr(self) -> str:
        weights = None if self.class_weight is None else [round(x, 6) for x in self.class_weight.tolist()]
        return f"mode={self.mode!r}, ignore_index={self.ignore_index}, class_weight={weights}"

    def compute(self, labels: Labels) -> Tensor:
        raise NotImplementedError

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            logits: ``(N, C, H, W)`` logits at the target's size (``(N, 1, H, W)`` in binary mode), any float dtype.
            target: multiclass: ``(N, H, W)`` integer class indices; binary: ``(N, H, W)`` of 0/1; multilabel:
                ``(N, C, H, W)`` of 0/1 (integer, or float holding 0/1); ``ignore_index`` where unlabelled.

        Returns:
            A float32 scalar; 0 (still back-propagating) when no pixel is labelled.
        """
        # No op of today's losses has an autocast low-precision kernel, but turning autocast off here keeps
        # a future one (a matmul, a dot) in float32 too; the inputs are cast to float32 in prepare().
        with torch.autocast(logits.device.type, enabled=False):
            labels = prepare(logits, target, self.mode, self.ignore_index)
            check_weight_count(self.class_weight, labels.num_classes)
            if labels.num_labelled == 0:
                return zero_loss(logits)
            return self.compute(labels)


def check_finite(value: float, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not low <= value <= high):
        bounds = (f" in [{low}, {high}]" if math.isfinite(low) and math.isfinite(high)
                  else f" >= {low}" if math.isfinite(low) else "")
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")
    return float(value)
