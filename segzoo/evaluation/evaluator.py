"""Evaluate a model over a dataset: pixAcc, per-class IoU and mIoU, single or multi-scale, on 1 or N processes.

Each process runs its shard of the dataset (``ShardedSampler`` with no padding, so nothing is counted
twice) into a streaming confusion matrix; the matrices are summed across processes before the metrics are
computed, so 1 and N processes give the same numbers.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
from torch import nn

from ..inference.decode import decode_logits
from ..inference.tta import Size, predict_logits
from .label_metrics import LabelMetrics
from .metrics import ConfusionMatrix

__all__ = ["evaluate"]


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model  # DistributedDataParallel


def evaluate(model: nn.Module, batches: Iterable, num_classes: int, *, device: torch.device | str = "cpu",
             ignore_index: int = 255, scales: Sequence[float] = (1.0,), flip: bool = False,
             window: Optional[Size] = None, stride: Optional[Size] = None, resize: Optional[Sequence[int]] = None,
             progress: bool = False, mode: Optional[str] = None, threshold: Optional[float] = None) -> dict:
    """Run ``model`` over ``batches`` of ``(images, masks)`` and return the metrics over all of them.

    Args:
        model: A segmentation model (a ``DistributedDataParallel`` wrapper is unwrapped: evaluation needs no
            gradient synchronisation). It is put in eval mode and left in the mode it was in.
        batches: An iterable of ``(images (N, 3, H, W) normalised, masks (N, H, W) int64)``, e.g. a DataLoader
            over a dataset with ``EvalTransform``; under DDP each process passes its own shard.
        num_classes: Number of classes of the dataset (of labels: binary 1, multilabel C).
        device: Where to run.
        ignore_index: Mask value that is not scored.
        scales: Test-time scales, averaged (see ``segzoo.inference.predict_logits``).
        flip: Also average the left-right mirrored prediction.
        window: Sliding-window size (None: whole images).
        stride: Sliding-window stride (default 2/3 of the window).
        resize: (long, short) bounds each image is first rescaled to fit (mmseg's test resize; the logits are
            scored at the image's own size). ``segzoo.inference.tta.recipe_options(config)`` gives a model's
            ``window``, ``stride`` and ``resize``.
        progress: Show a progress bar (pass True on the main process only).
        mode: The task (default: the model's ``config.mode``). Binary and multilabel masks are ``(N, H, W)`` /
            ``(N, C, H, W)`` of 0 / 1 / ``ignore_index``.
        threshold: The probability above which a pixel has a label (default: the model's ``config.threshold``).

    Returns:
        Multiclass: ``ConfusionMatrix.compute()`` of the confusion matrix summed over every process: ``pixAcc``,
        ``mIoU`` (over the classes present in the ground truth or the predictions), per-class ``IoU`` and
        ``num_pixels``. Binary / multilabel: ``LabelMetrics.compute()`` (IoU, Dice = F1, precision, recall per
        label at ``threshold``), summed over every process likewise.
    """
    model = _unwrap(model)
    config = getattr(model, "config", None)
    mode = mode or getattr(config, "mode", "multiclass")
    threshold = threshold if threshold is not None else getattr(config, "threshold", 0.5)
    was_training = model.training
    model.eval()
    if mode == "multiclass":
        matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
    else:
        matrix = LabelMetrics(num_classes, ignore_index=ignore_index, threshold=threshold, device=device)
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="evaluate", leave=False, dynamic_ncols=True)
    try:
        for images, masks in batches:
            images = images.to(device, non_blocking=True)
            masks = masks.to(device, non_blocking=True)
            logits = predict_logits(model, images, scales=scales, flip=flip, window=window, stride=stride,
                                    resize=resize)
            matrix.update(decode_logits(logits, mode, threshold), masks)
    finally:
        model.train(was_training)
    return matrix.all_reduce().compute()
