"""Mask classification's loss: the Hungarian matching against brute force, the segments of a semantic mask, and the
loss on predictions that match the target exactly, permuted, or not at all."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from segzoo.train.losses.hungarian import linear_sum_assignment
from segzoo.train.losses.mask_classification import MaskClassificationLoss, point_sample, semantic_segments


def _brute_force(cost: np.ndarray) -> float:
    if cost.shape[0] > cost.shape[1]:
        return _brute_force(cost.T)
    rows, columns = cost.shape
    return min(sum(cost[i, p[i]] for i in range(rows)) for p in itertools.permutations(range(columns), rows))


def test_linear_sum_assignment_finds_the_minimum_of_every_small_matrix():
    rng = np.random.default_rng(0)
    for trial in range(200):
        rows, columns = rng.integers(1, 6, size=2)
        cost = rng.normal(size=(rows, columns)) if trial % 3 else rng.integers(0, 3, (rows, columns)).astype(float)
        r, c = linear_sum_assignment(cost)
        assert len(set(r.tolist())) == len(set(c.tolist())) == len(r) == min(rows, columns)
        assert list(r) == sorted(r) and cost[r, c].sum() == pytest.approx(_brute_force(cost), abs=1e-9)
    with pytest.raises(ValueError, match="NaN or infinite"):
        linear_sum_assignment([[0.0, float("nan")]])


def test_semantic_segments_and_point_sampling():
    mask = torch.tensor([[0, 0, 2], [255, 2, 2]])
    labels, masks = semantic_segments(mask, 255)
    assert labels.tolist() == [0, 2] and masks.sum((1, 2)).tolist() == [2.0, 3.0] and masks[:, 1, 0].sum() == 0
    maps = torch.arange(6.0).reshape(1, 1, 2, 3)
    centres = torch.tensor([[[1 / 6, 1 / 4], [5 / 6, 3 / 4]]])  # pixel centres (0, 0) and (1, 2)
    assert point_sample(maps, centres).flatten().tolist() == pytest.approx([0.0, 5.0], abs=1e-6)


def _outputs(target: torch.Tensor, classes: int, queries: int, order) -> dict:
    """Per-query outputs that predict ``target`` exactly: query ``order[i]`` the i-th segment (logits +-20), the rest
    "no object"."""
    labels, masks = semantic_segments(target[0], 255)
    class_logits = torch.full((1, queries, classes + 1), -20.0)
    class_logits[0, :, classes] = 20.0
    mask_logits = torch.full((1, queries, *target.shape[-2:]), -20.0)
    for i, query in enumerate(order[:len(labels)]):
        class_logits[0, query] = -20.0
        class_logits[0, query, labels[i]] = 20.0
        mask_logits[0, query] = masks[i] * 40.0 - 20.0
    return {"class_logits": class_logits, "mask_logits": mask_logits}


def test_an_exact_prediction_scores_the_same_in_any_query_order_and_far_below_wrong_ones():
    """Exact predictions leave only the segments' borders (where the mask losses sample most: their logits are the
    most uncertain, their targets fractional); classes shifted or masks inverted cost far more."""
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    target[0, 8:20, 4:28] = 3
    target[0, 24:, :] = 255
    loss = MaskClassificationLoss(num_classes=5, num_points=512)

    def value(outputs):
        torch.manual_seed(0)
        return loss(outputs, target).item()

    exact, permuted = value(_outputs(target, 5, 6, [0, 1])), value(_outputs(target, 5, 6, [4, 2]))
    assert permuted == pytest.approx(exact, rel=0.15)  # the matching finds the queries wherever they are
    wrong = _outputs(target, 5, 6, [0, 1])
    wrong["class_logits"] = wrong["class_logits"].roll(1, dims=2)  # every class shifted by one
    assert value(wrong) > exact + 50  # two classes and four "no object" misclassified by 40 logits, weight 2
    wrong = _outputs(target, 5, 6, [0, 1])
    wrong["mask_logits"] = -wrong["mask_logits"]  # masks inverted
    assert value(wrong) > 3 * exact


def test_deep_supervision_adds_every_intermediate_prediction_and_gradients_reach_them():
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 16, 16))
    class_logits = torch.randn(2, 5, 4, requires_grad=True)
    mask_logits = torch.randn(2, 5, 8, 8, requires_grad=True)
    aux = {"class_logits": torch.randn(2, 5, 4, requires_grad=True), "mask_logits": torch.randn(2, 5, 8, 8,
                                                                                               requires_grad=True)}
    loss = MaskClassificationLoss(num_classes=3, num_points=64)
    value = loss({"class_logits": class_logits, "mask_logits": mask_logits, "aux": [aux]}, target)
    value.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0
               for t in (class_logits, mask_logits, aux["class_logits"], aux["mask_logits"]))
    all_ignored = torch.full((2, 16, 16), 255)
    assert torch.isfinite(loss({"class_logits": class_logits, "mask_logits": mask_logits}, all_ignored))


def test_a_small_mask2former_overfits_one_batch_with_this_loss():
    """The head's training outputs (deep supervision on), the loss and AdamW, as train.py runs them: the loss falls."""
    from segzoo import create_model

    torch.manual_seed(0)
    model = create_model("mask2former_resnet18", num_classes=3, output_stride=32, aux=True, hidden_dim=32,
                         num_queries=8, decoder_layers=3, encoder_layers=1, dim_feedforward=64,
                         encoder_feedforward_dim=64, feature_size=32, mask_feature_size=32, num_heads=2).train()
    images = torch.randn(2, 3, 64, 64)
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    target[0, 10:40, 8:50], target[1, 30:, :20], target[1, :8] = 1, 2, 255
    criterion = MaskClassificationLoss(num_classes=3, num_points=256)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        outputs = model(images)
        assert set(outputs) == {"class_logits", "mask_logits", "aux"} and len(outputs["aux"]) == 2
        loss = criterion(outputs, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3, losses
