"""LabelMetrics (binary / multi-label IoU, Dice, precision, recall) against a direct numpy computation, on one
process and summed over two gloo ranks; decode_logits; the table."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segzoo.evaluation import LabelMetrics, format_metrics_table
from segzoo.inference.decode import decode_logits

IGNORE = 255


def batches(labels: int, count: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        logits = torch.randn(2, labels, 5, 7, generator=generator)
        target = torch.randint(0, 2, (2, labels, 5, 7), generator=generator)
        target[torch.rand(target.shape, generator=generator) < 0.2] = IGNORE
        yield logits, target


def numpy_metrics(pairs, threshold: float) -> dict:
    """Per label, over every pair: counts, then the ratios; written out without LabelMetrics' code."""
    logits = np.concatenate([p.numpy() for p, _ in pairs]).astype(np.float64)
    target = np.concatenate([t.numpy() for _, t in pairs])
    predicted = 1 / (1 + np.exp(-logits)) > threshold
    result = {"IoU": [], "Dice": [], "precision": [], "recall": []}
    correct = total = 0
    for label in range(logits.shape[1]):
        keep = target[:, label] != IGNORE
        p, t = predicted[:, label][keep], target[:, label][keep] == 1
        tp, fp, fn = np.sum(p & t), np.sum(p & ~t), np.sum(~p & t)
        result["IoU"].append(tp / (tp + fp + fn) if tp + fp + fn else None)
        result["Dice"].append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None)
        result["precision"].append(tp / (tp + fp) if tp + fp else None)
        result["recall"].append(tp / (tp + fn) if tp + fn else None)
        correct += np.sum(p == t)
        total += keep.sum()
    result["pixAcc"] = correct / total
    return result


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
def test_multilabel_matches_numpy(threshold):
    pairs = list(batches(3, count=3, seed=0))
    metric = LabelMetrics(3, threshold=threshold)
    for logits, target in pairs:
        metric.update(logits, target)
    got, expected = metric.compute(), numpy_metrics(pairs, threshold)
    for key in ("IoU", "Dice", "precision", "recall"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert got["F1"] == got["Dice"] and got["mIoU"] == pytest.approx(np.mean(expected["IoU"]))
    assert got["pixAcc"] == pytest.approx(expected["pixAcc"])


def test_binary_accepts_one_channel_logits_and_plain_targets():
    logits = torch.tensor([[[[2.0, -2.0], [0.5, -0.5]]]])  # (1, 1, 2, 2)
    target = torch.tensor([[[1, 1], [0, IGNORE]]])          # (1, 2, 2)
    metric = LabelMetrics(1)
    metric.update(logits, target)
    decoded = decode_logits(logits, "binary")
    assert decoded.shape == (1, 2, 2) and decoded.tolist() == [[[1, 0], [1, 0]]]
    metric.update(decoded, target)  # decisions as well as logits
    result = metric.compute()  # per update: tp 1, fn 1, fp 1 -> IoU 1/3, Dice 1/2
    assert result["IoU"] == [pytest.approx(1 / 3)] and result["Dice"] == [pytest.approx(0.5)]
    assert result["num_pixels"] == 6
    table = format_metrics_table(result, ["road"])
    assert "mDice:  50.00" in table and table.splitlines()[-1].split() == ["road", "33.33", "50.00", "50.00", "50.00"]


def test_absent_label_is_none_and_errors_name_the_problem():
    metric = LabelMetrics(2)
    metric.update(torch.full((1, 2, 2, 2), -5.0), torch.zeros(1, 2, 2, 2, dtype=torch.long))
    result = metric.compute()
    assert result["IoU"] == [None, None] and math.isnan(result["mIoU"]) and result["pixAcc"] == 1.0
    with pytest.raises(ValueError, match=r"target has values \[2\] that are neither 0, 1 nor the ignore index"):
        metric.update(torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 2))
    with pytest.raises(ValueError, match=r"prediction has 3 labels, the metrics 2"):
        metric.update(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2, dtype=torch.long))


def test_decode_threshold_is_exact():
    logits = torch.logit(torch.tensor([0.29, 0.31, 0.5, 0.51]))[None, :, None, None]
    assert decode_logits(logits, "multilabel", threshold=0.3).flatten().tolist() == [0, 1, 1, 1]
    assert decode_logits(logits, "multiclass").flatten().tolist() == [3]


def _worker(rank: int, world_size: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        pairs = list(batches(2, count=4, seed=5))
        metric = LabelMetrics(2)
        for logits, target in pairs[rank::world_size]:
            metric.update(logits, target)
        got, expected = metric.all_reduce().compute(), numpy_metrics(pairs, 0.5)
        assert got["IoU"] == pytest.approx(expected["IoU"]) and got["pixAcc"] == pytest.approx(expected["pixAcc"])
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_over_two_gloo_ranks(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous")), nprocs=2, join=True)


def test_predict_writes_binary_and_multilabel_masks(tmp_path):
    """Binary: one 0/1 palette PNG; multi-label: one per label, named after it; the .npy holds the same 0/1 masks,
    equal to sigmoid(logits) > threshold of the model run directly."""
    from PIL import Image

    import segzoo
    from segzoo.inference.image_io import load_image, to_tensor

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    torch.manual_seed(0)
    for mode, classes, names in (("binary", 1, None), ("multilabel", 3, ("cat", "dog/ish", "sky"))):
        model = segzoo.create_model("fcn_resnet18", num_classes=classes, mode=mode, output_stride=16)
        with torch.no_grad():
            logits = model(to_tensor(load_image(tmp_path / "photo.png"), model.config.mean, model.config.std))[0]
        probabilities = torch.sigmoid(logits)
        # random weights give probabilities near 0.5: split them in half, midway between two neighbouring values so
        # that no pixel sits on the threshold (where float rounding of sigmoid vs logit could tip it)
        ordered = probabilities.flatten().double().sort().values
        middle = len(ordered) // 2
        threshold = float((ordered[middle] + ordered[middle + 1]) / 2)
        model.config = model.config.replace(threshold=threshold, class_names=names)
        expected = (probabilities > threshold).to(torch.uint8).numpy()
        expected = expected[0] if mode == "binary" else expected
        assert 0.2 < expected.mean() < 0.8
        out = tmp_path / mode
        result = segzoo.predict(tmp_path / "photo.png", model, out_dir=out, save_npy=True, progress=False)[0]
        np.testing.assert_array_equal(result.mask, expected)
        np.testing.assert_array_equal(np.load(out / "photo.npy"), expected)
        if mode == "binary":
            assert sorted(p.name for p in out.iterdir()) == ["photo.npy", "photo_mask.png", "photo_overlay.png"]
            np.testing.assert_array_equal(np.asarray(Image.open(out / "photo_mask.png")), expected)
        else:
            assert sorted(p.name for p in out.iterdir()) == [
                "photo.npy", "photo_cat_mask.png", "photo_dog_ish_mask.png", "photo_overlay.png", "photo_sky_mask.png"]
            np.testing.assert_array_equal(np.asarray(Image.open(out / "photo_sky_mask.png")), expected[2])
