"""segzoo.optimize's runtimes (segzoo.inference.paths, onnx_runtime, compiled): ONNX Runtime in fp32 and int8
(static quantization, calibrated), torch.compile with freezing in fp32 and bf16, the measured ``auto`` choice among
runtimes, their errors, and the --runtime / --calibration options of segzoo predict."""
import copy
import importlib
import re
import warnings

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from torch import nn

import segzoo
from segzoo import create_model
from segzoo.errors import ConfigError, SegzooError
from segzoo.inference import paths
from segzoo.inference.compiled import CompiledModel, compiled_model
from segzoo.inference.onnx_runtime import OnnxRuntimeModel, onnx_runtime_model
from segzoo.inference.paths import candidate_paths, check_path, optimize
from segzoo.inference.precision import inference_precision, inference_runtime
from segzoo.testing import randomize_batch_norm
from segzoo.tools.cli import main

CHOICE = importlib.import_module("segzoo.inference.path_choice")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_batch_norm(create_model("fcn_resnet18", num_classes=3, output_stride=16)).eval()


def _images(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _relative_error(got, expected):
    return ((got - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture(scope="module")
def int8_model(model, tmp_path_factory):
    calibration = [_images(1, 3, 64, 64, seed=seed) for seed in range(4)]
    return onnx_runtime_model(model, "int8", calibration_images=calibration,
                              work_dir=tmp_path_factory.mktemp("int8"))


# --- ONNX Runtime ---------------------------------------------------------------------------------------------------

def test_onnxruntime_fp32_equals_eager_at_any_size(model):
    fast = optimize(model, "fp32", "onnxruntime")
    assert isinstance(fast, OnnxRuntimeModel) and fast.config == model.config
    assert fast.path is None  # a temporary export: read by the session, then removed
    assert (inference_precision(fast), inference_runtime(fast)) == ("fp32", "onnxruntime")
    for shape in ((1, 3, 64, 64), (2, 3, 45, 71)):  # the export is dynamic in batch, height and width
        images = _images(*shape)
        with torch.inference_mode():
            expected, got = model(images), fast(images)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(SegzooError, match="inference-only|folded|cannot be saved|inference only"):
        segzoo.save_pretrained(fast, "unused")


def test_int8_is_quantized_and_close_to_fp32(model, int8_model):
    assert (inference_precision(int8_model), inference_runtime(int8_model)) == ("int8", "onnxruntime")
    graph = onnx.load(str(int8_model.path))  # kept in its work_dir
    images = _images(1, 3, 64, 64, seed=9)  # not a calibration image
    with torch.inference_mode():
        expected, got = model(images), int8_model(images)
    # 8-bit activations and weights: a few percent of the logits' range (random weights, no class margins)
    assert got.shape == expected.shape and _relative_error(got, expected) < 0.15
    assert _relative_error(got, expected) > 1e-4  # it is not the float32 graph
    ops = {node.op_type for node in graph.graph.node}
    int8_weights = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and len(int8_weights) >= 20  # 20 convs + classifier


def test_int8_needs_calibration_and_onnxruntime(model):
    with pytest.raises(ConfigError, match="int8 needs calibration_images"):
        optimize(model, "int8", "onnxruntime")
    with pytest.raises(ConfigError, match="runtime eager does not compute in int8 .*int8 runs on onnxruntime"):
        optimize(model, "int8", "eager", calibration_images=_images(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="runtime onnxruntime does not compute in bf16"):
        check_path("bf16", "onnxruntime")
    with pytest.raises(ConfigError, match="runtime must be one of auto, eager, compile, onnxruntime"):
        check_path("fp32", "tensorrt")
    with pytest.raises(ConfigError, match="runtime onnxruntime runs on the CPU here; the device is meta"):
        optimize(nn.Conv2d(3, 3, 1, device="meta"), "fp32", "onnxruntime")
    with pytest.raises(ConfigError, match="calibration_images must be a float tensor"):
        optimize(model, "int8", "onnxruntime", calibration_images=[np.zeros((3, 8, 8))])


# --- torch.compile with freezing ------------------------------------------------------------------------------------

class ConvNet(nn.Sequential):
    """Small enough to compile in seconds; BatchNorm with non-trivial statistics, so freezing has to fold it."""

    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
        torch.manual_seed(0)
        randomize_batch_norm(self)


@pytest.mark.slow  # 12 s each: inductor compiles; the default tier keeps auto's choice among the paths
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("bf16", 0.05)])
def test_compile_with_freezing_keeps_the_answer(precision, tolerance):
    net = ConvNet().eval()
    images = _images(2, 3, 16, 20)
    with torch.inference_mode():
        expected = net(images)
    compiled = optimize(copy.deepcopy(net), precision, "compile")
    assert isinstance(compiled, CompiledModel)
    assert (inference_precision(compiled), inference_runtime(compiled)) == (precision, "compile")
    got = compiled(images)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert _relative_error(got, expected) <= tolerance
    if precision == "bf16":
        assert _relative_error(got, expected) > 0  # it did compute in bfloat16


def test_compiled_model_refuses_int8():
    with pytest.raises(ConfigError, match="the compile path computes in fp32 or bf16, not 'int8'"):
        compiled_model(ConvNet(), "int8")


def test_int8_writes_nothing_outside_its_folders(tmp_path, monkeypatch):
    """onnxruntime's quantization tools write scratch files into the working directory when they give up on a
    step; segzoo runs them in its own folder, and the temporary folder goes once the session has the graph."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    net = optimize(ConvNet().eval(), "int8", calibration_images=_images(1, 3, 16, 16))
    assert net.precision == "int8" and net.path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"] and not any((tmp_path / "tmp").iterdir())
    relative = onnx_runtime_model(ConvNet().eval(), "int8", calibration_images=[_images(1, 3, 16, 16)],
                                  work_dir="kept")  # a relative work_dir survives the directory change
    assert relative.path.resolve() == (tmp_path / "kept" / "model.int8.onnx").resolve() and relative.path.is_file()


# --- auto among runtimes --------------------------------------------------------------------------------------------

def test_auto_runtime_lists_onnxruntime_where_installed_and_compile_only_by_name(monkeypatch, native_bf16):
    bf16 = [("bf16", "eager")] if native_bf16 else []
    assert candidate_paths("auto", "auto") == [("fp32", "eager"), ("fp32", "onnxruntime"), *bf16]
    assert candidate_paths("auto", "auto", calibration=True)[-1] == ("int8", "onnxruntime")
    assert candidate_paths("fp32", "compile") == [("fp32", "compile")]
    monkeypatch.setattr(paths, "onnx_runtime_available", lambda: False)
    assert candidate_paths("auto", "auto") == [("fp32", "eager"), *bf16]
    with pytest.raises(ConfigError, match="pip install 'segzoo\\[onnx\\]'"):
        check_path("fp32", "onnxruntime")


def test_auto_keeps_the_fastest_path_that_agrees(monkeypatch, native_bf16):
    order = {("fp32", "eager"): 3.0, ("fp32", "onnxruntime"): 2.0, ("bf16", "eager"): 2.5, ("int8", "onnxruntime"): 1.0}
    monkeypatch.setattr(paths, "_latencies", lambda runs, rounds=3: {path: order[path] for path in runs})
    model = ConvNet().eval()  # exports in a second
    images = _images(1, 3, 64, 64, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # on the bf16 CPU pinned here, this one-conv net may lose bf16's answer
        chosen = optimize(model, "auto", "auto", check_images=images)  # no calibration: int8 is not a candidate
    assert isinstance(chosen, OnnxRuntimeModel) and chosen.precision == "fp32"
    report = chosen.optimize_report
    assert (report.precision, report.runtime) == ("fp32", "onnxruntime")
    trials = [(t.name, t.latency_s) for t in report.trials]
    assert trials[:2] == [("eager/fp32", 3.0), ("onnxruntime/fp32", 2.0)]
    assert [name for name, _ in trials[2:]] == (["eager/bf16"] if native_bf16 else [])
    assert all(t.agreement > 0.999 for t in report.trials[:2]) and "fastest of" in str(report)
    assert torch.allclose(chosen(images), model(images), atol=1e-4)
    # int8, calibrated, on a random model (no margins): its agreement decides, and the report says it
    monkeypatch.setattr(paths, "AGREEMENT_THRESHOLD", 1.01)
    with pytest.warns(RuntimeWarning, match=r"left out .*onnxruntime/int8: agreement .*below the threshold"):
        chosen = optimize(model, "auto", "auto", check_images=images, calibration_images=[images * 0.9])
    assert chosen.precision == "fp32" and [t.name for t in chosen.optimize_report.trials][-1] == "onnxruntime/int8"
    monkeypatch.setattr(paths, "AGREEMENT_THRESHOLD", 0.0)
    chosen = optimize(model, "auto", "auto", check_images=images, calibration_images=[images * 0.9])
    assert chosen.precision == "int8" and chosen.optimize_report.trials[-1].latency_s == 1.0
    assert optimize(model, "int8", calibration_images=[images]).runtime == "onnxruntime"  # int8's own runtime


def test_a_path_that_fails_is_reported_and_skipped(monkeypatch, native_bf16):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded\nwith a traceback")

    monkeypatch.setattr(paths, "onnx_runtime_model", broken)
    model = ConvNet().eval()
    with pytest.warns(RuntimeWarning, match="left out onnxruntime/fp32: failed"):
        chosen = optimize(model, "auto", "auto", check_images=_images(1, 3, 32, 32))
    trials = chosen.optimize_report.trials
    assert [t.name for t in trials] == ["eager/fp32", "onnxruntime/fp32"] + (["eager/bf16"] if native_bf16 else [])
    (eager, failed) = trials[:2]
    assert eager.passed and failed.error == "RuntimeError: exporter exploded" and not failed.passed
    assert inference_runtime(chosen) == "eager"
    with pytest.raises(RuntimeError, match="exporter exploded"):  # asked for by name: the error itself
        optimize(model, "fp32", "onnxruntime", check_images=_images(1, 3, 32, 32))


# --- segzoo predict -------------------------------------------------------------------------------------------------

@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)).save(tmp_path / f"photo{index}.png")
    (tmp_path / "calibration").mkdir()
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(tmp_path / "calibration" / "c.png")
    return tmp_path


def test_predict_command_runs_int8_and_onnxruntime(photos, capsys, monkeypatch):
    made = []
    real = CHOICE.build_path
    monkeypatch.setattr(CHOICE, "build_path", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    common = ["--model", "fcn_resnet18", "--num-classes", "3", "--device", "cpu", "--npy"]
    assert main(["predict", str(photos / "photo0.png"), *common, "--out", str(photos / "int8"), "--precision", "int8",
                 "--calibration", str(photos / "calibration")]) == 0
    assert "1 written, 0 skipped" in capsys.readouterr().out
    assert isinstance(made[-1], OnnxRuntimeModel) and made[-1].precision == "int8"
    mask = np.load(photos / "int8" / "photo0.npy")
    assert mask.shape == (36, 44) and mask.max() < 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["predict", str(photos / "photo0.png"), str(photos / "photo1.png"), *common, "--out",
                     str(photos / "auto"), "--runtime", "auto"]) == 0
    # two images cannot pay for measuring onnxruntime (an export, then timed batches): float32 eager, said so
    assert capsys.readouterr().err.splitlines() == [
        "inference: fp32 eager (too few images to measure fp32 onnxruntime: it takes 5 batches)"]
    assert inference_runtime(made[-1]) == "eager" and len(made) == 2


@pytest.mark.parametrize("extra, message", [
    (["--precision", "int8"], "precision int8 needs calibration images"),
    (["--precision", "fp32", "--calibration", "CAL"], "calibration images serve precision int8 only"),
    (["--precision", "int8", "--calibration", "MISSING"], "calibration: .*MISSING"),
    (["--precision", "bf16", "--runtime", "onnxruntime"], "runtime onnxruntime does not compute in bf16"),
])
def test_predict_refuses_bad_paths_before_reading_images(photos, capsys, extra, message):
    extra = [str(photos / "calibration") if e == "CAL" else str(photos / "missing") if e == "MISSING" else e
             for e in extra]
    code = main(["predict", str(photos / "photo0.png"), "--model", "fcn_resnet18", "--num-classes", "3", "--device",
                 "cpu", "--out", str(photos / "out"), *extra])
    assert code != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message.replace("MISSING", "missing"), err)
    assert not (photos / "out").exists()


def test_auto_keeps_attention_heads_chunked(monkeypatch, native_bf16):
    """DANet / OCNet exported to ONNX hold the full (HW x HW) attention: auto leaves onnxruntime out for them, and
    asking for it by name warns (the export itself is stubbed: only the choice is tested here)."""
    ocnet = create_model("ocnet_resnet18", num_classes=3, output_stride=16).eval()
    monkeypatch.setattr(paths, "_latencies", lambda runs, rounds=3: {path: 1.0 for path in runs})
    monkeypatch.setattr(paths, "AGREEMENT_THRESHOLD", 0.0)  # random weights: bf16's agreement is not tested here
    chosen = optimize(ocnet, "auto", "auto", check_images=_images(1, 3, 32, 32))
    # one eager candidate is nothing to measure; with native bf16, fp32 and bf16 eager are, never onnxruntime
    assert [t.name for t in chosen.optimize_report.trials] == (["eager/fp32", "eager/bf16"] if native_bf16 else [])
    assert inference_runtime(chosen) == "eager"
    monkeypatch.setattr(paths, "onnx_runtime_model", lambda model, *a, **k: model)
    with pytest.warns(RuntimeWarning, match="computes its spatial attention in one pass"):
        optimize(ocnet, "fp32", "onnxruntime")
    assert not paths._attention_unchunked_when_exported(create_model("fcn_resnet18", num_classes=3))
