"""Cross entropy (softmax CE in multiclass mode, BCE with logits in binary / multilabel mode) and OHEM CE.

Both reduce to a weighted mean over labelled pixels with torch's ``weight=`` semantics: each term is
multiplied by the weight of its class and the sum is divided by the sum of the weights of the labelled terms,
so uniform weights (of any value) give the unweighted loss.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import Labels, SegmentationLossBase, check_finite, safe_divide, zero_loss


class CrossEntropyLoss(SegmentationLossBase):
    """Mean cross entropy over the labelled pixels.

    - multiclass: softmax cross entropy, ``F.cross_entropy`` with ``weight=class_weight``, ``reduction="mean"``.
    - binary / multilabel: binary cross entropy with logits of every labelled ``(pixel, label)`` entry.

    Args:
        mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
        ignore_index: Target value of unlabelled pixels (entries in multilabel mode).
        class_weight: One weight per class (label). The loss is ``sum(w * ce) / sum(w)`` over labelled entries,
            ``w`` being the weight of the entry's target class (multiclass, as torch's ``weight=``) or of its
            label channel (binary / multilabel; in binary mode the single weight cancels out).
        label_smoothing: ``eps`` in [0, 1]. Multiclass: torch's ``label_smoothing`` (target
            ``(1 - eps) * one_hot + eps / C``). Binary / multilabel: the two-class equivalent, target
            ``t * (1 - eps) + eps / 2``.
    """

    def __init__(self, mode: str = "multiclass", *, ignore_index: int = 255,
                 class_weight: Sequence[float] | Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__(mode, ignore_index, class_weight)
        self.label_smoothing = check_finite(label_smoothing, "label_smoothing", 0.0, 1.0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, label_smoothing={self.label_smoothing}"

    def compute(self, labels: Labels) -> Tensor:
        weights = None if self.class_weight is None else self.class_weight.to(labels.logits.device)
        if self.mode == "multiclass":
            # The sum divided by the labelled weight is torch's weighted "mean", minus its NaN on an empty batch.
            total = F.cross_entropy(labels.logits, labels.target.masked_fill(~labels.valid, self.ignore_index),
                                    weight=weights, ignore_index=self.ignore_index, reduction="sum",
                                    label_smoothing=self.label_smoothing)
            return safe_divide(total, labels.pixel_weights(weights).sum())
        target = labels.target
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + self.label_smoothing / 2
        pixel_loss = F.binary_cross_entropy_with_logits(labels.logits, target, reduction="none")
        pixel_weights = labels.pixel_weights(weights)
        return safe_divide((pixel_loss * pixel_weights).sum(), pixel_weights.sum())


class OhemCrossEntropy(SegmentationLossBase):
    """Online hard example mining cross entropy (multiclass only).

    Keeps the labelled pixels whose softmax probability of the true class is below ``threshold``; when
    fewer than ``min_kept`` pixels qualify, keeps the ``min_kept`` hardest labelled pixels (lowest
    true-class probability) instead. The loss is the mean cross entropy over the kept pixels.

    Args:
        threshold: Probability below which a pixel counts as hard. ``>= 1`` keeps every labelled pixel
            (plain cross entropy), even those predicted with probability exactly 1.
        min_kept: Minimum number of kept pixels: a float in (0, 1) is a fraction of ``N*H*W`` (rounded
            down; the reference uses 1/16), a number ``>= 1`` is a count. Capped at the number of
            labelled pixels. 0 disables the minimum.
        ignore_index: Target value of unlabelled pixels.
        mode: ``"multiclass"``; other modes raise ``ValueError`` (OHEM ranks pixels by their softmax probability).
        class_weight: One weight per class. Hardness (which pixels are kept) ignores the weights; the loss is
            then the weighted mean ``sum(w * ce) / sum(w)`` over the kept pixels, ``w`` the weight of the
            pixel's target class.
    """

    supported_modes = ("multiclass",)

    def __init__(self, threshold: float = 0.7, min_kept: float = 1 / 16, ignore_index: int = 255, *,
                 mode: str = "multiclass", class_weight: Sequence[float] | Tensor | None = None):
        super().__init__(mode, ignore_index, class_weight)
        if isinstance(threshold, bool) or not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        if isinstance(min_kept, bool) or not min_kept >= 0:
            raise ValueError(f"min_kept must be a fraction in [0, 1) or a count >= 1, got {min_kept!r}")
        self.threshold = float(threshold)
        self.min_kept = min_kept

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, min_kept={self.min_kept}, {super().extra_repr()}"

    def _min_kept_count(self, total: int) -> int:
        if self.min_kept < 1:
            return int(self.min_kept * total)
        return int(self.min_kept)

    def compute(self, labels: Labels) -> Tensor:
        target = labels.target.masked_fill(~labels.valid, self.ignore_index)
        pixel_loss = F.cross_entropy(labels.logits, target, ignore_index=self.ignore_index,
                                     reduction="none").flatten()
        labelled = labels.valid.flatten()
        if self.threshold >= 1:
            kept = labelled
        else:
            # p_true = exp(-CE): the same softmax probability, without a second softmax pass.
            kept = labelled & (torch.exp(-pixel_loss.detach()) < self.threshold)
            min_kept = min(self._min_kept_count(target.numel()), labels.num_labelled)
            if int(kept.sum()) < min_kept:
                ranking = pixel_loss.detach().masked_fill(~labelled, -1.0)  # CE >= 0, so unlabelled rank last
                hardest = torch.topk(ranking, min_kept, sorted=False).indices
                kept = torch.zeros_like(labelled)
                kept[hardest] = True
        num_kept = int(kept.sum())
        if num_kept == 0:
            return zero_loss(labels.logits)
        if self.class_weight is None:
            return pixel_loss[kept].sum() / num_kept
        weights = labels.pixel_weights(self.class_weight).flatten()[kept]
        return safe_divide((pixel_loss[kept] * weights).sum(), weights.sum())
