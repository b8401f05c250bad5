"""save_pretrained and atomic_write: a failure is one OutputError naming the user's path and its cause, an
interrupted save leaves no half model, and nothing temporary is left behind."""
from __future__ import annotations

import errno
from pathlib import Path

import pytest

import segzoo
from segzoo.errors import OutputError
from segzoo.weights import checkpoint
from segzoo.weights.checkpoint import atomic_write


@pytest.fixture(scope="module")
def model():
    return segzoo.create_model("fcn_test_resnet", num_classes=3, output_stride=32)


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_below_a_file_and_a_file(model, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/model: .*file is a file, not a folder"):
        segzoo.save_pretrained(model, tmp_path / "file" / "model")
    with pytest.raises(OutputError, match=r"cannot write .*file: it is a file, not a folder"):
        segzoo.save_pretrained(model, tmp_path / "file")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_disk_full_names_the_users_path(model, tmp_path, monkeypatch, existing):
    target = tmp_path / "model"
    if existing:
        target.mkdir()
        (target / "README.md").write_text("card")
    monkeypatch.setattr(checkpoint, "save_file", disk_full)
    with pytest.raises(OutputError, match=r"cannot write .*model(/model.safetensors)?: the disk is full$"):
        segzoo.save_pretrained(model, target)
    left = sorted(p.name for p in tmp_path.rglob("*"))
    assert left == (["README.md", "model"] if existing else [])  # nothing half-written, no temporary file


def test_interrupted_save_leaves_no_half_model(model, tmp_path, monkeypatch):
    def interrupted(self, path):
        raise KeyboardInterrupt
    monkeypatch.setattr(type(model.config), "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        segzoo.save_pretrained(model, tmp_path / "model")
    assert not list(tmp_path.iterdir())


def test_atomic_write_into_a_folder_or_read_only_place(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputError, match=r"cannot write .*folder: it is a folder, not a file"):
        atomic_write(tmp_path / "folder", lambda tmp: Path(tmp).write_text("x"))
    with pytest.raises(OutputError, match=r"cannot write .*missing/file.txt: a folder on the path does not exist"):
        atomic_write(tmp_path / "missing" / "file.txt", lambda tmp: Path(tmp).write_text("x"))
    with pytest.raises(OutputError, match=r"cannot write .*file.txt: the disk is full"):
        atomic_write(tmp_path / "file.txt", disk_full)
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]
