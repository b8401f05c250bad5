"""Segmentation losses: cross entropy, OHEM, Dice, focal, Lovasz, Tversky, their weighted sums, and the training
criteria ``SegmentationLoss`` (main plus weighted aux outputs) and ``MaskClassificationLoss`` (Mask2Former's
Hungarian-matched class, mask and dice losses on per-query outputs, which the conventions below do not cover).

Conventions shared by every loss (``_common.py``):

- ``mode``: ``"multiclass"`` (logits ``(N, C, H, W)``, target ``(N, H, W)`` class indices), ``"binary"``
  (logits ``(N, 1, H, W)``, target ``(N, H, W)`` of 0/1) or ``"multilabel"`` (logits and target
  ``(N, C, H, W)``, target 0/1 per channel);
- target entries equal to ``ignore_index`` (255 by default) add nothing to the value or the gradient, and a
  batch with no labelled entry gives a loss of 0 that still back-propagates (instead of NaN);
- the math runs in float32 whatever the logits' dtype (autocast is turned off inside), and the result is a
  float32 scalar;
- ``class_weight``: one weight per class (label), checked against ``C`` at forward time. Every loss uses it in a
  mean normalised by the weights (pixel-wise losses: ``sum(w * loss) / sum(w)`` over labelled entries, as torch's
  CE ``weight=``; Dice / Tversky / Lovasz: the same over the per-class losses), so uniform weights change nothing
  and in binary mode (one channel) the single weight cancels out. See each loss for the details.
"""
from .combined import LOSSES, CombinedLoss, build_loss
from .cross_entropy import CrossEntropyLoss, OhemCrossEntropy
from .dice import DiceLoss, TverskyLoss
from .focal import FocalLoss
from .lovasz import LovaszLoss
from .mask_classification import MaskClassificationLoss
from .segmentation import SegmentationLoss

__all__ = [
    "LOSSES",
    "CombinedLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "LovaszLoss",
    "MaskClassificationLoss",
    "OhemCrossEntropy",
    "SegmentationLoss",
    "TverskyLoss",
    "build_loss",
]
