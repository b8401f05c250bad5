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


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two renames"])
def test_replace_folder_swaps_whole_folders(model, tmp_path, monkeypatch, exchange):
    """The old folder stays as it was until the new one is complete, and its other files are kept."""
    from segzoo.weights.checkpoint import replace_folder

    if not exchange:  # a system or file system without RENAME_EXCHANGE
        monkeypatch.setattr(checkpoint, "_exchange", lambda first, second: False)
    target = tmp_path / "model"
    segzoo.save_pretrained(model, target)
    (target / "README.md").write_text("card")
    (target / "extra").mkdir()
    (target / "extra" / "notes.txt").write_text("notes")
    before = {path.name: path.read_bytes() for path in target.iterdir() if path.is_file()}

    def half(tmp):
        (tmp / "model.safetensors").write_bytes(b"new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"cannot write .*model: the disk is full$"):
        replace_folder(target, half)
    assert {path.name: path.read_bytes() for path in target.iterdir() if path.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

    replace_folder(target, lambda tmp: (tmp / "model.safetensors").write_bytes(b"new"))
    assert (target / "model.safetensors").read_bytes() == b"new"
    assert (target / "README.md").read_text() == "card" and (target / "extra" / "notes.txt").read_text() == "notes"
    assert not (target / "config.json").exists()  # what the new content holds, not the old one's files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_replace_folder_names_the_users_path_when_save_pretrained_fails(model, tmp_path, monkeypatch):
    from segzoo.weights.checkpoint import replace_folder

    monkeypatch.setattr(checkpoint, "save_file", disk_full)
    with pytest.raises(OutputError, match=r"cannot write .*/model: the disk is full$"):
        replace_folder(tmp_path / "model", lambda tmp: segzoo.save_pretrained(model, tmp))
    assert list(tmp_path.iterdir()) == []
