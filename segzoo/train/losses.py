"""Segmentation losses of the reference recipe: cross entropy on the main and aux outputs, optionally OHEM.

Both losses compute in float32 whatever the logits' dtype (bf16 / fp16 under autocast), and a batch
with no labelled pixel gives a loss of 0 that still back-propagates (instead of the NaN that
``F.cross_entropy`` returns), so a crop made only of padding cannot poison a training run.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["OhemCrossEntropy", "SegmentationLoss"]


def _zero_loss(logits: Tensor) -> Tensor:
    # Keeps the graph connected so that backward() and DDP's gradient hooks still run.
    return logits.float().sum() * 0.0


def _check_target(logits: Tensor, target: Tensor) -> None:
    if logits.dim() != 4:
        raise ValueError(f"expected logits of shape (N, C, H, W), got {tuple(logits.shape)}")
    if target.dim() != 3 or target.shape[0] != logits.shape[0]:
        raise ValueError(f"expected a target of shape (N, H, W) with N={logits.shape[0]}, got {tuple(target.shape)}")


class OhemCrossEntropy(nn.Module):
    """Online hard example mining cross entropy.

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
    """

    def __init__(self, threshold: float = 0.7, min_kept: float = 1 / 16, ignore_index: int = 255):
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        if isinstance(min_kept, bool) or not min_kept >= 0:
            raise ValueError(f"min_kept must be a fraction in [0, 1) or a count >= 1, got {min_kept!r}")
        self.threshold = float(threshold)
        self.min_kept = min_kept
        self.ignore_index = ignore_index

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, min_kept={self.min_kept}, ignore_index={self.ignore_index}"

    def _min_kept_count(self, total: int) -> int:
        if self.min_kept < 1:
            return int(self.min_kept * total)
        return int(self.min_kept)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            logits: ``(N, C, H, W)`` logits at the target's size.
            target: ``(N, H, W)`` int64 class indices, ``ignore_index`` for unlabelled pixels.

        Returns:
            A float32 scalar.
        """
        _check_target(logits, target)
        pixel_loss = F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index,
                                     reduction="none").flatten()
        labelled = (target != self.ignore_index).flatten()
        num_labelled = int(labelled.sum())
        if num_labelled == 0:
            return _zero_loss(logits)
        if self.threshold >= 1:
            kept = labelled
        else:
            # p_true = exp(-CE): the same softmax probability, without a second softmax pass.
            kept = labelled & (torch.exp(-pixel_loss.detach()) < self.threshold)
            min_kept = min(self._min_kept_count(target.numel()), num_labelled)
            if int(kept.sum()) < min_kept:
                ranking = pixel_loss.detach().masked_fill(~labelled, -1.0)  # CE >= 0, so unlabelled rank last
                hardest = torch.topk(ranking, min_kept, sorted=False).indices
                kept = torch.zeros_like(labelled)
                kept[hardest] = True
        num_kept = int(kept.sum())
        if num_kept == 0:
            return _zero_loss(logits)
        return pixel_loss[kept].sum() / num_kept


class _CrossEntropy(nn.Module):
    """Mean cross entropy over labelled pixels, in float32, 0 (with grad) when none is labelled."""

    def __init__(self, ignore_index: int = 255):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        _check_target(logits, target)
        total = F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index, reduction="sum")
        count = (target != self.ignore_index).sum()
        return total / count.clamp(min=1)


class SegmentationLoss(nn.Module):
    """Cross entropy of the main output plus weighted cross entropy of the aux outputs.

    ``loss = CE(main) + sum_i aux_weight_i * CE(aux_i)``.

    Args:
        aux_weight: Weight of every aux output (a float), or one weight per aux output (a sequence).
        ignore_index: Target value of unlabelled pixels.
        ohem: Use ``OhemCrossEntropy`` for every term instead of plain cross entropy.
        ohem_threshold: ``OhemCrossEntropy``'s ``threshold``.
        ohem_min_kept: ``OhemCrossEntropy``'s ``min_kept``.
    """

    def __init__(self, aux_weight: float | Sequence[float] = 0.4, ignore_index: int = 255, ohem: bool = False,
                 ohem_threshold: float = 0.7, ohem_min_kept: float = 1 / 16):
        super().__init__()
        self.aux_weight = aux_weight if isinstance(aux_weight, (int, float)) else tuple(aux_weight)
        self.ignore_index = ignore_index
        self.ohem = ohem
        self.criterion = (OhemCrossEntropy(ohem_threshold, ohem_min_kept, ignore_index) if ohem
                          else _CrossEntropy(ignore_index))

    def extra_repr(self) -> str:
        return f"aux_weight={self.aux_weight}, ignore_index={self.ignore_index}, ohem={self.ohem}"

    def _aux_weights(self, num_aux: int) -> Sequence[float]:
        if isinstance(self.aux_weight, (int, float)):
            return [float(self.aux_weight)] * num_aux
        if len(self.aux_weight) != num_aux:
            raise ValueError(f"aux_weight has {len(self.aux_weight)} weights but the model returned "
                             f"{num_aux} aux output(s)")
        return self.aux_weight

    def forward(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            outputs: Logits ``(N, C, H, W)``, or ``(main, *aux)`` as models return them in training mode.
                Logits of another size than the target are resized bilinearly (``align_corners=True``,
                segzoo's default) first.
            target: ``(N, H, W)`` int64 class indices, ``ignore_index`` for unlabelled pixels.

        Returns:
            A float32 scalar.
        """
        outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        if not outputs:
            raise ValueError("no outputs to compute a loss of")
        weights = [1.0, *self._aux_weights(len(outputs) - 1)]
        size = target.shape[-2:]
        loss = None
        for weight, logits in zip(weights, outputs):
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
            term = self.criterion(logits, target)
            loss = term if loss is None else loss + weight * term
        return loss
