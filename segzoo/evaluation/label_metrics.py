"""Metrics of binary and multi-label segmentation: per label, IoU, Dice (= F1), precision and recall at a threshold.

Each label is a yes / no decision per pixel. The counts (true / false positives and negatives over the labelled
pixels) are summed over the whole data set, and over every process with ``all_reduce``, before any ratio is taken,
so the numbers do not depend on how the set is batched or sharded. Dice and F1 are the same number for pixel
masks (``2 TP / (2 TP + FP + FN)``); both keys are given because both names are asked for.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..distributed import all_reduce_sum_

__all__ = ["LabelMetrics"]


def _ratio(numerator: float, denominator: float):
    return numerator / denominator if denominator > 0 else None


def _mean(values: list) -> float:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else math.nan


class LabelMetrics:
    """Streaming per-label counts of binary (one label) or multi-label predictions.

    Args:
        num_labels: Number of labels (1 for binary segmentation).
        ignore_index: Target value of unlabelled pixels (per label), skipped.
        threshold: Probability above which a pixel has the label, applied to logits given to ``update``.
        device: Device the counts live on (default CPU).
    """

    def __init__(self, num_labels: int, ignore_index: int = 255, threshold: float = 0.5,
                 device: torch.device | str | None = None):
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be an integer >= 1, got {num_labels!r}")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold!r}")
        self.num_labels = num_labels
        self.ignore_index = ignore_index
        self.threshold = float(threshold)
        # rows: labels; columns: true positives, false positives, false negatives, true negatives
        self.counts = torch.zeros(num_labels, 4, dtype=torch.int64,
                                  device=torch.device(device) if device is not None else None)

    @property
    def device(self) -> torch.device:
        return self.counts.device

    def reset(self) -> None:
        self.counts.zero_()

    def update(self, prediction: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            prediction: Logits (float) or 0/1 decisions (integer or bool), ``(N, L, H, W)``; for one label also
                ``(N, H, W)``.
            target: 0 / 1 / ``ignore_index``, the same shape (binary: ``(N, H, W)`` against ``(N, 1, H, W)``
                logits is accepted).

        Raises:
            ValueError: The shapes differ, there is another number of labels, or the target holds other values.
        """
        if prediction.dim() == 4 and target.dim() == 3 and self.num_labels == 1:
            target = target[:, None]
        if prediction.dim() == 3 and self.num_labels == 1:
            prediction = prediction[:, None]
        if target.dim() == 3 and self.num_labels == 1:
            target = target[:, None]
        if prediction.shape != target.shape or prediction.dim() != 4:
            raise ValueError(f"prediction shape {tuple(prediction.shape)} does not match target shape "
                             f"{tuple(target.shape)} (expected (N, {self.num_labels}, H, W))")
        if prediction.shape[1] != self.num_labels:
            raise ValueError(f"prediction has {prediction.shape[1]} labels, the metrics {self.num_labels}")
        if prediction.is_floating_point():
            predicted = torch.sigmoid(prediction.float()) > self.threshold
        else:
            predicted = prediction != 0
        target = target.to(torch.int64)
        labelled = target != self.ignore_index
        bad = labelled & (target != 0) & (target != 1)
        if bool(bad.any()):
            values = sorted(torch.unique(target[bad]).tolist())
            raise ValueError(f"target has values {values[:10]} that are neither 0, 1 nor the ignore index "
                             f"{self.ignore_index}")
        truth = target == 1
        dims = (0, 2, 3)
        counts = torch.stack([
            (predicted & truth & labelled).sum(dims),
            (predicted & ~truth & labelled).sum(dims),
            (~predicted & truth & labelled).sum(dims),
            (~predicted & ~truth & labelled).sum(dims),
        ], dim=1)
        self.counts += counts.to(self.device)

    def all_reduce(self) -> "LabelMetrics":
        """Sum the counts over all ranks in place (no-op without a process group of more than one rank)."""
        all_reduce_sum_(self.counts)
        return self

    def compute(self) -> dict:
        """The metrics over everything added.

        Returns:
            Per label (lists, None where undefined: no positive in prediction nor target): ``IoU``, ``Dice``,
            ``F1`` (= Dice), ``precision``, ``recall``; their means over the defined labels ``mIoU``, ``mDice``,
            ``mF1``; ``pixAcc`` (the fraction of labelled (pixel, label) decisions that are right) and
            ``num_pixels`` (labelled pixels, summed over labels).
        """
        tp, fp, fn, tn = (column.tolist() for column in self.counts.double().cpu().unbind(1))
        iou = [_ratio(t, t + p + n) for t, p, n in zip(tp, fp, fn)]
        dice = [_ratio(2 * t, 2 * t + p + n) for t, p, n in zip(tp, fp, fn)]
        precision = [_ratio(t, t + p) for t, p in zip(tp, fp)]
        recall = [_ratio(t, t + n) for t, n in zip(tp, fn)]
        total = float(self.counts.sum())
        correct = sum(tp) + sum(tn)
        return {
            "pixAcc": correct / total if total > 0 else math.nan,
            "mIoU": _mean(iou), "mDice": _mean(dice), "mF1": _mean(dice),
            "IoU": iou, "Dice": dice, "F1": list(dice), "precision": precision, "recall": recall,
            "num_pixels": int(total),
        }
