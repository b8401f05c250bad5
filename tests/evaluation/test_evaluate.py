"""segzoo.evaluation.evaluate, the train/eval loaders' resumable order, train_step and the metrics log."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import segzoo
from segzoo.data import FolderDataset
from segzoo.evaluation import evaluate
from segzoo.inference import predict_logits
from segzoo.train import MetricsLog, build_optimizer, eval_loader, start_epoch, train_loader, train_step
from segzoo.train.losses import SegmentationLoss
from support.scripts import make_folder_dataset


def numpy_metrics(predictions, targets, num_classes, ignore_index=255):
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for prediction, target in zip(predictions, targets):
        keep = target != ignore_index
        matrix += np.bincount(target[keep] * num_classes + prediction[keep],
                              minlength=num_classes ** 2).reshape(num_classes, num_classes)
    inter = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - inter
    return inter.sum() / matrix.sum(), (inter[union > 0] / union[union > 0]).mean()


@pytest.mark.parametrize("scales, flip", [((1.0,), False), ((0.75, 1.25), True)])
def test_evaluate_matches_an_independent_computation(tmp_path, scales, flip):
    data = make_folder_dataset(tmp_path / "shapes", train=1, val=3)
    dataset = FolderDataset(data, split="val")
    torch.manual_seed(0)
    model = segzoo.create_model("fcn_resnet18", num_classes=3, output_stride=16)
    model.train()  # evaluate() switches to eval and back
    metrics = evaluate(model, eval_loader(dataset, workers=0), 3, scales=scales, flip=flip)
    assert model.training
    model.eval()
    predictions, targets = [], []
    for index in range(len(dataset)):
        image, mask = dataset[index]
        logits = predict_logits(model, image[None], scales=scales, flip=flip)
        predictions.append(logits.argmax(1)[0].numpy())
        targets.append(mask.numpy())
    pixel_accuracy, miou = numpy_metrics(predictions, targets, 3)
    assert metrics["pixAcc"] == pytest.approx(pixel_accuracy, abs=1e-12)
    assert metrics["mIoU"] == pytest.approx(miou, abs=1e-12)
    assert metrics["num_pixels"] == sum(int((t != 255).sum()) for t in targets)


class Indices(Dataset):
    """Item i is (i, i): the order a loader yields is visible."""

    def __len__(self):
        return 20

    def __getitem__(self, index):
        return torch.tensor(index), torch.tensor(index)


def epoch_order(loader, epoch, skip=0):
    start_epoch(loader, epoch, skip_batches=skip)
    return [images.tolist() for images, _ in loader]


def test_resumed_loader_goes_on_with_the_same_images():
    ranks = [train_loader(Indices(), 3, rank=rank, world_size=2, seed=7, workers=0) for rank in (0, 1)]
    full = [epoch_order(loader, epoch=4) for loader in ranks]
    assert len(full[0]) == len(full[1]) == 3  # 10 images per rank, batches of 3, the last one dropped
    seen = sorted(i for order in full for batch in order for i in batch)
    assert len(set(seen)) == len(seen) == 18  # the two ranks never share an image
    assert epoch_order(ranks[0], epoch=5) != full[0]  # reshuffled every epoch
    fresh = train_loader(Indices(), 3, rank=0, world_size=2, seed=7, workers=0)
    assert epoch_order(fresh, epoch=4, skip=1) == full[0][1:]  # a resumed run: the rest of the epoch
    assert epoch_order(fresh, epoch=4) == full[0]  # and the next start_epoch begins afresh


def test_eval_loader_covers_every_image_once_across_ranks():
    shards = [[i.item() for i, _ in eval_loader(Indices(), rank=r, world_size=3, workers=0)] for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(20))


def test_train_loader_rejects_a_batch_larger_than_the_shard():
    with pytest.raises(ValueError, match="fewer than the batch size 11"):
        train_loader(Indices(), 11, rank=0, world_size=2, workers=0)


def test_train_step_lowers_the_loss_and_refuses_nan(tmp_path):
    data = make_folder_dataset(tmp_path / "shapes", train=2, val=1)
    dataset = FolderDataset(data, split="train")
    images = torch.stack([dataset[i][0] for i in range(2)])
    masks = torch.stack([dataset[i][1] for i in range(2)])
    torch.manual_seed(0)
    model = segzoo.create_model("fcn_resnet18", num_classes=3, aux=True, output_stride=16).train()
    criterion = SegmentationLoss()
    optimizer = build_optimizer(model, 0.01)
    losses = [train_step(model, images, masks, criterion, optimizer).item() for _ in range(6)]
    assert losses[-1] < losses[0]
    with pytest.raises(FloatingPointError, match="the loss is nan"):
        train_step(model, images, masks, lambda outputs, target: outputs[0].sum() * math.nan, optimizer)


def test_metrics_log_appends_json_lines(tmp_path):
    log = MetricsLog(tmp_path / "run" / "metrics.jsonl")
    log.write(event="train", loss=torch.tensor(0.5), lr=1e-3)
    log.write(event="eval", mIoU=float("nan"), IoU=[0.5, None])
    MetricsLog(tmp_path / "run" / "metrics.jsonl").write(event="train", loss=0.25)  # a resumed run appends
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # strict JSON: NaN became null
    assert [r["event"] for r in records] == ["train", "eval", "train"]
    assert records[0]["loss"] == 0.5 and records[1]["mIoU"] is None and records[2]["loss"] == 0.25
    silent = MetricsLog(tmp_path / "other" / "metrics.jsonl", enabled=False)
    silent.write(event="train")
    assert not (tmp_path / "other").exists()
