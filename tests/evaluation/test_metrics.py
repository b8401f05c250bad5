"""ConfusionMatrix and format_metrics_table, checked against an independent numpy computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segzoo.evaluation.metrics import ConfusionMatrix, format_metrics_table

IGNORE = 255


def _batches(num_classes: int, count: int = 3, seed: int = 0):
    """Random (prediction, target) label maps with ~10% ignore pixels."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        target = torch.randint(0, num_classes, (2, 9, 11), generator=generator)
        target[torch.rand(target.shape, generator=generator) < 0.1] = IGNORE
        prediction = torch.randint(0, num_classes, (2, 9, 11), generator=generator)
        yield prediction, target


def _numpy_metrics(pairs, num_classes: int):
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for prediction, target in pairs:
        p, t = prediction.numpy().ravel(), target.numpy().ravel()
        keep = t != IGNORE
        matrix += np.bincount(t[keep] * num_classes + p[keep], minlength=num_classes ** 2).reshape(num_classes, -1)
    inter = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - inter
    iou = [inter[c] / union[c] if union[c] else None for c in range(num_classes)]
    present = [value for value in iou if value is not None]
    return matrix, {"pixAcc": inter.sum() / matrix.sum(), "mIoU": float(np.mean(present)), "IoU": iou,
                    "num_pixels": int(matrix.sum())}


def _assert_metrics_equal(got: dict, want: dict) -> None:
    assert got["num_pixels"] == want["num_pixels"]
    assert got["pixAcc"] == pytest.approx(want["pixAcc"])
    assert got["mIoU"] == pytest.approx(want["mIoU"])
    assert [v is None for v in got["IoU"]] == [v is None for v in want["IoU"]]
    assert [v for v in got["IoU"] if v is not None] == pytest.approx([v for v in want["IoU"] if v is not None])


def test_accumulates_like_numpy():
    pairs = list(_batches(5))
    metric = ConfusionMatrix(5)
    for prediction, target in pairs:
        metric.update(prediction, target)
    matrix, want = _numpy_metrics(pairs, 5)
    assert metric.matrix.dtype == torch.int64
    np.testing.assert_array_equal(metric.matrix.numpy(), matrix)
    _assert_metrics_equal(metric.compute(), want)


def test_logits_are_argmaxed():
    pairs = list(_batches(4, count=2, seed=1))
    metric = ConfusionMatrix(4)
    for prediction, target in pairs:
        logits = torch.nn.functional.one_hot(prediction, 4).permute(0, 3, 1, 2).float() * 3 - 1
        metric.update(logits.to(torch.bfloat16), target)
    np.testing.assert_array_equal(metric.matrix.numpy(), _numpy_metrics(pairs, 4)[0])


def test_absent_class_is_none_and_excluded_from_miou():
    target = torch.tensor([[[0, 0, 1, IGNORE]]])
    prediction = torch.tensor([[[0, 1, 1, 2]]])  # class 2 predicted only on an ignored pixel; class 3 nowhere
    metric = ConfusionMatrix(4)
    metric.update(prediction, target)
    result = metric.compute()
    assert result["IoU"] == [pytest.approx(0.5), pytest.approx(0.5), None, None]
    assert result["mIoU"] == pytest.approx(0.5)  # the reference would report (0.5 + 0.5 + 0 + 0) / 4
    assert result["pixAcc"] == pytest.approx(2 / 3)
    assert result["num_pixels"] == 3
    table = format_metrics_table(result, ["bg", "cat", "dog", "bird"])
    assert "mIoU:   50.00" in table and "pixAcc: 66.67" in table
    assert [line.split() for line in table.splitlines()[-4:]] == [["bg", "50.00"], ["cat", "50.00"],
                                                                  ["dog", "-"], ["bird", "-"]]


def test_empty_and_reset():
    metric = ConfusionMatrix(3)
    metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), IGNORE))
    result = metric.compute()
    assert math.isnan(result["pixAcc"]) and math.isnan(result["mIoU"]) and result["num_pixels"] == 0
    assert "pixAcc: -" in format_metrics_table(result)
    metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    assert metric.compute()["pixAcc"] == 1.0
    metric.reset()
    assert int(metric.matrix.sum()) == 0


def test_errors_name_values_and_shapes():
    metric = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"target has values \[3, 7\]"):
        metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 3], [7, IGNORE]]]))
    with pytest.raises(ValueError, match=r"\(1, 2, 2\).*\(1, 3, 2\)"):
        metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="logits have 4 classes"):
        metric.update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"prediction has values \[5\]"):
        metric.update(torch.full((1, 2, 2), 5), torch.zeros(1, 2, 2, dtype=torch.long))
    assert int(metric.matrix.sum()) == 0  # nothing half-added


def test_all_reduce_without_group_is_a_no_op():
    metric = ConfusionMatrix(2)
    metric.update(torch.ones(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.long))
    assert metric.all_reduce() is metric and int(metric.matrix[1, 1]) == 4


def _all_reduce_worker(rank: int, world_size: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        pairs = list(_batches(5, count=4, seed=3))
        metric = ConfusionMatrix(5)
        for prediction, target in pairs[rank::world_size]:  # every rank sees different data
            metric.update(prediction, target)
        assert metric.all_reduce() is metric
        np.testing.assert_array_equal(metric.matrix.numpy(), _numpy_metrics(pairs, 5)[0])
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_over_two_gloo_ranks(tmp_path):
    mp.spawn(_all_reduce_worker, args=(2, str(tmp_path / "rendezvous")), nprocs=2, join=True)
