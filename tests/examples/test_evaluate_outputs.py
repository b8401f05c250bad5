"""examples/evaluate.py --json: a path that cannot be written, or a file that exists, is refused before the model is
built (not after the whole evaluation); the write is atomic, and a file system that says no is one line naming the
path. Run in this process (runpy, as `python examples/evaluate.py` runs it) so that failures can be injected."""
from __future__ import annotations

import errno
import runpy
import sys

import pytest

import segzoo
from support.scripts import EXAMPLES, make_folder_dataset


def run_evaluate(argv: list, monkeypatch) -> str:
    """evaluate.py's exit message (``sys.exit("error: ...")``), or "" when it ends normally."""
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / "evaluate.py"), *map(str, argv)])
    try:
        runpy.run_path(str(EXAMPLES / "evaluate.py"), run_name="__main__")
    except SystemExit as exit:
        return str(exit.code)
    return ""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate-json")
    data = make_folder_dataset(root / "shapes", train=1, val=1, size=(24, 24))
    segzoo.save_pretrained(segzoo.create_model("fcn_test_resnet", num_classes=3, output_stride=32), root / "model")
    return root, data


def arguments(setup, json_path, *extra):
    root, data = setup
    return ["--model", f"local-dir:{root / 'model'}", "--dataset", "folder", "--data-root", data, "--split", "val",
            "--device", "cpu", "--workers", 0, "--json", json_path, *extra]


@pytest.fixture
def no_model(monkeypatch):
    """Building the model fails the test: the refusal comes first."""
    monkeypatch.setattr(segzoo, "create_model", lambda *args, **kwargs: pytest.fail("the model was built"))


def test_json_below_a_file_is_refused_before_the_model_is_built(setup, tmp_path, monkeypatch, no_model):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "sub" / "m.json"
    said = run_evaluate(arguments(setup, path), monkeypatch)
    assert said == f"error: cannot write {path}: {tmp_path / 'file'} is a file, not a folder"


def test_json_that_is_a_folder_is_refused_before_the_model_is_built(setup, tmp_path, monkeypatch, no_model):
    said = run_evaluate(arguments(setup, tmp_path), monkeypatch)
    assert said == f"error: cannot write {tmp_path}: it is a folder, not a file"


def test_json_in_a_read_only_folder_is_refused_before_the_model_is_built(setup, tmp_path, monkeypatch, no_model):
    import os

    # as the system answers for a read-only folder (the tests may run as root, whom chmod does not stop)
    monkeypatch.setattr(os, "access", lambda path, mode: os.fspath(path) != str(tmp_path))
    said = run_evaluate(arguments(setup, tmp_path / "m.json"), monkeypatch)
    assert said == f"error: cannot write {tmp_path / 'm.json'}: permission denied (a read-only folder?)"


def test_existing_json_is_refused_unless_overwrite(setup, tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    path.write_text("old")
    with monkeypatch.context() as patch:
        patch.setattr(segzoo, "create_model", lambda *args, **kwargs: pytest.fail("the model was built"))
        said = run_evaluate(arguments(setup, path), monkeypatch)
    assert said == f"error: {path} exists (a metrics file); pass --overwrite to replace it, or choose another path"
    assert path.read_text() == "old"
    assert run_evaluate(arguments(setup, path, "--overwrite"), monkeypatch) == ""
    assert '"mIoU"' in path.read_text() and [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_disk_full_while_writing_json_is_one_line_and_leaves_nothing(setup, tmp_path, monkeypatch):
    from segzoo.weights import checkpoint

    real = checkpoint.atomic_write

    def full_disk(path, write):  # the evaluation's own file: the disk fills while it is written
        def write_then_fail(tmp):
            write(tmp)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write_then_fail if str(path).endswith("m.json") else write)

    monkeypatch.setattr(checkpoint, "atomic_write", full_disk)
    path = tmp_path / "out" / "m.json"
    said = run_evaluate(arguments(setup, path), monkeypatch)
    assert said == f"error: cannot write {path}: the disk is full"
    assert list((tmp_path / "out").iterdir()) == []  # no half file, no temporary one
