"""Precision on the CPU (segzoo.inference.precision, segzoo.inference.paths): bf16 capability detection, the fp32 /
bf16 / auto choice on the eager runtime, the agreement guard, optimize_for_inference under bf16 (autocast, bf16
models) and its torch-version gate, and the --precision options of segzoo predict / benchmark."""
import copy
import importlib
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import segzoo
from segzoo import create_model
from segzoo.errors import ConfigError
from segzoo.inference import paths, precision
from segzoo.inference.optimize import FusedConv2d, is_optimized_for_inference, optimize_for_inference, packed_conv
from segzoo.inference.paths import PRECISIONS, candidate_paths, optimize
from segzoo.inference.precision import (
    AGREEMENT_THRESHOLD,
    BFloat16Model,
    argmax_agreement,
    bf16_model,
    inference_precision,
)
from segzoo.testing import randomize_batch_norm
from segzoo.tools.benchmark import BenchmarkResult, format_table
from segzoo.tools.cli import main

CHOICE = importlib.import_module("segzoo.inference.path_choice")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_batch_norm(create_model("fcn_resnet18", num_classes=3, output_stride=16)).eval()


@pytest.fixture
def images():
    return torch.randn(2, 3, 48, 40, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def fast_bf16(monkeypatch):
    """Pin the CPU: ``fast_bf16(True)`` has native bf16, ``fast_bf16(False)`` has not."""
    def simulate(has: bool):
        monkeypatch.setenv(precision.FAST_BF16_ENV, "1" if has else "0")
    return simulate


@pytest.fixture
def bf16_faster(monkeypatch):
    """Time the candidate paths as a CPU with native bf16 would (bf16 twice as fast as fp32): this machine may
    emulate bf16, and a test must not depend on the shared machine's timing."""
    monkeypatch.setattr(paths, "_latencies", lambda runs, rounds=3: {
        path: (0.5 if path[0] == "bf16" else 1.0) for path in runs})


@pytest.fixture
def fresh_detection(monkeypatch):
    monkeypatch.delenv(precision.FAST_BF16_ENV)  # the real detection, not the tests' pin
    precision._detect_fast_bf16.cache_clear()
    yield
    precision._detect_fast_bf16.cache_clear()


def _cpuinfo_has_bf16():
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None
    flags = set(next((line for line in text.splitlines() if line.startswith("flags")), "").split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


# --- detection ----------------------------------------------------------------------------------------------------

def test_real_detection_on_this_machine_and_auto_falls_back_to_fp32_without_bf16(fresh_detection):
    has = precision.cpu_has_fast_bf16()
    assert isinstance(has, bool) and precision.fast_bf16_signal()
    if _cpuinfo_has_bf16() is False:  # e.g. AVX2-only machines: no native bf16 -> auto is fp32
        assert not has
        assert candidate_paths("auto") == [("fp32", "eager")]
    elif _cpuinfo_has_bf16() and torch.backends.mkldnn.is_available():  # AVX512-BF16 / AMX machines
        assert has
        assert candidate_paths("auto") == [("fp32", "eager"), ("bf16", "eager")]
    assert candidate_paths("auto", "eager", "cuda") == [("fp32", "eager")]
    assert candidate_paths("bf16", "eager") == [("bf16", "eager")]


def test_detection_reads_torch_capabilities_then_older_torch_then_cpuinfo(monkeypatch, fresh_detection):
    def detect():
        precision._detect_fast_bf16.cache_clear()
        return precision.cpu_has_fast_bf16(), precision.fast_bf16_signal()

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True, "avx512_bf16": False},
                        raising=False)
    assert detect() == (True, "torch.cpu.get_capabilities(): amx_bf16=True, avx512_bf16=False")
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True, "amx_bf16": False, "avx512_bf16": False},
                        raising=False)
    assert detect()[0] is False
    # a torch without get_capabilities: its _is_* functions
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert detect() == (True, "torch.cpu._is_amx_tile_supported / _is_avx512_bf16_supported: amx_tile=False, "
                              "avx512_bf16=True")
    # neither: /proc/cpuinfo
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: {"avx2", "amx_bf16"})
    assert detect() == (True, "/proc/cpuinfo flags: amx_bf16=True, avx512_bf16=False")
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: None)
    assert detect()[0] is False
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert detect()[0] is False  # no oneDNN: no fast bf16 convolutions whatever the CPU


# --- the choice -----------------------------------------------------------------------------------------------------

def test_auto_picks_bf16_only_on_a_cpu_with_native_bf16_and_only_checked(model, images, fast_bf16, monkeypatch,
                                                                          bf16_faster):
    fast_bf16(True)
    unchecked = optimize(model, "auto")  # never bf16 without an agreement check
    assert not isinstance(unchecked, BFloat16Model) and inference_precision(unchecked) == "fp32"
    assert "no check images" in unchecked.optimize_report.reason
    monkeypatch.setattr(paths, "AGREEMENT_THRESHOLD", 0.0)
    chosen = optimize(model, "auto", check_images=images)
    assert isinstance(chosen, BFloat16Model) and inference_precision(chosen) == "bf16"
    assert chosen.config == model.config and segzoo.optimize is optimize
    fast_bf16(False)
    chosen = optimize(model, "auto")
    assert not isinstance(chosen, BFloat16Model) and is_optimized_for_inference(chosen)
    assert inference_precision(chosen) == "fp32"
    assert not is_optimized_for_inference(model)  # not inplace: the model is left as it was
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, int8"):
        optimize(model, "fp16")
    assert PRECISIONS == ("auto", "fp32", "bf16", "int8")


def test_fp32_path_is_todays_optimize_for_inference(model, images, fast_bf16):
    fast_bf16(True)  # fp32 asked for: fp32 even on a bf16 CPU
    chosen, today = optimize(model, "fp32"), optimize_for_inference(model)
    with torch.inference_mode():
        assert torch.equal(chosen(images), today(images))
    assert all(layer._packed is not None for layer in chosen.modules() if isinstance(layer, FusedConv2d)) \
        or not packed_conv.packing_available()


def test_bf16_path_computes_in_bf16_and_returns_float32_logits(model, images, fast_bf16):
    fast_bf16(True)
    chosen = optimize(model, "bf16")
    seen = []
    for layer in chosen.modules():
        if isinstance(layer, FusedConv2d):
            layer.register_forward_hook(lambda layer, inputs, out: seen.append(
                (inputs[0].dtype, layer.weight.dtype, out.dtype, inputs[0].is_contiguous(
                    memory_format=torch.channels_last))))
    with torch.inference_mode():
        logits = chosen(images)
        reference = model(images)
    assert len(seen) == 22 and set(seen) == {(torch.bfloat16, torch.bfloat16, torch.bfloat16, True)}
    assert logits.dtype == torch.float32 and logits.shape == reference.shape == (2, 3, 48, 40)
    # random weights have no class margins: compare the logits, not the argmax
    assert (logits - reference).abs().max() <= 0.1 * reference.abs().max()
    assert next(model.parameters()).dtype == torch.float32 and not is_optimized_for_inference(model)


def test_bf16_without_folding_converts_every_conv():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval()
    wrapped = bf16_model(net, fold=False, memory_format=torch.contiguous_format)
    assert wrapped(torch.randn(1, 3, 8, 8)).dtype == torch.float32
    assert net[0].weight.dtype == torch.float32 and wrapped.model[0].weight.dtype == torch.bfloat16  # a copy
    seen = []
    net[0].register_forward_hook(lambda conv, inputs, out: seen.append((inputs[0].dtype, conv.weight.dtype)))
    wrapped = bf16_model(net, fold=False, inplace=True)
    wrapped(torch.randn(1, 3, 8, 8))
    assert seen == [(torch.bfloat16, torch.bfloat16)] and wrapped.model is net


def test_attention_head_runs_chunked_in_bf16(fast_bf16):
    torch.manual_seed(0)
    ocnet = randomize_batch_norm(create_model("ocnet_resnet18", num_classes=3, output_stride=16)).eval()
    fast_bf16(True)
    chosen = optimize(ocnet, "auto")
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        out, reference = chosen(x), ocnet(x)
    assert out.dtype == torch.float32 and out.shape == reference.shape and torch.isfinite(out).all()
    assert (out - reference).abs().max() <= 0.1 * reference.abs().max()


def test_bf16_is_refused_off_the_cpu_and_slow_bf16_is_warned_about(model, fast_bf16):
    fast_bf16(False)
    precision._warn_slow_bf16.cache_clear()
    with pytest.warns(RuntimeWarning, match="runs emulated"):
        assert isinstance(optimize(model, "bf16"), BFloat16Model)
    precision._warn_slow_bf16.cache_clear()
    with pytest.raises(ConfigError, match="precision bf16 is a CPU path; the device is meta"):
        optimize(nn.Conv2d(3, 3, 1, device="meta"), "bf16")


# --- the agreement guard ------------------------------------------------------------------------------------------

def test_argmax_agreement():
    reference = torch.zeros(1, 3, 4, 5)
    reference[:, 1] = 1.0  # class 1 everywhere
    logits = reference.clone()
    logits[0, 2, :1] = 2.0  # the first row (5 of 20 pixels) becomes class 2
    assert argmax_agreement(reference, reference) == 1.0
    assert argmax_agreement(reference, logits) == pytest.approx(0.75)
    assert argmax_agreement(reference[:, 1:2], -reference[:, 1:2], mode="binary") == 0.0  # sigmoid > 0.5 flipped
    assert argmax_agreement(reference, logits, mode="multilabel") == pytest.approx(55 / 60)
    with pytest.raises(ValueError, match="differ in shape"):
        argmax_agreement(reference, logits[..., :4])


class LosesItsAnswerInBf16(nn.Module):
    """Two class scores 0.01 apart on top of 1000: float32 tells them apart (class 1), bfloat16 (8 bits of
    mantissa: steps of 4 at 1000) rounds both to 1000 (class 0)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        self.offset = nn.Parameter(torch.tensor([1000.0, 1000.01]).view(1, 2, 1, 1))

    def forward(self, x):
        return torch.zeros_like(self.conv(x)) + self.offset


def test_auto_falls_back_to_fp32_when_bf16_loses_the_answer(fast_bf16, images, bf16_faster):
    fast_bf16(True)
    net = LosesItsAnswerInBf16().eval()
    with pytest.warns(RuntimeWarning, match=r"left out eager/bf16: agreement 0\.00% \(below the threshold\)"):
        chosen = optimize(net, "auto", check_images=images)
    assert not isinstance(chosen, BFloat16Model) and inference_precision(chosen) == "fp32"
    assert chosen(images).argmax(1).eq(1).all()
    report = chosen.optimize_report  # bf16 was faster, but lost the answer
    assert [(t.name, t.agreement, t.passed) for t in report.trials] == [("eager/fp32", 1.0, True),
                                                                         ("eager/bf16", 0.0, False)]
    with pytest.warns(RuntimeWarning, match="below 99.5%"):  # asked for explicitly: kept, with a warning
        assert isinstance(optimize(net, "bf16", check_images=[images[0]]), BFloat16Model)


def test_auto_keeps_bf16_when_it_agrees(model, images, fast_bf16, monkeypatch, bf16_faster):
    fast_bf16(True)
    monkeypatch.setattr(paths, "AGREEMENT_THRESHOLD", 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(optimize(model, "auto", check_images=images), BFloat16Model)
    monkeypatch.setattr(paths, "AGREEMENT_THRESHOLD", 1.0)  # a random model never agrees on every pixel
    with pytest.warns(RuntimeWarning, match="left out eager/bf16"):
        assert is_optimized_for_inference(optimize(model, "auto", check_images=images))
    assert AGREEMENT_THRESHOLD == 0.995
    with pytest.raises(ConfigError, match="check_images"):
        optimize(model, "auto", check_images=[torch.zeros(3, 4, dtype=torch.long)])


# --- optimize_for_inference keeps the precision it is run in ------------------------------------------------------

def test_optimize_for_inference_under_bf16_autocast_computes_in_bf16(model, images):
    fast = optimize_for_inference(model)
    dtypes = []
    for layer in fast.modules():
        if isinstance(layer, FusedConv2d):
            layer.register_forward_hook(lambda layer, inputs, out: dtypes.append(out.dtype))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got, expected = fast(images), model(images)
    assert set(dtypes) == {torch.bfloat16} and got.dtype == torch.bfloat16
    assert all(layer._packed is None for layer in fast.modules() if isinstance(layer, FusedConv2d))
    assert (got.float() - expected.float()).abs().max() <= 0.05 * expected.float().abs().max()
    dtypes.clear()
    with torch.inference_mode():  # autocast over: float32 and packed again
        fast(images)
    assert set(dtypes) == {torch.float32}
    with torch.autocast("cpu", dtype=torch.bfloat16):  # built under autocast: checked in float32, no error
        assert is_optimized_for_inference(optimize_for_inference(model))


def test_optimize_for_inference_of_a_bf16_model_runs_in_bf16(model, images):
    bf16 = optimize_for_inference(model).to(torch.bfloat16)  # folded in float32, then cast
    direct = optimize_for_inference(copy.deepcopy(model).to(torch.bfloat16))
    for fast in (bf16, direct):
        with torch.inference_mode():
            out = fast(images.bfloat16())
        assert out.dtype == torch.bfloat16
        assert {layer.weight.dtype for layer in fast.modules() if isinstance(layer, FusedConv2d)} == {torch.bfloat16}


# --- the version gate -----------------------------------------------------------------------------------------------

@pytest.fixture
def fresh_gate():
    packed_conv.packing_available.cache_clear()
    yield
    packed_conv.packing_available.cache_clear()


def test_packing_is_gated_on_tested_torch_versions_and_falls_back(model, images, monkeypatch, fresh_gate):
    first, last = packed_conv.TESTED_TORCH
    if packed_conv.packing_problem() is None:
        assert first <= packed_conv._torch_version(torch.__version__) < last
    monkeypatch.setattr(packed_conv, "TESTED_TORCH", ((0, 1), (1, 0)))
    assert "outside the versions the packing is tested with (>= 0.1, < 1.0)" in packed_conv.packing_problem()
    with pytest.warns(RuntimeWarning, match="without oneDNN weight pre-packing"):
        fast = optimize_for_inference(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per process, not per call
        with torch.inference_mode():
            got = fast(images)
            torch.testing.assert_close(got, model(images), rtol=1e-4, atol=1e-5)
    layers = [layer for layer in fast.modules() if isinstance(layer, FusedConv2d)]
    assert layers and all(layer._packed is None and layer.weight is not None for layer in layers)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_gate_catches_changed_private_ops(monkeypatch):
    monkeypatch.setattr(packed_conv, "TESTED_TORCH", ((0, 0), (99, 0)))
    def broken():
        raise RuntimeError("mkldnn::_convolution_pointwise() expected at most 10 argument(s)")

    monkeypatch.setattr(packed_conv, "_packed_convolution_error", broken)
    assert packed_conv.packing_problem().startswith("a packed test convolution failed (RuntimeError")
    monkeypatch.setattr(packed_conv, "_packed_convolution_error", lambda: float("nan"))
    assert "differs from F.conv2d" in packed_conv.packing_problem()
    assert packed_conv._torch_version("2.14.1+cu130") == (2, 14) and packed_conv._torch_version("dev") == (0, 0)


# --- CLI and predict ------------------------------------------------------------------------------------------------

def test_predict_command_runs_bf16_end_to_end(tmp_path, capsys, monkeypatch):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (36, 44, 3), dtype=np.uint8)).save(photo)
    made = []
    real_build = CHOICE.build_path
    monkeypatch.setattr(CHOICE, "build_path", lambda *args, **kwargs: made.append(real_build(*args, **kwargs))
                        or made[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bf16 emulated (pinned absent): said in the inference line, never warned
        assert main(["predict", str(photo), "--model", "fcn_resnet18", "--num-classes", "3", "--out",
                     str(tmp_path / "out"), "--device", "cpu", "--precision", "bf16", "--npy"]) == 0
    out, err = capsys.readouterr()
    assert "1 written, 0 skipped" in out
    assert err.splitlines() == ["inference: bf16 eager (as asked; this CPU emulates bfloat16: several times slower "
                                "than fp32)"]
    assert len(made) == 1 and isinstance(made[0], BFloat16Model)
    mask = np.load(tmp_path / "out" / "photo.npy")
    assert mask.shape == (36, 44) and mask.dtype == np.uint8 and mask.max() < 3
    assert Image.open(tmp_path / "out" / "photo_mask.png").size == (44, 36)


@pytest.mark.parametrize("command", [["predict", "x.png", "--model", "fcn_resnet18"], ["benchmark", "fcn_resnet18"]])
def test_bad_precision_is_a_usage_error(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--precision", "fp16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_predict_leaves_a_model_passed_in_alone_unless_precision_is_given(tmp_path, monkeypatch):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(photo)
    net = create_model("fcn_resnet18", num_classes=3, output_stride=16)
    calls = []
    monkeypatch.setattr(CHOICE, "build_path", lambda model, path, **k: calls.append((model, path, k["inplace"]))
                        or model)
    (result,) = segzoo.predict(photo, net, device="cpu", progress=False)
    assert result.ok and calls == []
    segzoo.predict(photo, net, device="cpu", progress=False, precision="fp32")
    assert calls == [(net, ("fp32", "eager"), False)]  # not in place: the caller's model is not modified
    with pytest.raises(ConfigError, match="precision must be one of"):
        segzoo.predict(photo, net, device="cpu", precision="half")


def test_benchmark_rows_say_which_precision_they_ran_in():
    (row,) = segzoo.benchmark(["fcn_resnet18"], size=(32, 32), runs=1, num_classes=2, precision="bf16")
    assert row.precision == "bf16" and row.optimized and row.latency_s > 0
    header, _, line = format_table([row]).splitlines()[:3]
    assert header.split()[2:4] == ["prec", "runtime"] and line.split()[2:5] == ["bf16", "eager", "yes"]
    fp32 = BenchmarkResult("tv:fcn_resnet50", (32, 32), 1, "cpu", True, "eval", False, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
                           1.0)
    assert fp32.precision == "fp32" and format_table([fp32]).splitlines()[2].split()[2:5] == ["fp32", "eager", "no"]
    with pytest.raises(ConfigError, match="a training step"):
        segzoo.benchmark(["fcn_resnet18"], precision="bf16", train=True)
    with pytest.raises(ConfigError, match="precision must be one of"):
        segzoo.benchmark(["fcn_resnet18"], precision="fp16")
