"""examples/finetune.py never replaces or mixes a model unasked: --out is locked while a run writes into it, a
finished fine-tune there is refused without --overwrite (checked under the lock), and an --out the file system
refuses is one line."""
from __future__ import annotations

import fcntl
import os

import pytest

from support.scripts import check, make_folder_dataset, run_script


def error_lines(result):
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def finetune(data, out, *extra):
    return run_script("finetune.py", "--data", data, "--model", "fcn_resnet18", "--iters", 1, "--batch-size", 1,
                      "--crop-size", 32, "--base-size", 40, "--out", out, *extra)


def test_a_finished_model_is_refused_then_replaced_with_overwrite(tmp_path):
    data, out = make_folder_dataset(tmp_path / "data", train=2, val=1), tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
    refused = finetune(data, out)
    lines = error_lines(refused)
    assert refused.returncode == 1 and len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "model exists (a finished fine-tune); pass --overwrite" in lines[0]
    assert (out / "model" / "config.json").read_text() == "{}"
    check(finetune(data, out, "--overwrite"))
    assert (out / "model" / "model.safetensors").is_file() and (out / "overlay.png").is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".finetune.lock"]


def test_a_second_run_into_an_out_in_use_is_refused_naming_the_first(tmp_path):
    data, out = make_folder_dataset(tmp_path / "data", train=2, val=1), tmp_path / "out"
    out.mkdir()
    with open(out / ".finetune.lock", "a+") as lock:  # held as a running finetune.py holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242\n")
        lock.flush()
        result = finetune(data, out)
    lines = error_lines(result)
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert f"--out {out} is in use by another run (process 4242)" in lines[0]
    assert os.listdir(out) == [".finetune.lock"]


def test_an_out_below_a_file_is_one_line(tmp_path):
    data = make_folder_dataset(tmp_path / "data", train=2, val=1)
    (tmp_path / "file").write_text("x")
    result = finetune(data, tmp_path / "file" / "out")
    lines = error_lines(result)
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].endswith("file is a file, not a folder"), lines[0]


def run_in_process(argv: list[str], monkeypatch) -> None:
    """finetune.py as `python examples/finetune.py ARGV` runs it, in this process (a failure can be injected)."""
    import runpy
    import sys

    from support.scripts import EXAMPLES

    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / "finetune.py"), *argv])
    runpy.run_path(str(EXAMPLES / "finetune.py"), run_name="__main__")


@pytest.mark.parametrize("failure", ["disk full", "Ctrl-C"])
def test_overwrite_failing_midway_leaves_the_old_model_loadable(failure, tmp_path, monkeypatch):
    """--overwrite replaced <out>/model file by file: a save that failed or was interrupted after the weights left
    new weights beside the old config.json, a model that no longer loaded."""
    import errno

    import segzoo
    from segzoo.config import ModelConfig

    data, out = make_folder_dataset(tmp_path / "data", train=2, val=1), tmp_path / "out"
    segzoo.save_pretrained(segzoo.create_model("fcn_test_resnet", num_classes=3), out / "model")
    (out / "overlay.png").write_bytes(b"the old run's overlay")
    before = {path.name: path.read_bytes() for path in (out / "model").iterdir()}

    def fail(self, path):  # the new weights are written, its config.json is not
        if failure == "Ctrl-C":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ModelConfig, "save", fail)
    with pytest.raises(SystemExit) as exit:
        run_in_process(["--data", str(data), "--model", "fcn_resnet18", "--iters", "1", "--batch-size", "1",
                        "--crop-size", "32", "--base-size", "40", "--device", "cpu", "--out", str(out),
                        "--overwrite"], monkeypatch)
    said = str(exit.value.code)
    assert "\n" not in said and "Traceback" not in said
    if failure == "Ctrl-C":
        assert said.startswith("interrupted: --out holds no new model"), said
    else:
        assert said == f"error: cannot write {out / 'model'}: the disk is full"
    assert {path.name: path.read_bytes() for path in (out / "model").iterdir()} == before
    assert (out / "overlay.png").read_bytes() == b"the old run's overlay"  # not the new run's beside the old model
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".finetune.lock"]
    monkeypatch.undo()
    assert segzoo.create_model(f"local-dir:{out / 'model'}").config.backbone == "test_resnet"
