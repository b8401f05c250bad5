"""Focal loss: cross entropy scaled by ``(1 - p_t) ** gamma``, so confidently right pixels count less.

- multiclass: softmax focal loss, ``-(1 - p_t) ** gamma * log(p_t)`` with ``p_t`` the softmax probability of the
  pixel's class; ``alpha`` is ``None`` or one factor per class, multiplying each pixel's term by the factor of its
  class (not normalised: the mean still divides by the pixel count, or by the labelled ``class_weight``).
- binary / multilabel: sigmoid focal loss of RetinaNet per ``(pixel, label)`` entry; ``alpha`` in [0, 1]
  multiplies positive entries by ``alpha`` and negative ones by ``1 - alpha`` (``None``: no balancing, as
  smp's default; RetinaNet uses 0.25).

The reduction is a mean over labelled entries, weighted like torch's CE ``weight=`` when ``class_weight`` is
given: ``sum(w * focal) / sum(w)``, ``w`` the weight of the entry's target class (multiclass) or label channel.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from ._common import Labels, SegmentationLossBase, as_weights, check_finite, check_weight_count, safe_divide


class FocalLoss(SegmentationLossBase):
    """Focal loss (Lin et al., 2017), mean over labelled pixels (see the module docstring for each mode).

    Args:
        mode: ``"multiclass"`` (softmax), ``"binary"`` or ``"multilabel"`` (sigmoid).
        ignore_index: Target value of unlabelled pixels (entries in multilabel mode).
        class_weight: One weight per class (label): weighted mean ``sum(w * focal) / sum(w)`` over labelled entries.
        gamma: Focusing exponent (0 gives cross entropy).
        alpha: multiclass: ``None`` or a sequence of ``C`` per-class factors; binary / multilabel: ``None`` or
            the weight of positives in [0, 1] (negatives get ``1 - alpha``).
    """

    def __init__(self, mode: str = "multiclass", *, ignore_index: int = 255,
                 class_weight: Sequence[float] | Tensor | None = None, gamma: float = 2.0,
                 alpha: float | Sequence[float] | None = None):
        super().__init__(mode, ignore_index, class_weight)
        self.gamma = check_finite(gamma, "gamma", 0.0)
        if alpha is None or self.mode != "multiclass":
            self.alpha = None if alpha is None else check_finite(alpha, "alpha", 0.0, 1.0)
            self.register_buffer("class_alpha", None, persistent=False)
        else:
            if isinstance(alpha, (int, float)):
                raise ValueError(f"alpha must be None or one factor per class in multiclass mode, got {alpha!r}")
            self.alpha = None
            self.register_buffer("class_alpha", as_weights(alpha, "alpha"), persistent=False)

    def extra_repr(self) -> str:
        alpha = self.alpha if self.class_alpha is None else [round(x, 6) for x in self.class_alpha.tolist()]
        return f"{super().extra_repr()}, gamma={self.gamma}, alpha={alpha}"

    def compute(self, labels: Labels) -> Tensor:
        logits = labels.logits
        if self.mode == "multiclass":
            check_weight_count(self.class_alpha, labels.num_classes, "alpha")
            log_pt = logits.log_softmax(dim=1).gather(1, labels.target.unsqueeze(1)).squeeze(1)
            ce = -log_pt
        else:
            ce = F.binary_cross_entropy_with_logits(logits, labels.target, reduction="none")
            log_pt = -ce
        # clamp: (1 - p_t) ** gamma has an infinite slope at p_t = 1 when gamma < 1 (it multiplies a zero CE).
        pixel_loss = (1.0 - log_pt.exp()).clamp_min(1e-12) ** self.gamma * ce
        if self.class_alpha is not None:
            pixel_loss = pixel_loss * self.class_alpha.to(logits.device)[labels.target]
        elif self.alpha is not None:
            pixel_loss = pixel_loss * (self.alpha * labels.target + (1 - self.alpha) * (1 - labels.target))
        weights = labels.pixel_weights(self.class_weight)
        return safe_divide((pixel_loss * weights).sum(), weights.sum())
