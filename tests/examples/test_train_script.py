"""examples/train.py and examples/evaluate.py as users run them: real torchrun processes (gloo on the CPU)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import segzoo
from segzoo.train import load_checkpoint
from support.scripts import EXAMPLES, check, make_folder_dataset, read_log, run_script, script_env

TOTAL_ITERS = 12


def train_args(data, output, *extra):
    return ["--model", "fcn_resnet18", "--dataset", "folder", "--data-root", data,
            "--iters", TOTAL_ITERS, "--batch-size", 2, "--base-size", 48, "--crop-size", 32, "--workers", 0,
            "--log-every", 1, "--checkpoint-every", 6, "--eval-every", 0, "--lr", 0.02, "--warmup-iters", 2,
            "--output", output, *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder_dataset(tmp_path_factory.mktemp("data") / "shapes")


@pytest.fixture(scope="module")
def ddp_run(data, tmp_path_factory):
    """One 2-process training run of TOTAL_ITERS iterations, checkpointing every 6."""
    output = tmp_path_factory.mktemp("runs") / "ddp"
    result = check(run_script("train.py", *train_args(data, output), nproc=2))
    return output, result


def train_records(output):
    return [r for r in read_log(output / "metrics.jsonl") if r["event"] == "train"]


def test_two_process_training_learns_and_checkpoints(ddp_run):
    output, result = ddp_run
    records = train_records(output)
    assert [r["iteration"] for r in records] == list(range(1, TOTAL_ITERS + 1))
    start = read_log(output / "metrics.jsonl")[0]
    assert start["event"] == "start" and start["world_size"] == 2
    losses = [r["loss"] for r in records]
    assert sum(losses[-4:]) / 4 < 0.6 * sum(losses[:2]) / 2, losses  # the loss falls
    assert (output / "checkpoint-00000006").is_dir() and (output / "checkpoint-00000012").is_dir()
    assert (output / "latest").read_text().strip() == "checkpoint-00000012"
    evaluation = [r for r in read_log(output / "metrics.jsonl") if r["event"] == "eval"]
    assert len(evaluation) == 1 and 0 <= evaluation[0]["mIoU"] <= 1
    final = segzoo.create_model(f"local-dir:{output / 'final'}")
    assert final.config.num_classes == 3 and final.config.aux  # the aux head was trained (no unused params)


@pytest.mark.slow  # a repeated proof: the exact-losses resume test below implies the iteration and learning rate
def test_resume_continues_at_the_same_iteration_and_learning_rate(ddp_run, data, tmp_path):
    output, _ = ddp_run
    resumed = tmp_path / "resumed"
    result = check(run_script("train.py", *train_args(data, resumed, "--resume", output / "checkpoint-00000006"),
                              nproc=2))
    assert "resumed from" in result.stdout and "at iteration 6" in result.stdout
    before = {r["iteration"]: r for r in train_records(output)}
    after = train_records(resumed)
    assert [r["iteration"] for r in after] == list(range(7, TOTAL_ITERS + 1))
    for record in after:
        assert record["lr"] == before[record["iteration"]]["lr"]
        assert record["epoch"] == before[record["iteration"]]["epoch"]
    assert load_checkpoint(resumed).iteration == TOTAL_ITERS


def test_resume_with_a_checkpoint_of_another_model_is_refused(ddp_run, data, tmp_path):
    output, _ = ddp_run
    args = train_args(data, tmp_path / "other", "--resume", output)
    args[args.index("fcn_resnet18")] = "pspnet_resnet18"
    result = run_script("train.py", *args)
    assert result.returncode != 0
    assert "another model" in result.stderr and "pspnet" in result.stderr, result.stderr


def test_missing_data_root_names_the_path(tmp_path):
    result = run_script("train.py", "--model", "fcn_resnet18", "--dataset", "voc", "--data-root", tmp_path / "nope")
    assert result.returncode != 0
    assert str(tmp_path / "nope") in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_killed_while_writing_a_checkpoint_keeps_the_previous_one(data, tmp_path):
    """SIGKILL the trainer the moment a checkpoint is being written: `latest` still names a complete
    checkpoint, which loads and resumes."""
    output = tmp_path / "killed"
    args = train_args(data, output)
    args[args.index("--iters") + 1] = 1000
    args[args.index("--checkpoint-every") + 1] = 1
    command = [sys.executable, str(EXAMPLES / "train.py"), *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=script_env(),
                               start_new_session=True)
    caught_mid_write = False
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            # Wait until one checkpoint is complete and the next is half written, then kill.
            if (output / "latest").exists() and any(p.name.startswith(".tmp") for p in output.iterdir()):
                os.killpg(process.pid, signal.SIGKILL)
                caught_mid_write = True
                break
            time.sleep(0.002)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert caught_mid_write, process.stderr.read().decode()
    assert any(p.name.startswith(".tmp") for p in output.iterdir())  # the half-written one is still there
    state = load_checkpoint(output)
    assert state.iteration >= 1 and state.path.name == (output / "latest").read_text().strip()
    segzoo.create_model(f"local-dir:{state.path}")
    args[args.index("--iters") + 1] = state.iteration + 1
    result = check(run_script("train.py", *args, "--resume", output))
    assert f"at iteration {state.iteration}" in result.stdout


@pytest.mark.slow  # a repeated proof: 2-rank metrics in tests/evaluation, DDP evaluation in test_train_reliability
def test_evaluation_on_one_and_two_processes_agrees(ddp_run, data, tmp_path):
    output, _ = ddp_run
    common = ["--model", f"local-dir:{output / 'final'}", "--dataset", "folder", "--data-root", data,
              "--workers", 0]
    single = check(run_script("evaluate.py", *common, "--json", tmp_path / "one.json"))
    check(run_script("evaluate.py", *common, "--json", tmp_path / "two.json", nproc=2))
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert one["images"] == two["images"] == 3
    assert one["num_pixels"] == two["num_pixels"] > 0
    assert one["mIoU"] == pytest.approx(two["mIoU"], abs=1e-12) and one["pixAcc"] == pytest.approx(two["pixAcc"])
    assert [v is None for v in one["IoU"]] == [v is None for v in two["IoU"]]
    assert [v for v in one["IoU"] if v is not None] == pytest.approx([v for v in two["IoU"] if v is not None])
    assert "mIoU" in single.stdout and "red" in single.stdout  # the per-class table names the classes


def test_single_process_resume_reproduces_the_uninterrupted_losses(data, tmp_path):
    """One process, no loader workers: the restored RNG state redraws the very same augmentation and dropout,
    so the resumed run's losses equal the uninterrupted run's to the last bit."""
    check(run_script("train.py", *train_args(data, tmp_path / "whole")))
    check(run_script("train.py", *train_args(data, tmp_path / "resumed", "--resume",
                                             tmp_path / "whole" / "checkpoint-00000006")))
    whole = {r["iteration"]: r["loss"] for r in train_records(tmp_path / "whole")}
    resumed = {r["iteration"]: r["loss"] for r in train_records(tmp_path / "resumed")}
    assert sorted(resumed) == list(range(7, TOTAL_ITERS + 1))
    assert resumed == {iteration: whole[iteration] for iteration in resumed}


@pytest.mark.slow  # 40 s; the default tier overfits one batch in-process (tests/train/test_mask_classification_loss.py)
def test_mask2former_trains_with_its_matching_loss(data, tmp_path):
    """A mask classification head trains in train.py with Mask2Former's loss (Hungarian-matched class, mask and dice
    terms with deep supervision) and AdamW: the loss falls on the tiny dataset, and the saved model predicts."""
    args = train_args(data, tmp_path / "m2f", "--lr", 1e-4)
    args[args.index("fcn_resnet18")] = "mask2former_resnet18"
    args[args.index("--iters") + 1] = 30
    check(run_script("train.py", *args))
    losses = [r["loss"] for r in train_records(tmp_path / "m2f")]
    assert len(losses) == 30 and sum(losses[-4:]) / 4 < 0.75 * sum(losses[:2]) / 2, losses
    final = segzoo.create_model(f"local-dir:{tmp_path / 'm2f' / 'final'}")
    assert final.config.head == "mask2former" and final.config.num_classes == 3
    wrong = run_script("train.py", *args[:-2], "--output", tmp_path / "wrong", "--loss", "dice")
    assert wrong.returncode != 0 and "trains with its own loss" in wrong.stderr
