"""What predict writes is never lost or half-written: each file through a temporary name, outputs that exist are
kept unless asked, an interrupted run resumes with --skip-existing, and a file-system failure is one line."""
from __future__ import annotations

import errno
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segzoo
from segzoo.errors import OutputError
from segzoo.inference.predict import predict

SEGZOO = str(Path(sysconfig.get_path("scripts")) / "segzoo")


def make_images(folder: Path, count: int, size: int = 48) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{index:03d}.png")
    return folder


@pytest.fixture(scope="module")
def model():
    return segzoo.create_model("fcn_test_resnet", num_classes=3, output_stride=32)


def test_existing_outputs_are_refused_kept_or_replaced(model, tmp_path):
    images, out = make_images(tmp_path / "images", 2), tmp_path / "out"
    predict(images, model, out_dir=out, progress=False)
    (out / "001_overlay.png").unlink()  # image 001 half done
    before = (out / "000_mask.png").stat().st_mtime_ns
    with pytest.raises(OutputError, match=r"out holds outputs of these images already \(000_mask.png, "
                                          r"000_overlay.png, 001_mask.png\).*--skip-existing"):
        predict(images, model, out_dir=out, existing="error")
    results = predict(images, model, out_dir=out, existing="skip", progress=False)
    assert [r.done for r in results] == [True, False] and (out / "001_overlay.png").is_file()
    assert (out / "000_mask.png").stat().st_mtime_ns == before  # the complete image was not run again
    predict(images, model, out_dir=out, existing="overwrite", progress=False)
    assert (out / "000_mask.png").stat().st_mtime_ns != before


def test_disk_full_and_below_a_file_name_the_users_path(model, tmp_path, monkeypatch):
    images = make_images(tmp_path / "images", 1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/out: .*file is a file, not a folder"):
        predict(images, model, out_dir=tmp_path / "file" / "out", progress=False)

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OutputError, match=r"cannot write .*out/000_mask.png: the disk is full$"):
        predict(images, model, out_dir=tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").iterdir())  # no temporary file left behind


def test_ctrl_c_leaves_whole_files_and_the_rerun_resumes(tmp_path):
    images, out = make_images(tmp_path / "images", 80, size=64), tmp_path / "out"
    command = [SEGZOO, "predict", str(images), "--model", "fcn_resnet18", "--num-classes", "21", "--out", str(out),
               "--device", "cpu", "--no-progress", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("*_overlay.png")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, (stdout, stderr)
    assert stderr.strip().count("\n") == 0 and "--skip-existing" in stderr and "Traceback" not in stderr, stderr
    written = sorted(out.glob("*.png"))
    assert written and not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".segzoo.lock"]
    for path in written:
        Image.open(path).load()  # every file reads back whole
    done = len(list(out.glob("*_overlay.png")))
    assert done < 80, "the run ended before the interrupt: give it more images"

    refused = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "--skip-existing" in refused.stderr and "Traceback" not in refused.stderr

    resumed = subprocess.run([*command, "--skip-existing"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{80 - done} written, {done} already done, 0 skipped" in resumed.stdout
    assert len(list(out.glob("*_overlay.png"))) == len(list(out.glob("*_mask.png"))) == 80
