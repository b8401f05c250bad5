"""Mask classification's training loss (Mask2Former; Cheng et al., CVPR 2022): each image's segments (one per class
present in its semantic mask) matched one-to-one to the queries by the Hungarian algorithm, then a class loss on
every query (unmatched ones: "no object") and mask losses on the matched pairs, at sampled points; the same for every
intermediate prediction of the decoder (deep supervision).

As Mask2Former computes it: matching cost ``2 * class + 5 * mask + 5 * dice`` (class: minus the softmax probability
of the segment's class; mask: sigmoid cross entropy and dice at ``num_points`` points drawn uniformly, the same for
the predictions and the segments); losses with the same weights: cross entropy over the classes and "no object"
(weight 0.1), and for matched pairs sigmoid cross entropy and dice at points chosen by uncertainty (3 times
``num_points`` drawn, the 75% whose logits are nearest 0 kept, the rest random), each summed over the batch's
matched segments and divided by their count.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from .hungarian import linear_sum_assignment

__all__ = ["MaskClassificationLoss", "point_sample", "semantic_segments"]


def point_sample(maps: Tensor, points: Tensor) -> Tensor:
    """Bilinear values of ``maps`` (N, C, H, W) at ``points`` (N, P, 2) given as (x, y) in [0, 1] (pixel areas, as
    ``align_corners=False`` reads them): (N, C, P)."""
    return F.grid_sample(maps, 2.0 * points[:, :, None] - 1.0, mode="bilinear", align_corners=False)[..., 0]


def semantic_segments(mask: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """A semantic mask (H, W) as its segments: the classes present (T,) and one binary mask per class (T, H, W);
    unlabelled pixels belong to none."""
    labels = torch.unique(mask)
    labels = labels[labels != ignore_index]
    return labels, (mask[None] == labels[:, None, None]).float()


def _dice(probabilities: Tensor, targets: Tensor) -> Tensor:
    """Per row of (M, P) probabilities and targets: 1 - (2 sum(p t) + 1) / (sum p + sum t + 1)."""
    return 1.0 - (2.0 * (probabilities * targets).sum(-1) + 1.0) / (probabilities.sum(-1) + targets.sum(-1) + 1.0)


class MaskClassificationLoss(nn.Module):
    """The loss of a mask classification head's per-query outputs against semantic masks.

    Args:
        num_classes: The classes (the class logits have one more: "no object").
        ignore_index: Target value of unlabelled pixels.
        class_weight: The class term's weight, in the loss and in the matching cost (2).
        mask_weight: The mask (sigmoid cross entropy) term's (5).
        dice_weight: The dice term's (5).
        no_object_weight: The weight of "no object" in the class loss.
        num_points: Points sampled per mask.
        oversample_ratio: Candidate points drawn per kept point for the mask losses (3).
        importance_sample_ratio: The share of the kept points that are the most uncertain candidates (0.75).

    ``forward(outputs, target)``: ``outputs`` as the head gives them in training (``{"class_logits": (N, Q, K + 1),
    "mask_logits": (N, Q, h, w), "aux": [{...}, ...]}``), ``target`` (N, H, W) class indices.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, class_weight: float = 2.0,
                 mask_weight: float = 5.0, dice_weight: float = 5.0, no_object_weight: float = 0.1,
                 num_points: int = 12544, oversample_ratio: float = 3.0, importance_sample_ratio: float = 0.75):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        if not 0 <= importance_sample_ratio <= 1 or oversample_ratio < 1 or num_points < 1:
            raise ConfigError("num_points must be >= 1, oversample_ratio >= 1 and importance_sample_ratio in [0, 1]")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.weights = (class_weight, mask_weight, dice_weight)
        self.num_points, self.oversample_ratio = num_points, oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        class_weights = torch.ones(num_classes + 1)
        class_weights[-1] = no_object_weight
        self.register_buffer("class_weights", class_weights, persistent=False)

    @torch.no_grad()
    def match(self, class_logits: Tensor, mask_logits: Tensor, labels: Tensor, masks: Tensor
              ) -> tuple[Tensor, Tensor]:
        """One image's (query indices, segment indices) of the minimum-cost matching."""
        if labels.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=class_logits.device)
            return empty, empty
        class_cost = -class_logits.softmax(-1)[:, labels]  # (Q, T)
        points = torch.rand(1, self.num_points, 2, device=mask_logits.device)
        logits = point_sample(mask_logits[None], points)[0]  # (Q, P)
        targets = point_sample(masks[None], points)[0]  # (T, P)
        positive = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
        negative = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
        mask_cost = (positive @ targets.T + negative @ (1 - targets).T) / self.num_points
        probabilities = logits.sigmoid()
        dice_cost = 1.0 - (2.0 * probabilities @ targets.T + 1.0) / (
            probabilities.sum(-1)[:, None] + targets.sum(-1)[None, :] + 1.0)
        class_weight, mask_weight, dice_weight = self.weights
        cost = class_weight * class_cost + mask_weight * mask_cost + dice_weight * dice_cost
        queries, segments = linear_sum_assignment(cost.float().cpu().numpy())
        device = class_logits.device
        return torch.as_tensor(queries, device=device), torch.as_tensor(segments, device=device)

    def _uncertain_points(self, logits: Tensor) -> Tensor:
        """(M, P, 2) points per mask: the most uncertain of ``oversample_ratio * P`` random ones, plus random."""
        count = logits.shape[0]
        candidates = torch.rand(count, int(self.num_points * self.oversample_ratio), 2, device=logits.device)
        uncertainty = -point_sample(logits, candidates)[:, 0].abs()
        kept = int(self.importance_sample_ratio * self.num_points)
        chosen = uncertainty.topk(kept, dim=1).indices
        points = torch.gather(candidates, 1, chosen[..., None].expand(-1, -1, 2))
        extra = torch.rand(count, self.num_points - kept, 2, device=logits.device)
        return torch.cat([points, extra], dim=1)

    def _terms(self, class_logits: Tensor, mask_logits: Tensor, segments: list[tuple[Tensor, Tensor]]) -> Tensor:
        batch, queries = class_logits.shape[:2]
        matches = [self.match(class_logits[i], mask_logits[i], labels, masks)
                   for i, (labels, masks) in enumerate(segments)]
        targets = torch.full((batch, queries), self.num_classes, dtype=torch.long, device=class_logits.device)
        for i, ((query, segment), (labels, _)) in enumerate(zip(matches, segments)):
            targets[i, query] = labels[segment]
        class_loss = F.cross_entropy(class_logits.float().transpose(1, 2), targets, weight=self.class_weights)
        predicted = torch.cat([mask_logits[i, query] for i, (query, _) in enumerate(matches)])
        wanted = torch.cat([segments[i][1][segment] for i, (_, segment) in enumerate(matches)])
        class_weight, mask_weight, dice_weight = self.weights
        if predicted.shape[0] == 0:  # no labelled pixel in the batch: the class loss alone (every query "no object")
            return class_weight * class_loss + 0.0 * mask_logits.sum()
        predicted = predicted.float()[:, None]
        with torch.no_grad():
            points = self._uncertain_points(predicted)
        logits = point_sample(predicted, points)[:, 0]
        targets_at = point_sample(wanted[:, None], points)[:, 0]
        count = float(predicted.shape[0])
        mask_loss = F.binary_cross_entropy_with_logits(logits, targets_at, reduction="none").mean(1).sum() / count
        dice_loss = _dice(logits.sigmoid(), targets_at).sum() / count
        return class_weight * class_loss + mask_weight * mask_loss + dice_weight * dice_loss

    def forward(self, outputs: Mapping[str, Any], target: Tensor) -> Tensor:
        with torch.autocast(target.device.type, enabled=False):
            segments = [semantic_segments(mask, self.ignore_index) for mask in target]
            loss = self._terms(outputs["class_logits"], outputs["mask_logits"], segments)
            for aux in outputs.get("aux", ()):  # deep supervision: every intermediate prediction, weight 1
                loss = loss + self._terms(aux["class_logits"], aux["mask_logits"], segments)
        return loss
