"""Everything segzoo writes atomically (through a temporary file or folder, then a rename) gets the modes a plain
``open()`` / ``mkdir()`` would give: files ``0o666 & ~umask``, folders ``0o777 & ~umask`` (tempfile's private
0o600 / 0o700 must not leak through, nor be widened past what the umask allows)."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest
import torch

import segzoo
import segzoo.data  # create_dataset: not among what `import segzoo` loads
from segzoo.train import MetricsLog, build_optimizer, save_checkpoint
from segzoo.weights.checkpoint import atomic_write
from segzoo.weights.convert import convert_file
from support.reference_checkpoints import random_state
from support.scripts import make_folder_dataset, umask

UMASKS = [0o022, 0o002, 0o077]


def wrong_modes(root: Path, mask: int) -> dict[str, str]:
    """The paths under ``root`` (itself included) whose permission bits are not what ``mask`` gives."""
    wrong = {}
    for path in [root, *root.rglob("*")]:
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        if stat.S_IMODE(path.stat().st_mode) != expected:
            wrong[str(path.relative_to(root.parent))] = oct(stat.S_IMODE(path.stat().st_mode))
    return wrong


@pytest.fixture(scope="module")
def model():
    return segzoo.create_model("fcn_resnet18", num_classes=3, aux=True)


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_save_pretrained(model, tmp_path, mask):
    with umask(mask):
        directory = segzoo.save_pretrained(model, tmp_path / "export")
    assert not wrong_modes(directory, mask)


@pytest.mark.parametrize("mask", [0o002, 0o077], ids=oct)
def test_training_checkpoint_and_latest(model, tmp_path, mask):
    optimizer = build_optimizer(model, 0.01)
    with umask(mask):
        save_checkpoint(tmp_path / "run", model=model, optimizer=optimizer, epoch=0, iteration=1)
        save_checkpoint(tmp_path / "run", model=model, optimizer=optimizer, epoch=0, iteration=1)  # re-saved
    assert not wrong_modes(tmp_path / "run", mask)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint-00000001", "latest"]


def test_convert_output(tmp_path):
    torch.save(random_state("fcn_jpu"), tmp_path / "ref.pth")
    with umask(0o002):
        convert_file(tmp_path / "ref.pth", tmp_path / "out", "fcn_jpu")
    assert not wrong_modes(tmp_path / "out", 0o002)


def test_atomic_write_replaces_in_place_with_umask_modes(tmp_path):
    target = tmp_path / "file.txt"
    with umask(0o002):
        atomic_write(target, lambda tmp: Path(tmp).write_text("one"))
        atomic_write(target, lambda tmp: Path(tmp).write_text("two"))
    assert target.read_text() == "two" and stat.S_IMODE(target.stat().st_mode) == 0o664
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]  # no temporary file left


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")

    def fail(tmp):
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_metrics_log_truncation_and_scan_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGZOO_CACHE", str(tmp_path / "cache"))
    with umask(0o002):
        log = MetricsLog(tmp_path / "run" / "metrics.jsonl")
        for iteration in range(1, 4):
            log.write(event="train", iteration=iteration)
        log.truncate_after(2)
        segzoo.data.create_dataset("folder", make_folder_dataset(tmp_path / "data"), split="val").check()
    assert [r["iteration"] for r in log.read()] == [1, 2]
    assert not wrong_modes(tmp_path / "run", 0o002)
    assert not wrong_modes(tmp_path / "cache", 0o002)


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_downloaded_upstream_file(tmp_path, monkeypatch, mask):
    import hashlib

    from segzoo.upstream import UpstreamFile
    from segzoo.upstreams import get_upstream
    from segzoo.weights.download import download
    from support.file_server import FileServer

    data = b"not really a checkpoint" * 100
    with FileServer() as server, umask(mask):
        server.files["m.pth"] = data
        monkeypatch.setenv("SEGZOO_TORCHVISION_URL", server.url)
        folder = tmp_path / "downloads"
        file = UpstreamFile("torchvision", "m.pth", hashlib.sha256(data).hexdigest()[:8])
        download(get_upstream("torchvision"), file, folder / "m.pth", name="m", progress=False)
    assert (folder / "m.pth").read_bytes() == data
    assert wrong_modes(folder / "m.pth", mask) == {}
