"""examples/evaluate.py's inference paths: int8 on ONNX Runtime calibrated on other images than the evaluated ones,
and ``--runtime auto`` measuring its candidates on the first evaluation images (the numerics of each path are
tested in tests/inference/test_runtimes.py; here the script's wiring)."""
from __future__ import annotations

import json

import pytest
import torch

import segzoo
from segzoo.testing import randomize_batch_norm
from support.scripts import check, make_folder_dataset, run_script


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate-paths")
    data = make_folder_dataset(root / "shapes", train=2, val=2)
    torch.manual_seed(0)
    model = randomize_batch_norm(segzoo.create_model("fcn_resnet18", num_classes=3, output_stride=16)).eval()
    segzoo.save_pretrained(model, root / "model")
    return root, data


def evaluate(root, data, name, *extra):
    result = check(run_script("evaluate.py", "--model", f"local-dir:{root / 'model'}", "--dataset", "folder",
                              "--data-root", data, "--split", "val", "--device", "cpu", "--workers", 0,
                              "--json", root / f"{name}.json", *extra))
    return result, json.loads((root / f"{name}.json").read_text())


# a repeated proof (slow tier): the paths in tests/inference/test_runtimes.py, the options in test_script_bad_inputs.py
@pytest.mark.slow
def test_int8_and_auto_through_evaluate(setup):
    root, data = setup
    result, int8 = evaluate(root, data, "int8", "--precision", "int8", "--calibration", data / "images" / "train")
    assert (int8["precision"], int8["runtime"]) == ("int8", "onnxruntime") and "int8 on onnxruntime" in result.stdout
    result, auto = evaluate(root, data, "auto", "--runtime", "auto", "--check-images", 1)
    assert "inference path: " in result.stdout and "eager/fp32" in result.stdout
    assert "onnxruntime/fp32" in result.stdout and auto["runtime"] in ("eager", "onnxruntime")
    assert auto["precision"] in ("fp32", "bf16")  # no calibration images: no int8 (bf16 only on a native-bf16 CPU)
    assert int8["num_pixels"] == auto["num_pixels"] > 0 and 0 <= int8["pixAcc"] <= 1
