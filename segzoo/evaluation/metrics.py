"""Segmentation metrics accumulated over a whole data set: a confusion matrix, pixel accuracy and mIoU.

IoU of class c is ``inter_c / union_c`` summed over the whole set (not averaged per image). mIoU averages
it over the classes with ``union_c > 0``, i.e. the classes that appear in the ground truth or in the
predictions: a class that is absent from both says nothing about the model. The reference implementation
counts such classes as IoU 0 instead, which lowers mIoU on subsets that lack some classes (on a full
VOC / Cityscapes / ADE20K validation set every class appears, and both agree).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..distributed import all_reduce_sum_

__all__ = ["ConfusionMatrix", "format_metrics_table"]


class ConfusionMatrix:
    """A ``(num_classes, num_classes)`` int64 confusion matrix; rows are ground truth, columns predictions.

    Args:
        num_classes: Number of classes.
        ignore_index: Target value of unlabelled pixels, skipped.
        device: Device the matrix lives on (default CPU); updates are moved there after the argmax.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64,
                                  device=torch.device(device) if device is not None else None)

    @property
    def device(self) -> torch.device:
        """The device the matrix lives on."""
        return self.matrix.device

    def reset(self) -> None:
        """Zero the matrix."""
        self.matrix.zero_()

    def update(self, prediction: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            prediction: Class labels ``(N, H, W)``, or logits ``(N, C, H, W)`` (argmax over C).
            target: Ground truth ``(N, H, W)``; pixels equal to ``ignore_index`` are skipped.

        Raises:
            ValueError: The shapes differ, the logits have another number of classes, or a target or
                predicted label is outside ``[0, num_classes)`` (and not ``ignore_index``).
        """
        if prediction.dim() == target.dim() + 1:
            if prediction.shape[1] != self.num_classes:
                raise ValueError(f"logits have {prediction.shape[1]} classes (shape {tuple(prediction.shape)}), "
                                 f"the confusion matrix {self.num_classes}")
            prediction = prediction.argmax(dim=1)
        if prediction.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(prediction.shape)} does not match target shape "
                             f"{tuple(target.shape)}")
        if prediction.is_floating_point() or target.is_floating_point():
            raise ValueError(f"expected integer labels, got prediction {prediction.dtype} and target {target.dtype}")
        prediction = prediction.to(self.device, torch.int64).flatten()
        target = target.to(self.device, torch.int64).flatten()
        labelled = target != self.ignore_index
        bad = labelled & ((target < 0) | (target >= self.num_classes))
        if bool(bad.any()):
            values = sorted(torch.unique(target[bad]).tolist())
            raise ValueError(f"target has values {values[:10]} outside [0, {self.num_classes}) that are not "
                             f"the ignore index {self.ignore_index}")
        target, prediction = target[labelled], prediction[labelled]
        bad = (prediction < 0) | (prediction >= self.num_classes)
        if bool(bad.any()):
            values = sorted(torch.unique(prediction[bad]).tolist())
            raise ValueError(f"prediction has values {values[:10]} outside [0, {self.num_classes})")
        counts = torch.bincount(target * self.num_classes + prediction, minlength=self.num_classes ** 2)
        self.matrix += counts.view(self.num_classes, self.num_classes)

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the matrix over all ranks in place when a process group with more than one rank exists.

        Returns:
            ``self``.
        """
        all_reduce_sum_(self.matrix)
        return self

    def compute(self) -> dict:
        """Pixel accuracy and IoU.

        Returns:
            ``{"pixAcc": float, "mIoU": float, "IoU": [float | None per class], "num_pixels": int}``.
            ``IoU`` is None for classes with an empty union (absent from ground truth and prediction);
            mIoU averages the others. With no labelled pixel, pixAcc and mIoU are nan.
        """
        matrix = self.matrix.double().cpu()
        correct = matrix.diagonal()
        union = matrix.sum(0) + matrix.sum(1) - correct
        total = float(matrix.sum())
        iou = [float(c / u) if u > 0 else None for c, u in zip(correct.tolist(), union.tolist())]
        present = [value for value in iou if value is not None]
        return {
            "pixAcc": float(correct.sum()) / total if total > 0 else math.nan,
            "mIoU": sum(present) / len(present) if present else math.nan,
            "IoU": iou,
            "num_pixels": int(self.matrix.sum()),
        }


def format_metrics_table(metrics: dict, class_names: Sequence[str] | None = None) -> str:
    """Format ``ConfusionMatrix.compute()`` (or ``LabelMetrics.compute()``) results as text: pixAcc, mIoU (and
    mDice) and a per-class IoU (and Dice, precision, recall) table.

    Args:
        metrics: The dict ``ConfusionMatrix.compute()`` or ``LabelMetrics.compute()`` returns.
        class_names: One name per class (default: the class indices).

    Returns:
        The table, percentages with two decimals; classes absent from ground truth and predictions
        are shown as ``-``.
    """
    iou = list(metrics.get("IoU", []))
    if class_names is None:
        class_names = [str(index) for index in range(len(iou))]
    elif len(class_names) != len(iou):
        raise ValueError(f"{len(class_names)} class names for {len(iou)} classes")

    def percent(value) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"

    columns = [name for name in ("IoU", "Dice", "precision", "recall") if name in metrics]
    lines = [f"pixAcc: {percent(metrics.get('pixAcc'))}", f"mIoU:   {percent(metrics.get('mIoU'))}"]
    if "mDice" in metrics:
        lines.append(f"mDice:  {percent(metrics.get('mDice'))}  (= mF1)")
    if "num_pixels" in metrics:
        lines.append(f"pixels: {metrics['num_pixels']}")
    width = max([len("class"), *(len(name) for name in class_names)])
    header = "  ".join(f"{name + ' %':>11}" for name in columns)
    lines += ["", f"{'class':<{width}}  {header}", f"{'-' * width}  " + "  ".join("-" * 11 for _ in columns)]
    for index, name in enumerate(class_names):
        cells = "  ".join(f"{percent(metrics[column][index]):>11}" for column in columns)
        lines.append(f"{name:<{width}}  {cells}")
    return "\n".join(lines)
