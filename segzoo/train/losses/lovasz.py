"""Lovasz losses (Berman et al., 2018): convex surrogates of the Jaccard loss (1 - IoU) of each class.

For one class over a set of pixels, sort the pixel errors ``e`` in decreasing order; the loss is
``sum_i e_(i) * (J(i) - J(i - 1))`` where ``J(i) = i / |gt ∪ {first i pixels}|`` is the Jaccard loss of
getting the ``i`` worst pixels wrong (Lovasz extension of the Jaccard loss).

- multiclass: Lovasz-softmax, errors ``|[y = c] - softmax_c|``, averaged over the classes present in the
  labelled target (``classes="present"``);
- binary: Lovasz hinge, errors ``1 - logit * (2 y - 1)`` (the hinge ``max(e, 0)`` enters the sum);
- multilabel: the binary Lovasz hinge of every label channel, averaged over the labels with a labelled pixel
  (smp instead pools all channels into one binary problem).

``per_image=True`` computes the loss of every image and averages over the images with a labelled pixel
(smp counts an all-ignored image as a 0 in binary mode); otherwise the batch is one set of pixels.
``class_weight`` turns the mean over classes (labels) into ``sum_c w_c * loss_c / sum_c w_c`` over the same
classes.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import Labels, SegmentationLossBase, safe_divide


def _lovasz_extension(errors: Tensor, fg: Tensor, valid: Tensor) -> Tensor:
    """Lovasz extension of the Jaccard loss along dim 1 of ``(G, P, K)`` tensors -> ``(G, K)``.

    Ignored entries are sorted last (after every labelled one), so they change no prefix set and, multiplied by
    ``valid``, add nothing: this keeps the computation batched instead of selecting pixels per group.
    """
    key = errors.detach().masked_fill(~valid, float("-inf"))
    order = key.argsort(dim=1, descending=True)
    errors, fg, valid = (x.gather(1, order) for x in (errors, fg, valid.float()))
    gts = fg.sum(dim=1, keepdim=True)
    # |gt ∪ prefix| >= 1 always (a prefix adds a non-gt pixel when gts = 0), so no division by zero.
    jaccard = 1.0 - (gts - fg.cumsum(dim=1)) / (gts + (1.0 - fg).cumsum(dim=1))
    slopes = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    return (errors * valid * slopes).sum(dim=1)


class LovaszLoss(SegmentationLossBase):
    """Lovasz-softmax (multiclass) or Lovasz hinge (binary, multilabel per label) loss.

    See the module docstring for the definitions and how ignored pixels, absent classes and ``per_image`` are
    handled.

    Args:
        mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
        ignore_index: Target value of unlabelled pixels (entries in multilabel mode).
        class_weight: One weight per class (label): weighted mean over the present classes (labelled labels).
        per_image: Average the loss of each image instead of treating the batch as one image.
    """

    def __init__(self, mode: str = "multiclass", *, ignore_index: int = 255,
                 class_weight: Sequence[float] | Tensor | None = None, per_image: bool = False):
        super().__init__(mode, ignore_index, class_weight)
        self.per_image = bool(per_image)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, per_image={self.per_image}"

    def compute(self, labels: Labels) -> Tensor:
        logits = labels.logits
        n, k = logits.shape[:2]
        groups = n if self.per_image else 1

        def grouped(x: Tensor) -> Tensor:  # (N, K, H, W) -> (G, P, K)
            return x.movedim(1, -1).reshape(groups, -1, x.shape[1])

        if self.mode == "multiclass":
            fg = grouped(labels.one_hot())
            valid = grouped(labels.valid.unsqueeze(1)).expand_as(fg)
            errors = (fg - grouped(logits.softmax(dim=1))).abs()
            counted = fg.sum(dim=1) > 0  # classes present in the group
            losses = _lovasz_extension(errors, fg, valid)
        else:
            fg, valid = grouped(labels.target), grouped(labels.valid)
            errors = 1.0 - grouped(logits) * (2.0 * fg - 1.0)
            counted = valid.any(dim=1)  # labels with a labelled pixel in the group
            # Sorting the hinges max(e, 0) instead of the raw errors (as the paper does) changes only the order of
            # zero hinges, which add nothing: same value, same gradient.
            losses = _lovasz_extension(F.relu(errors), fg, valid)
        weights = (torch.ones(k, device=logits.device) if self.class_weight is None
                   else self.class_weight.to(logits.device))
        weights = weights * counted
        per_group = safe_divide((losses * weights).sum(dim=1), weights.sum(dim=1))
        group_counted = counted.any(dim=1).float()
        return safe_divide((per_group * group_counted).sum(), group_counted.sum())

