"""examples/train.py never loses or silently changes work: resumed schedules, existing run folders, DDP evaluation,
bad data found before training, one-line errors under torchrun, the metrics log after a crash, and file modes.

Real processes as users run them (see support/scripts.py); one short 1-process run and one short 2-process run
are shared by most tests, each of which works on a copy when it changes the run."""
from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import segzoo
from segzoo.data import EvalTransform, create_dataset
from segzoo.errors import DatasetError
from segzoo.evaluation import evaluate
from segzoo.train import MetricsLog, PolyLR, load_checkpoint, start_epoch, train_loader
from support.scripts import check, make_folder_dataset, read_log, run_script, umask

ITERS, EVERY = 8, 4  # the shared runs: 8 iterations, a checkpoint every 4
BASE_LR = 0.02 * 2 / 8  # --lr 0.02 at batch 2 on one process: scaled_lr's linear rule


def train_args(data, output, *extra, iters=ITERS, every=EVERY, lr=0.02):
    return ["--model", "fcn_resnet18", "--dataset", "folder", "--data-root", data,
            "--iters", iters, "--batch-size", 2, "--base-size", 48, "--crop-size", 32, "--workers", 0,
            "--log-every", 1, "--checkpoint-every", every, "--eval-every", 0, "--lr", lr, "--warmup-iters", 2,
            "--output", output, *extra]


@pytest.fixture(scope="module", autouse=True)
def scan_cache(tmp_path_factory):
    """The data scan's cache (segzoo's cache folder) in a temporary folder, for the scripts and this process."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("segzoo-cache")
        patch.setenv("SEGZOO_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder_dataset(tmp_path_factory.mktemp("data") / "shapes")


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A finished 1-process run of ITERS iterations (checkpoints at 4 and 8), written under umask 002."""
    output = tmp_path_factory.mktemp("runs") / "one"
    with umask(0o002):
        check(run_script("train.py", *train_args(data, output)))
    return output


DDP_ITERS, DDP_EVERY = 4, 2


@pytest.fixture(scope="module")
def ddp_run(data, tmp_path_factory):
    """A finished 2-process run (gloo on the CPU: no SyncBatchNorm) of a barely trained model (learning rate
    1e-6): its predictions are near ties, so the BatchNorm statistics of the process that evaluates an image
    decide many pixels, where a trained model's confident predictions would hide the difference."""
    output = tmp_path_factory.mktemp("runs") / "two"
    check(run_script("train.py", *train_args(data, output, iters=DDP_ITERS, every=DDP_EVERY, lr=1e-6), nproc=2))
    return output


@pytest.fixture
def bad_data(data, tmp_path):
    """The dataset with the value 7 (3 classes) in one validation mask."""
    root = shutil.copytree(data, tmp_path / "bad")
    mask_path = root / "masks" / "val" / "001.png"
    mask = np.array(Image.open(mask_path))
    mask[5, 5] = 7
    Image.fromarray(mask, mode="L").save(mask_path)
    return root, mask_path


def train_records(output):
    return [r for r in read_log(output / "metrics.jsonl") if r["event"] == "train"]


def error_lines(result):
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error:")]


def expected_lr(iteration, total):
    """The backbone learning rate PolyLR gives the step that makes ``iteration`` (warm-up 2 is over by then)."""
    return BASE_LR * (1 - (iteration - 1) / total) ** 0.9


# --- 1. resuming with another schedule or another number of processes ---------------------------------------------

def test_more_iterations_on_resume_follow_the_longer_schedule(run, data, tmp_path):
    """`--iters 10 --resume` of an 8-iteration run trains iterations 9 and 10 at the 10-iteration schedule's
    learning rate, not at 0 (the 8-iteration total used to come back from the checkpoint)."""
    output = shutil.copytree(run, tmp_path / "longer")
    result = check(run_script("train.py", *train_args(data, output, "--resume", output, iters=10)))
    records = train_records(output)
    assert [r["iteration"] for r in records] == list(range(1, 11))
    for record in records[8:]:
        assert record["lr"] == pytest.approx(expected_lr(record["iteration"], 10), rel=1e-9)
    assert load_checkpoint(output).iteration == 10
    assert "10 in all" in result.stdout and "schedule changed: 8 -> 10 iterations" in result.stdout, result.stdout


@pytest.mark.slow  # a variant of the resume refusals (another model, another training set) in the default tier
def test_resume_on_another_number_of_processes_is_refused(ddp_run, data, tmp_path):
    """A 2-process checkpoint resumed on 1 process would halve the learning-rate scale and double the iterations
    per epoch: refused, naming both set-ups and the ways out."""
    result = run_script("train.py", *train_args(data, tmp_path / "one", "--resume", ddp_run, iters=DDP_ITERS))
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "2 process(es) x batch 2" in lines[0] and "1 process(es) x batch 2" in lines[0], lines[0]
    assert "--nproc_per_node=2" in lines[0] and "local-dir:" in lines[0], lines[0]


def test_resume_with_another_training_set_is_refused(run, data, tmp_path):
    """More training images mean other iterations per epoch: the epoch and the place in it would be wrong."""
    bigger = make_folder_dataset(tmp_path / "bigger", train=12)
    result = run_script("train.py", *train_args(bigger, tmp_path / "out", "--resume", run))
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "8 training images" in lines[0] and "12" in lines[0], result.stderr


# --- 2. a new run into an existing run folder ----------------------------------------------------------------------

def listing(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_new_run_into_a_finished_run_is_refused(run, data, tmp_path):
    output = shutil.copytree(run, tmp_path / "finished")  # a copy: without the fix the run would be replaced
    before = listing(output)
    result = run_script("train.py", *train_args(data, output))
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(output) in lines[0] and "--resume" in lines[0] and "--overwrite" in lines[0], lines[0]
    assert listing(output) == before  # final/, the checkpoints, latest and the log are untouched


# the overwrite case proves that nothing is mixed or deleted; resuming into another run is its variant (slow)
@pytest.mark.parametrize("case", [pytest.param("resume into another run", marks=pytest.mark.slow),
                                  "overwrite what is resumed"])
def test_resume_never_mixes_or_deletes_runs(run, ddp_run, data, tmp_path, case):
    """--resume of one run into the --output of another would mix their checkpoints and logs; --overwrite of the
    run being resumed would delete the checkpoint it resumes from."""
    target = shutil.copytree(ddp_run if case == "resume into another run" else run, tmp_path / "target")
    if case == "resume into another run":
        extra = ("--resume", run)
    else:
        extra = ("--resume", target / "checkpoint-00000004", "--overwrite")
    before = listing(target)
    result = run_script("train.py", *train_args(data, target, *extra))
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and str(target) in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert listing(target) == before


def test_resume_refuses_a_flipped_byte_and_offers_the_previous_checkpoint(run, data, tmp_path):
    output = shutil.copytree(run, tmp_path / "damaged")
    weights = output / "checkpoint-00000008" / "model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[-5] ^= 0x01  # one bit of one weight: the file still parses
    weights.write_bytes(bytes(damaged))
    result = run_script("train.py", *train_args(data, output, "--resume", output, iters=ITERS + 1))
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "checkpoint-00000008/model.safetensors has sha256" in lines[0], lines[0]
    assert lines[0].endswith(f"previous good checkpoint instead: {output / 'checkpoint-00000004'}"), lines[0]


def test_output_that_is_a_file_is_refused(data, tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    result = run_script("train.py", *train_args(data, tmp_path / "taken"))
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "not a folder" in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_a_second_run_into_a_folder_in_use_is_refused(data, tmp_path):
    """A run still writing into --output holds its lock (here this process holds it, as a running train.py would)."""
    import fcntl

    output = tmp_path / "busy"
    output.mkdir()
    with open(output / ".train.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_script("train.py", *train_args(data, output, "--overwrite"))
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "is in use by another run" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in output.iterdir()) == [".train.lock"]  # nothing of the second run written


@pytest.mark.slow  # a repeated proof: test_resume_never_mixes_or_deletes_runs[overwrite ...] covers --overwrite
def test_overwrite_replaces_the_old_run(run, data, tmp_path):
    output = shutil.copytree(run, tmp_path / "again")
    check(run_script("train.py", *train_args(data, output, "--overwrite", iters=1)))
    assert sorted(p.name for p in output.iterdir()) == [".train.lock", "checkpoint-00000001", "final", "latest",
                                                        "metrics.jsonl"]
    assert [r["iteration"] for r in train_records(output)] == [1]


# --- 3. evaluation during multi-process training -----------------------------------------------------------------

def test_ddp_evaluation_scores_the_saved_model(ddp_run, data):
    """Each process kept its own BatchNorm running statistics; the logged mIoU must be the saved model's."""
    logged = [r for r in read_log(ddp_run / "metrics.jsonl") if r["event"] == "eval"][-1]
    model = segzoo.create_model(f"local-dir:{ddp_run / 'final'}")
    val_set = create_dataset("folder", data, split="val", transform=EvalTransform(
        "testval", mean=model.config.mean, std=model.config.std))
    metrics = evaluate(model, DataLoader(val_set, batch_size=1), val_set.num_classes, device=torch.device("cpu"))
    assert logged["pixAcc"] == pytest.approx(metrics["pixAcc"], abs=1e-12)
    assert logged["mIoU"] == pytest.approx(metrics["mIoU"], abs=1e-12)
    assert [v is None for v in logged["IoU"]] == [v is None for v in metrics["IoU"]]
    assert [v for v in logged["IoU"] if v is not None] == pytest.approx(
        [v for v in metrics["IoU"] if v is not None], abs=1e-12)


# --- 4. bad data, errors under torchrun, the metrics log after a crash --------------------------------------------

def test_bad_validation_mask_fails_before_training(bad_data, tmp_path):
    root, mask_path = bad_data
    output = tmp_path / "out"
    result = run_script("train.py", *train_args(root, output))
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(mask_path) in lines[0] and "values 7" in lines[0], lines[0]
    assert not output.exists() or not any(output.glob("checkpoint-*"))  # nothing was trained


# one error under torchrun proves that rank 0 speaks alone; the second problem is a variant (slow tier)
@pytest.mark.parametrize("problem", ["bad mask", pytest.param("no data root", marks=pytest.mark.slow)])
def test_errors_under_torchrun_are_one_line_from_rank_0(bad_data, tmp_path, problem):
    """The workers say it once (every rank used to print it, or rank 0 went on training while the bad mask waited
    for the last evaluation); what is left is torchrun's own summary of the failed workers."""
    root, mask_path = bad_data
    if problem == "no data root":
        root, mask_path = tmp_path / "nowhere", tmp_path / "nowhere"
    output = tmp_path / "out"
    result = run_script("train.py", *train_args(root, output), nproc=2)
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and str(mask_path) in lines[0] and "[rank" not in lines[0], result.stderr
    assert "train.py\", line" not in result.stderr and "segzoo/" not in result.stderr, result.stderr
    assert not output.exists() or not any(output.glob("checkpoint-*"))  # stopped before training


def test_mask_scan_is_cached_and_still_refuses_bad_values(bad_data, monkeypatch):
    root, mask_path = bad_data
    import segzoo.data.base as base

    reads = []
    real_read_mask = base.read_mask
    monkeypatch.setattr(base, "read_mask", lambda path: reads.append(Path(path)) or real_read_mask(path))
    train = create_dataset("folder", root, split="train")
    val = create_dataset("folder", root, split="val")
    train.check()
    assert len(reads) == 8
    with pytest.raises(DatasetError, match=re.escape(f"mask {mask_path} holds values 7")):
        val.check()
    reads.clear()
    train.check()
    with pytest.raises(DatasetError, match="values 7"):  # the cached values are checked again
        val.check()
    assert reads == []  # a second scan reads nothing that did not change
    good = np.array(Image.open(mask_path))
    good[good == 7] = 0
    Image.fromarray(good, mode="L").save(mask_path)
    os.utime(mask_path, ns=(1, 1))  # another mtime even on file systems with coarse timestamps
    val.check()
    assert reads == [mask_path]


@pytest.mark.parametrize("mask, message", [
    (np.zeros((10, 12), np.uint8), "its mask {mask_path} is 10x12"),
    (np.zeros((40, 48, 3), np.uint8), "mask {mask_path} is a RGB image"),
], ids=["size", "colour"])
def test_scan_finds_other_bad_masks(data, tmp_path, mask, message):
    root = shutil.copytree(data, tmp_path / "masks")
    mask_path = root / "masks" / "train" / "003.png"
    Image.fromarray(mask).save(mask_path)
    with pytest.raises(DatasetError, match=re.escape(message.format(mask_path=mask_path))):
        create_dataset("folder", root, split="train").check()


@pytest.mark.slow  # a variant: the exact-losses resume test proves that a resumed run repeats no iteration
def test_resume_after_a_crash_does_not_repeat_iterations(run, data, tmp_path):
    """Killed while writing checkpoint 8: the log already holds iterations 5-8, which the resumed run trains again."""
    output = shutil.copytree(run, tmp_path / "crashed")
    shutil.rmtree(output / "checkpoint-00000008")
    shutil.rmtree(output / "final")
    (output / "latest").unlink()
    before = read_log(output / "metrics.jsonl")
    check(run_script("train.py", *train_args(data, output, "--resume", output)))
    records = read_log(output / "metrics.jsonl")
    assert [r["iteration"] for r in records if r["event"] == "train"] == list(range(1, ITERS + 1))
    assert [r["iteration"] for r in records if r["event"] == "eval"] == [ITERS]
    kept = [r for r in before if r["iteration"] <= EVERY]
    assert records[:len(kept)] == kept  # the records up to the checkpoint are the original ones


def test_resuming_a_finished_run_evaluates_again_without_a_second_record(run, data, tmp_path):
    output = shutil.copytree(run, tmp_path / "finished")
    before = [r for r in read_log(output / "metrics.jsonl") if r["event"] == "eval"]
    check(run_script("train.py", *train_args(data, output, "--resume", output)))
    after = [r for r in read_log(output / "metrics.jsonl") if r["event"] == "eval"]
    assert [(r["iteration"], r["epoch"], r["mIoU"]) for r in after] == \
        [(r["iteration"], r["epoch"], r["mIoU"]) for r in before]


def test_metrics_log_truncation_drops_a_half_written_line(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for iteration in range(1, 5):
        log.write(event="train", iteration=iteration)
    log.write(event="eval", iteration=2)
    with open(log.path, "a") as handle:
        handle.write('{"event": "train", "iteration": 5, "lo')  # killed mid-write
    assert log.truncate_after(2, redo=("eval",)) == 4
    assert [(r["event"], r["iteration"]) for r in log.read()] == [("train", 1), ("train", 2)]


def test_poly_lr_reschedule_continues_as_the_new_schedule():
    """What a resumed run does with the checkpoint's 8-iteration schedule when asked for 16 at another lr."""
    def sgd():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01, momentum=0.9)

    optimizer = sgd()
    scheduler = PolyLR(optimizer, 8, warmup_iters=2)
    for _ in range(8):
        optimizer.step()
        scheduler.step()
    resumed_optimizer = sgd()
    resumed = PolyLR(resumed_optimizer, 16, warmup_iters=2)
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    resumed.load_state_dict(scheduler.state_dict())
    assert resumed_optimizer.param_groups[0]["lr"] == 0  # the checkpoint's schedule has ended
    resumed.reschedule(16, 2, [0.02])
    reference_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.02)
    reference = PolyLR(reference_optimizer, 16, warmup_iters=2)  # started with the new values from the beginning
    for step in range(16):
        if step >= 8:  # from the resumed iteration on, the same learning rates
            lr = resumed_optimizer.param_groups[0]["lr"]
            assert lr > 0 and lr == pytest.approx(reference_optimizer.param_groups[0]["lr"], rel=1e-12)
            resumed_optimizer.step()
            resumed.step()
        reference_optimizer.step()
        reference.step()
    assert resumed.state_dict()["total_iters"] == 16 and resumed_optimizer.param_groups[0]["initial_lr"] == 0.02


# --- 5. file modes ------------------------------------------------------------------------------------------------

def test_run_files_follow_the_umask(run):
    """The run was made under umask 002: files 664, folders 775 (tempfile's 600 / 700 used to leak through)."""
    modes = {str(p.relative_to(run)): stat.S_IMODE(p.stat().st_mode) for p in run.rglob("*")}
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o775 if (run / name).is_dir() else 0o664)}
    assert not wrong, wrong
    assert "final/model.safetensors" in modes and "checkpoint-00000008/training_state.safetensors" in modes


# --- beyond the list --------------------------------------------------------------------------------------

@pytest.mark.slow  # a second 2-process run; the other tests cover items 1-5
def test_two_process_resume_restores_every_rank_rng(ddp_run, data, tmp_path):
    """Every rank resumes its own RNG state (rank 0's used to be restored on all of them, so after a resume
    both ranks drew the same augmentation): with no loader workers the resumed losses equal the original's."""
    resumed = tmp_path / "resumed"
    check(run_script("train.py", *train_args(data, resumed, "--resume", ddp_run / "checkpoint-00000002",
                                             iters=DDP_ITERS, every=DDP_EVERY, lr=1e-6), nproc=2))
    whole = {r["iteration"]: r["loss"] for r in train_records(ddp_run)}
    after = {r["iteration"]: r["loss"] for r in train_records(resumed)}
    assert sorted(after) == list(range(DDP_EVERY + 1, DDP_ITERS + 1))
    assert after == {iteration: whole[iteration] for iteration in after}


def test_loader_workers_of_each_rank_draw_their_own_augmentation():
    """Worker k of every process used to get the same seed, so all ranks drew the same flips, scales and crops."""
    seeds = []
    for rank in (0, 1):
        loader = train_loader(list(range(8)), 2, rank=rank, world_size=2, seed=0, workers=0)
        start_epoch(loader, epoch=3)
        seeds.append(loader.generator.initial_seed())
    assert seeds[0] != seeds[1]
