"""examples/train.py's --output when the file system says no (below a file, read-only, disk full while a checkpoint,
the log or final/ is written): one line naming the user's path and the cause, never a traceback or a temporary
name, and nothing half-written left behind. Run in this process (runpy, as `python examples/train.py` runs it) so
that a full disk can be injected; the real-process runs are in test_train_reliability.py."""
from __future__ import annotations

import errno
import re
import runpy
import sys

import pytest

from support.scripts import EXAMPLES, make_folder_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder_dataset(tmp_path_factory.mktemp("data") / "shapes", train=2, val=1, size=(32, 32))


def run_train(data, output, monkeypatch, capsys, *extra) -> tuple[object, str]:
    """(exit code, stderr) of `python examples/train.py` with a 2-iteration run on the tiny dataset."""
    argv = ["--model", "fcn_test_resnet", "--output-stride", "32", "--no-aux", "--dataset", "folder",
            "--data-root", data, "--iters", 2, "--batch-size", 2, "--base-size", 32, "--crop-size", 32,
            "--workers", 0, "--checkpoint-every", 1, "--eval-every", 0, "--device", "cpu", "--output", output,
            *extra]
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / "train.py"), *map(str, argv)])
    try:
        runpy.run_path(str(EXAMPLES / "train.py"), run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def assert_one_line(code, err, expected):
    """Exit status 1 and one error line, ``expected`` (after the progress bar, which ends without a newline)."""
    assert code == 1 and "Traceback" not in err, err
    assert re.findall(r"(?m)^error: [^\n]*", err) == [expected], err  # on a line of its own, not after the bar


def test_output_below_a_file_is_one_line(data, tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    code, err = run_train(data, tmp_path / "file" / "run", monkeypatch, capsys)
    assert_one_line(code, err, f"error: cannot write {tmp_path / 'file' / 'run'}: {tmp_path / 'file'} is a file, "
                               f"not a folder")


def test_read_only_output_is_one_line(data, tmp_path, monkeypatch, capsys):
    import builtins

    real_open = builtins.open

    def read_only(file, *args, **kwargs):  # as a read-only folder answers (chmod does not stop root)
        if str(file).startswith(str(tmp_path / "run")):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    (tmp_path / "run").mkdir()
    monkeypatch.setattr(builtins, "open", read_only)
    code, err = run_train(data, tmp_path / "run", monkeypatch, capsys)
    monkeypatch.undo()
    assert_one_line(code, err, f"error: cannot write {tmp_path / 'run'}: permission denied (a read-only folder?)")


@pytest.mark.parametrize("where", ["checkpoint state", "checkpoint model", "latest"])
def test_disk_full_while_saving_a_checkpoint_is_one_line(where, data, tmp_path, monkeypatch, capsys):
    """It was a raw OSError / SafetensorError traceback, or an error naming the temporary .tmp-checkpoint-* folder."""
    from segzoo.train import state
    from segzoo.weights import checkpoint

    if where == "checkpoint state":
        monkeypatch.setattr(state, "save_file", disk_full)
    elif where == "checkpoint model":
        monkeypatch.setattr(checkpoint, "save_file", disk_full)
    else:  # only save_checkpoint's tempfile: the data scan's cache is written through tempfile too
        import tempfile
        import types

        monkeypatch.setattr(state, "tempfile", types.SimpleNamespace(mkstemp=disk_full, mkdtemp=tempfile.mkdtemp))
    output = tmp_path / "run"
    code, err = run_train(data, output, monkeypatch, capsys)
    path = output / ("latest" if where == "latest" else "checkpoint-00000001")
    assert_one_line(code, err, f"error: cannot write {path}: the disk is full")
    assert not [p.name for p in output.iterdir() if p.name.startswith(".tmp")]


def test_overwrite_of_a_run_it_cannot_delete_is_one_line(data, tmp_path, monkeypatch, capsys):
    """--overwrite deletes the old run's files: a read-only one was a raw PermissionError traceback."""
    from pathlib import Path

    output = tmp_path / "run"
    output.mkdir()
    (output / "metrics.jsonl").write_text("{}\n")

    def read_only(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", read_only)
    code, err = run_train(data, output, monkeypatch, capsys, "--overwrite")
    monkeypatch.undo()
    assert_one_line(code, err, f"error: cannot write {output}: permission denied (a read-only folder?)")
    assert (output / "metrics.jsonl").read_text() == "{}\n"


def test_disk_full_while_writing_the_log_is_one_line(data, tmp_path, monkeypatch, capsys):
    from segzoo.train import metrics_log

    monkeypatch.setattr(metrics_log, "open", disk_full, raising=False)  # the module's open(): the log's appends
    output = tmp_path / "run"
    code, err = run_train(data, output, monkeypatch, capsys)
    assert_one_line(code, err, f"error: cannot write {output / 'metrics.jsonl'}: the disk is full")


def test_disk_full_while_saving_final_is_one_line(data, tmp_path, monkeypatch, capsys):
    from segzoo.weights import checkpoint

    real = checkpoint.save_pretrained

    def full_at_final(model, directory):
        if str(directory).endswith("final"):
            monkeypatch.setattr(checkpoint, "save_file", disk_full)
        return real(model, directory)

    monkeypatch.setattr("segzoo.save_pretrained", full_at_final)
    output = tmp_path / "run"
    code, err = run_train(data, output, monkeypatch, capsys)
    assert_one_line(code, err, f"error: cannot write {output / 'final'}: the disk is full")
    assert not (output / "final").exists() and (output / "latest").read_text().strip() == "checkpoint-00000002"
