"""Soft Dice and (focal) Tversky losses: one overlap score per class over the whole batch, then a mean.

The definitions follow segmentation_models_pytorch (smp) so that recipes carry over unchanged:

- probabilities: softmax over classes (multiclass) or a sigmoid per channel (binary / multilabel);
- per class ``c``, over every labelled pixel of the batch: ``TP = sum(p * t)``, ``FP = sum(p * (1 - t))``,
  ``FN = sum((1 - p) * t)``;
- ``score_c = (TP + smooth) / max(TP + alpha * FP + beta * FN + smooth, eps)`` (Dice: ``alpha = beta = 0.5``,
  i.e. ``(2 TP + 2 smooth) / (sum(p) + sum(t) + 2 smooth)``);
- ``loss_c = 1 - score_c``, or ``-log(max(score_c, eps))`` with ``log_loss=True``;
- a class with no labelled target pixel in the batch has ``loss_c = 0`` (its Dice is undefined: 0/0 with
  ``smooth=0``), but still counts in the mean, which is over all ``C`` classes:
  ``loss = sum_c w_c * loss_c / sum_c w_c`` (``w_c = 1`` without ``class_weight``). So false positives of a
  class absent from the batch are not penalised by these losses; add a pixel-wise term (``"ce+dice"``) for that;
- Tversky raises the result to ``gamma`` (smp's focal Tversky: the exponent applies to the mean, not per class).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._common import Labels, SegmentationLossBase, check_finite, safe_divide


class _OverlapLoss(SegmentationLossBase):
    """Shared body of Dice and Tversky (Dice is Tversky with ``alpha = beta = 0.5`` and ``gamma = 1``)."""

    alpha = beta = 0.5
    gamma = 1.0

    def __init__(self, mode: str, ignore_index: int, class_weight: Sequence[float] | Tensor | None,
                 smooth: float, eps: float, log_loss: bool):
        super().__init__(mode, ignore_index, class_weight)
        self.smooth = check_finite(smooth, "smooth", 0.0)
        self.eps = check_finite(eps, "eps", 0.0)
        self.log_loss = bool(log_loss)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, smooth={self.smooth}, eps={self.eps}, log_loss={self.log_loss}"

    def compute(self, labels: Labels) -> Tensor:
        logits = labels.logits
        if self.mode == "multiclass":
            probs = logits.softmax(dim=1)
            target, valid = labels.one_hot(), labels.valid.unsqueeze(1)
        else:
            probs = logits.sigmoid()
            target, valid = labels.target, labels.valid
        probs = probs * valid  # ignored pixels predict nothing
        dims = (0, 2, 3)
        tp = (probs * target).sum(dims)
        fp = probs.sum(dims) - tp
        fn = target.sum(dims) - tp
        score = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth).clamp_min(self.eps)
        per_class = -torch.log(score.clamp_min(self.eps)) if self.log_loss else 1.0 - score
        per_class = per_class * (target.sum(dims) > 0)  # undefined for a class absent from the target (as smp)
        weights = torch.ones_like(per_class) if self.class_weight is None else self.class_weight.to(logits.device)
        loss = safe_divide((per_class * weights).sum(), weights.sum())
        if self.gamma == 1.0:
            return loss
        # d(x^gamma)/dx is infinite at 0 for gamma < 1: take the power only where the loss is positive.
        positive = loss > 0
        return torch.where(positive, torch.where(positive, loss, torch.ones_like(loss)) ** self.gamma, loss * 0.0)


class DiceLoss(_OverlapLoss):
    """Soft Dice loss, ``1 - Dice`` per class averaged over classes (see the module docstring for the formula).

    Args:
        mode: ``"multiclass"`` (softmax), ``"binary"`` or ``"multilabel"`` (sigmoid).
        ignore_index: Target value of unlabelled pixels (entries in multilabel mode); they are left out of the
            sums.
        class_weight: One weight per class (label): the loss is ``sum_c w_c * loss_c / sum_c w_c``.
        smooth: Added to the numerator and denominator of every class's score (smp's definition: 0 by default).
        eps: Lower bound of the denominator (and of the score with ``log_loss``).
        log_loss: ``-log(Dice)`` instead of ``1 - Dice``.
    """

    def __init__(self, mode: str = "multiclass", *, ignore_index: int = 255,
                 class_weight: Sequence[float] | Tensor | None = None, smooth: float = 0.0, eps: float = 1e-7,
                 log_loss: bool = False):
        super().__init__(mode, ignore_index, class_weight, smooth, eps, log_loss)


class TverskyLoss(_OverlapLoss):
    """Tversky loss (focal Tversky with ``gamma != 1``): Dice with weighted false positives and negatives.

    ``loss = (sum_c w_c * (1 - TP_c / (TP_c + alpha FP_c + beta FN_c)) / sum_c w_c) ** gamma`` (see the module
    docstring for smoothing and absent classes). ``alpha = beta = 0.5``, ``gamma = 1`` is the Dice loss.

    Args:
        mode: ``"multiclass"`` (softmax), ``"binary"`` or ``"multilabel"`` (sigmoid).
        ignore_index: Target value of unlabelled pixels (entries in multilabel mode).
        class_weight: One weight per class (label), weighting the per-class losses before the exponent.
        alpha: Weight of false positives.
        beta: Weight of false negatives (``beta > alpha`` favours recall).
        gamma: Exponent of the averaged loss (smp's focal Tversky); ``< 1`` emphasises small losses.
        smooth: Added to the numerator and denominator of every class's score.
        eps: Lower bound of the denominator (and of the score with ``log_loss``).
        log_loss: ``-log(Tversky index)`` per class instead of ``1 - index``.
    """

    def __init__(self, mode: str = "multiclass", *, ignore_index: int = 255,
                 class_weight: Sequence[float] | Tensor | None = None, alpha: float = 0.5, beta: float = 0.5,
                 gamma: float = 1.0, smooth: float = 0.0, eps: float = 1e-7, log_loss: bool = False):
        super().__init__(mode, ignore_index, class_weight, smooth, eps, log_loss)
        self.alpha = check_finite(alpha, "alpha", 0.0)
        self.beta = check_finite(beta, "beta", 0.0)
        self.gamma = check_finite(gamma, "gamma", 0.0)
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}"
