"""predict's ``auto`` choice (segzoo.inference.path_choice, path_memory): measured on the images being segmented, so
that it pays for itself, remembered per weights / CPU / input size, and said in one line. The paths here are stub
models timed by a fake clock (the shared machine's timing never decides a test); the predict tests at the end run
a real model with native bfloat16 pinned present and absent."""
import importlib
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import segzoo
from segzoo.errors import ConfigError
from segzoo.inference import path_memory, precision
from segzoo.inference.path_choice import PathChooser, measure_needs
from segzoo.model import SegmentationModel
from segzoo.testing import randomize_batch_norm
from segzoo.tools.cli import main

CHOICE = importlib.import_module("segzoo.inference.path_choice")
FP32, BF16 = ("fp32", "eager"), ("bf16", "eager")


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


class StubPath(nn.Module):
    """A path that costs ``cost`` fake seconds per pixel; its logits are a fixed function of the image, negated
    when it ``loses_the_answer``."""

    def __init__(self, clock: Clock, cost: float, loses_the_answer: bool = False):
        super().__init__()
        self.clock, self.cost, self.sign, self.calls = clock, cost, -1.0 if loses_the_answer else 1.0, 0

    def forward(self, images):
        self.calls += 1
        self.clock.now += self.cost * images.shape[0] * images.shape[-2] * images.shape[-1]
        return self.sign * torch.cat([images[:, :1], -images[:, :1]], 1)


@pytest.fixture
def stubs(monkeypatch):
    """Paths built as stubs: ``stubs.costs`` / ``stubs.losing`` set them up, ``stubs.built`` lists what was built."""
    clock = Clock()
    monkeypatch.setattr(CHOICE, "_clock", clock)

    class Stubs:
        costs = {FP32: 2.0, BF16: 1.0}
        losing: set = set()
        failing: set = set()
        built: list = []
        models: dict = {}

    def build(source, path, **kwargs):
        if path in Stubs.failing:
            raise RuntimeError("cannot build\nsecond line")
        Stubs.built.append(path)
        Stubs.models[path] = StubPath(clock, Stubs.costs[path], path in Stubs.losing)
        return Stubs.models[path]

    Stubs.built, Stubs.models, Stubs.losing, Stubs.failing = [], {}, set(), set()
    monkeypatch.setattr(CHOICE, "build_path", build)
    return Stubs


@pytest.fixture
def source():
    torch.manual_seed(0)
    return nn.Conv2d(3, 2, 1)  # what the weights fingerprint is taken of


def _chooser(source, batches, paths=(FP32, BF16), **kwargs):
    lines = []
    chooser = PathChooser(source, list(paths), lambda model, images: model(images), expected_batches=batches,
                          mode="multiclass", threshold=0.5, asked=kwargs.pop("asked", "auto"), **kwargs)
    chooser.line_when_fixed(lines.append)
    return chooser, lines


def _batches(count, size=(6, 8)):
    generator = torch.Generator().manual_seed(3)
    return [torch.randn(1, 3, *size, generator=generator) for _ in range(count)]


def test_one_candidate_is_not_measured(stubs, source):
    chooser, lines = _chooser(source, 20, paths=[FP32])
    for images in _batches(3):
        chooser(images)
    assert stubs.built == [FP32] and stubs.models[FP32].calls == 3
    assert lines == ["inference: fp32 eager (no native bfloat16 on this CPU)"]
    assert not path_memory.memory_path().exists()
    _, lines = _chooser(source, 20, paths=[BF16], asked="bf16")
    assert lines == ["inference: bf16 eager (as asked; this CPU emulates bfloat16: several times slower than fp32)"]


def test_too_few_images_run_float32_without_building_the_others(stubs, source):
    assert measure_needs([FP32, BF16]) == 5
    chooser, lines = _chooser(source, 4)
    for images in _batches(4):
        chooser(images)
    assert stubs.built == [FP32] and stubs.models[FP32].calls == 4
    assert lines == ["inference: fp32 eager (too few images to measure bf16 eager: it takes 5 batches)"]
    assert not path_memory.memory_path().exists()


def test_the_measurement_is_the_work_and_is_remembered(stubs, source):
    chooser, lines = _chooser(source, 7)
    batches = _batches(7)
    outputs = [chooser(images) for images in batches]
    # fp32: the first batch (its predictions) and two timed; bf16: the check, two timed, then the rest
    assert stubs.models[FP32].calls == 3 and stubs.models[BF16].calls == 5  # 8 runs for 7 batches
    for images, logits in zip(batches, outputs):
        assert torch.equal(logits, torch.cat([images[:, :1], -images[:, :1]], 1))
    assert lines == ["inference: bf16 eager (agreement 100.00%, 2.00x fp32 eager)"]
    (entry,) = json.loads(path_memory.memory_path().read_text()).values()
    assert (entry["precision"], entry["runtime"]) == BF16 and entry["measured"]

    # the same weights at the same size: nothing measured, only the remembered path is built
    stubs.built.clear()
    chooser, lines = _chooser(source, 7)
    chooser(batches[0])
    assert stubs.built == [BF16] and stubs.models[BF16].calls == 1
    assert lines[0].startswith("inference: bf16 eager (agreement 100.00%, 2.00x fp32 eager; remembered from ")
    assert lines[0].endswith(", --remeasure to measure again)")
    # even a run of one image takes the remembered path
    stubs.built.clear()
    _chooser(source, 1)[0](batches[0])
    assert stubs.built == [BF16]


@pytest.mark.parametrize("how", ["argument", "environment", "other size", "other weights"])
def test_what_measures_again(stubs, source, monkeypatch, how):
    first, _ = _chooser(source, 7)
    for images in _batches(7):
        first(images)
    stubs.built.clear()
    size = (6, 8)
    if how == "environment":
        monkeypatch.setenv(path_memory.REMEASURE_ENV, "1")
    elif how == "other size":
        size = (8, 8)
    elif how == "other weights":
        with torch.no_grad():
            source.weight[0, 0] += 1e-3
    chooser, _ = _chooser(source, 7, remeasure=how == "argument")
    chooser(_batches(1, size)[0])
    assert stubs.built == [BF16, FP32]  # both candidates, measured again


def test_a_reduced_precision_that_loses_the_answer_is_dropped_after_one_batch(stubs, source):
    stubs.losing = {BF16}
    chooser, lines = _chooser(source, 10)
    for images in _batches(10):
        chooser(images)
    assert stubs.models[BF16].calls == 1 and stubs.models[FP32].calls == 10
    assert lines == ["inference: fp32 eager (bf16 eager agrees on 0.00% of pixels, below 99.5%)"]
    stubs.built.clear()
    _chooser(source, 10)[0](_batches(1)[0])
    assert stubs.built == [FP32]  # remembered: bf16 is not even built


def test_float32_kept_when_it_is_faster(stubs, source):
    stubs.costs = {FP32: 2.0, BF16: 3.0}  # a CPU where bf16 is emulated, say
    chooser, lines = _chooser(source, 8)
    for images in _batches(8):
        chooser(images)
    assert lines == ["inference: fp32 eager (the fastest; bf16 eager: agreement 100.00%, 0.67x)"]
    assert stubs.models[FP32].calls == 1 + 2 + 3


def test_a_candidate_that_fails_is_said_and_left_out(stubs, source):
    stubs.failing = {BF16}
    chooser, lines = _chooser(source, 6)
    for images in _batches(6):
        chooser(images)
    assert lines == ["inference: fp32 eager (bf16 eager failed (RuntimeError: cannot build))"]


def test_images_running_out_mid_measurement(stubs, source):
    chooser, lines = _chooser(source, 9)  # expected 9 batches, but only 3 came (unreadable files, say)
    for images in _batches(3):
        chooser(images)
    assert lines == []
    assert chooser.finish().path == FP32
    assert lines == ["inference: fp32 eager (the images ran out before the measurement finished; nothing "
                     "remembered)"]
    assert not path_memory.memory_path().exists()


def test_the_memory_survives_a_corrupt_file_and_an_unwritable_cache(stubs, source, tmp_path, monkeypatch):
    path_memory.memory_path().parent.mkdir(parents=True, exist_ok=True)
    path_memory.memory_path().write_text("{not json")
    assert path_memory.recall("anything") is None
    assert path_memory.remember("key", {"precision": "fp32", "runtime": "eager"})
    assert path_memory.recall("key")["precision"] == "fp32"
    assert [p.name for p in path_memory.memory_path().parent.iterdir()] == [path_memory.MEMORY_NAME]  # no temp left
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SEGZOO_CACHE", str(blocker / "cache"))  # below a file: cannot be created
    assert not path_memory.remember("key", {"precision": "fp32", "runtime": "eager"})
    chooser, lines = _chooser(source, 7)
    for images in _batches(7):
        chooser(images)
    assert lines == ["inference: bf16 eager (agreement 100.00%, 2.00x fp32 eager)"]  # chosen, just not remembered


def test_the_memory_keeps_the_newest_entries(monkeypatch):
    monkeypatch.setattr(path_memory, "MAX_ENTRIES", 3)
    for index in range(5):
        path_memory.remember(f"k{index}", {"precision": "fp32", "runtime": "eager"})
    path_memory.remember("k2", {"precision": "bf16", "runtime": "eager"})  # measured again: now the newest
    assert list(json.loads(path_memory.memory_path().read_text())) == ["k3", "k4", "k2"]


def test_weights_fingerprint_sees_every_value_and_name():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    same = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    same.load_state_dict(model.state_dict())
    assert path_memory.weights_fingerprint(model) == path_memory.weights_fingerprint(same)
    same[1].running_var[2] += 1e-6  # a buffer counts
    assert path_memory.weights_fingerprint(model) != path_memory.weights_fingerprint(same)


# --- the capability pin -----------------------------------------------------------------------------------------

def test_the_environment_pins_native_bf16_either_way(monkeypatch):
    monkeypatch.setenv(precision.FAST_BF16_ENV, "1")
    assert precision.cpu_has_fast_bf16() and precision.fast_bf16_signal() == "SEGZOO_FAST_BF16=1 (pinned in the " \
                                                                           "environment)"
    monkeypatch.setenv(precision.FAST_BF16_ENV, "0")
    assert not precision.cpu_has_fast_bf16()
    monkeypatch.setenv(precision.FAST_BF16_ENV, "yes")
    with pytest.raises(ConfigError, match="SEGZOO_FAST_BF16 must be 1 .* got 'yes'"):
        precision.cpu_has_fast_bf16()


# --- predict, with a real model ------------------------------------------------------------------------------------

@pytest.fixture
def saved_model(tmp_path):
    torch.manual_seed(0)
    model = randomize_batch_norm(segzoo.create_model("fcn_resnet18", num_classes=3, output_stride=16))
    segzoo.save_pretrained(model, tmp_path / "model")
    return f"local-dir:{tmp_path / 'model'}"


@pytest.fixture
def forwards(monkeypatch):
    """The (H, W) of every SegmentationModel forward (any path: the bf16 copy wraps one too)."""
    sizes = []
    forward = SegmentationModel.forward
    monkeypatch.setattr(SegmentationModel, "forward",
                        lambda self, x, *a, **k: sizes.append(tuple(x.shape[-2:])) or forward(self, x, *a, **k))
    return sizes


def _photos(folder, count):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


def test_predict_auto_segments_each_image_once_and_remembers(tmp_path, saved_model, forwards, monkeypatch, capsys,
                                                             native_bf16):
    monkeypatch.setattr(CHOICE, "AGREEMENT_THRESHOLD", 0.0)  # random weights: bf16's agreement is not the point
    folder = _photos(tmp_path / "photos", 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the choice is a line, never a warning
        first = segzoo.predict(folder, saved_model, device="cpu", out_dir=tmp_path / "out", progress=False)
    assert all(result.ok for result in first)
    runs = [size for size in forwards if size == (20, 24)]  # (the folding's example runs are 64x64)
    (line,) = capsys.readouterr().err.splitlines()
    if native_bf16:  # measured: only the first image runs twice (fp32 for its prediction, bf16 for the check)
        assert len(runs) == 7 and line.startswith("inference: ") and "agreement" in line
    else:
        assert len(runs) == 6 and line == "inference: fp32 eager (no native bfloat16 on this CPU)"
    forwards.clear()
    again = segzoo.predict(folder, saved_model, device="cpu", progress=False)
    assert [size for size in forwards if size == (20, 24)] == [(20, 24)] * 6
    (line,) = capsys.readouterr().err.splitlines()
    assert ("remembered from" in line) == native_bf16
    chosen_bf16 = "bf16 eager" in line
    for before, after in zip(first, again):
        # the same path gives the same masks; across paths they agree where the check said they would
        assert np.array_equal(before.mask, after.mask) or chosen_bf16


def test_predict_one_image_never_measures(tmp_path, saved_model, forwards, capsys, native_bf16, monkeypatch):
    built = []
    real = CHOICE.build_path
    monkeypatch.setattr(CHOICE, "build_path", lambda model, path, **k: built.append(path) or real(model, path, **k))
    folder = _photos(tmp_path / "photos", 1)
    assert segzoo.predict(folder, saved_model, device="cpu", progress=False)[0].ok
    assert built == [FP32] and [size for size in forwards if size == (20, 24)] == [(20, 24)]
    err = capsys.readouterr().err
    assert err.startswith("inference: fp32 eager (too few images" if native_bf16 else
                          "inference: fp32 eager (no native bfloat16")


def test_predict_quiet_says_nothing(tmp_path, saved_model, capsys):
    folder = _photos(tmp_path / "photos", 2)
    args = ["predict", str(folder), "--model", saved_model, "--device", "cpu", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert capsys.readouterr().err.splitlines() == ["inference: fp32 eager (no native bfloat16 on this CPU)"]
    assert main([*args, "--quiet", "--overwrite"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("2 written, 0 skipped")
