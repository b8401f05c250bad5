"""Export (ONNX, torch.export) at dynamic sizes and torch.compile, every head against eager PyTorch."""
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segzoo import SegzooError, create_model, export
from segzoo.inference.export import ExportCheckError, check_export
from segzoo.weights.checkpoint import current_umask

SEGZOO = str(Path(sysconfig.get_path("scripts")) / "segzoo")  # the console script pip installed
EXPORT_SIZE = (64, 64)
CHECK_SIZES = [(2, 64, 64), (1, 96, 80)]  # (batch, H, W): the export size and another one

# Every head on resnet18; OS8 is create_model's default. The default run exports two heads whose eager code has
# an export formulation (PSPNet's adaptive pooling, the chunked attention); the rest is marked slow.
HEADS = {
    "fcn": dict(output_stride=8),
    "pspnet": dict(),
    "pspnet_jpu": dict(neck="jpu"),
    "deeplabv3": dict(output_stride=16),
    "danet": dict(),
    "danet_queries": dict(softmax_over="queries"),
    "ocnet": dict(),
    "ocnet_asp": dict(variant="asp"),
    "ccnet": dict(),
    "bisenet": dict(output_stride=32),
}
DEFAULT_RUN = {"danet"}  # the attention export (one pass, no chunks); the other heads are the slow tier's variants


def build(key):
    """A resnet18 model with every attention branch switched on (gamma and OCNet's output projection start at
    zero, which would hide the attention from any comparison)."""
    torch.manual_seed(0)
    model = create_model(f"{key.split('_')[0]}_resnet18", num_classes=3, **HEADS[key])
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("gamma"):
                parameter.fill_(0.7)
            elif ".out_proj." in name:
                parameter.normal_(0, 0.05)
    return model


def params(keys, default=DEFAULT_RUN):
    return [pytest.param(key, marks=() if key in default else pytest.mark.slow) for key in keys]


def assert_checks_pass(path, model, format):
    results = check_export(path, model, format, sizes=CHECK_SIZES)
    assert [r.shape for r in results] == [(b, 3, h, w) for b, h, w in CHECK_SIZES]
    assert all(r.ok for r in results), results


@pytest.mark.parametrize("key", params(HEADS))
def test_onnx_export_runs_at_other_sizes(key, tmp_path):
    import onnx

    model = build(key)
    path = export(model, tmp_path / f"{key}.onnx", size=EXPORT_SIZE)  # checked: 64x64, 49x51 (batch 2)
    graph = onnx.load(str(path)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert [i.name for i in graph.input] == ["images"] and dims == ["batch", 3, "height", "width"]
    assert_checks_pass(path, model, "onnx")  # onnxruntime at 64x64 (batch 2) and 96x80 (batch 1)


def test_torch_export_round_trip_leaves_the_model_alone(tmp_path):
    model = build("pspnet").train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = export(model, tmp_path / "sub" / "psp.pt2", "torch.export", size=EXPORT_SIZE)  # checked
    assert model.training and model.channels_last
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    # torch.export.load, then another size and batch
    program = torch.export.load(str(path))
    images = torch.randn(3, 3, 96, 80)
    with torch.no_grad():
        expected = model.eval()(images)
    torch.testing.assert_close(program.module()(images), expected, atol=1e-4, rtol=0)


def test_export_argument_errors(tmp_path):
    model = build("fcn")
    with pytest.raises(SegzooError, match="format must be one of onnx, torch.export"):
        export(model, tmp_path / "x", "tflite")
    with pytest.raises(SegzooError, match="need a model name"):
        export(model, tmp_path / "x.onnx", num_classes=3)
    with pytest.raises(SegzooError, match="opset applies to ONNX exports only"):
        export(model, tmp_path / "x.pt2", "torch.export", opset=18)


@pytest.mark.parametrize("key", params(HEADS, default=()))
def test_torch_export_round_trip(key, tmp_path):
    model = build(key)
    path = export(model, tmp_path / f"{key}.pt2", "torch.export", size=EXPORT_SIZE, check=False)
    assert_checks_pass(path, model, "torch.export")


@pytest.mark.slow
def test_static_onnx_export(tmp_path):
    import onnx

    model = build("fcn")
    path = export(model, tmp_path / "fcn.onnx", size=(48, 40), dynamic=False, opset=18)
    proto = onnx.load(str(path))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 48, 40]
    assert {o.domain: o.version for o in proto.opset_import}[""] == 18
    assert all(r.ok for r in check_export(path, model, sizes=[(1, 48, 40)]))


def test_check_reports_a_mismatch(tmp_path):
    model = build("fcn")
    path = export(model, tmp_path / "fcn.pt2", "torch.export", size=EXPORT_SIZE, check=False)
    with torch.no_grad():
        model.head.fcn.classifier.bias.add_(1e-2)
    results = check_export(path, model, sizes=[(1, 40, 40)])
    assert not results[0].ok and results[0].max_abs_diff == pytest.approx(1e-2, rel=1e-3)
    assert "FAILED" in str(results[0])
    with pytest.raises(ExportCheckError, match="returned shape|failed to run"):
        check_export(path, create_model("fcn_resnet18", num_classes=5), sizes=[(1, 40, 40)])


# --- the export formulations, against eager, without exporting -------------------------------------------------

@pytest.mark.parametrize("size", [(8, 8), (5, 7), (1, 3), (13, 2), (60, 61)])
def test_psp_pooling_export_formulation_matches_adaptive_pooling(monkeypatch, size):
    from segzoo.heads import pspnet
    from segzoo.heads.pspnet import adaptive_avg_pool2d

    monkeypatch.setattr(pspnet, "is_exporting", lambda: True)
    x = torch.randn(2, 4, *size)
    for bins in (1, 2, 3, 4, 6, 12):
        torch.testing.assert_close(adaptive_avg_pool2d(x, bins), F.adaptive_avg_pool2d(x, bins), atol=1e-5, rtol=0)


@pytest.mark.parametrize("softmax_over", ["keys", "queries"])
def test_attention_export_formulation_matches_chunked_attention(monkeypatch, softmax_over):
    from segzoo.layers import attention

    q, k, v = torch.randn(2, 30, 8), torch.randn(2, 41, 8), torch.randn(2, 41, 24)
    chunked = attention.spatial_attention(q, k, v, 0.7, softmax_over, max_elements=7)  # many chunks
    monkeypatch.setattr(attention, "is_exporting", lambda: True)
    torch.testing.assert_close(attention.spatial_attention(q, k, v, 0.7, softmax_over, max_elements=7), chunked)


# --- the command line ------------------------------------------------------------------------------------------

@pytest.mark.slow  # 14 s: ONNX export and its check are the default tier's through the API (above)
def test_cli_export_onnx(tmp_path):
    out = tmp_path / "models" / "fcn.onnx"
    result = subprocess.run([SEGZOO, "export", "fcn_resnet18", "--format", "onnx", "--out", str(out), "--size",
                             "64", "64", "--num-classes", "3"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()  # the check, then the file, put in place once it passed
    assert lines[2] == f"wrote {out} (onnx, dynamic batch, height and width)" and out.is_file()
    assert len(lines) == 3 and all("max abs diff" in line and "(ok" in line for line in lines[:2])
    assert "batch 1 at 64x64" in lines[0] and "batch 2 at 49x51" in lines[1]


def test_cli_export_help_explains_every_option(capsys):
    from segzoo.tools.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    for option in ("NAME", "--format", "--dynamic", "--no-dynamic", "--size", "--out", "--opset", "--num-classes",
                   "--no-check", "hf-hub:", "local-dir:", "torch.export", "onnxruntime"):
        assert option in text, option


def test_cli_export_error_is_a_message(tmp_path):
    from segzoo.tools.cli import main

    assert main(["export", "nohead_resnet18", "--out", str(tmp_path / "x.onnx")]) == 1


# --- nothing half-written, nothing replaced unasked -----------------------------------------------------------

TINY = "fcn_test_resnet.r160_in1k"  # timm's test ResNet: 1.6 MB, exported in seconds


def run_cli(argv, capsys) -> tuple[int, str, str]:
    from segzoo.tools.cli import main

    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_export_that_fails_its_check_leaves_no_file(fake_exporter, tmp_path, capsys):
    """A file that fails its check was left at --out (47 MB for a ResNet-101) after the error."""
    fake_exporter.mismatch = True
    out = tmp_path / "x.onnx"
    status, stdout, err = run_cli(["export", TINY, "--size", "8", "8", "--out", out], capsys)
    assert status == 1 and "Traceback" not in err and "wrote" not in stdout
    assert err.startswith(f"error: the exported {out} does not match the eager model") and err.endswith(
        f"nothing was written to {out}\n")
    assert list(tmp_path.iterdir()) == []  # no file at --out, nothing temporary


@pytest.mark.slow  # an export of the CLI at other sizes is checked in the default tier above; this is its regression
def test_an_export_traced_where_the_logits_are_at_the_input_size_serves_every_size(tmp_path, capsys):
    """At 1x1 the logits come out at the input's size and the model skipped its final resize, so the graph traced
    there returned 5x5 logits for a 33x33 input; an export now always resizes."""
    out = tmp_path / "x.onnx"
    status, stdout, err = run_cli(["export", TINY, "--size", "1", "1", "--out", out], capsys)
    assert status == 0 and f"wrote {out}" in stdout and "FAILED" not in stdout, err
    assert "batch 2 at 33x33: max abs diff" in stdout, stdout


def test_cli_export_refuses_an_existing_file(tmp_path, capsys, monkeypatch):
    out = tmp_path / "x.onnx"
    out.write_bytes(b"old")
    monkeypatch.setattr("segzoo.factory.create_model", lambda *args, **kwargs: pytest.fail("the model was built"))
    status, _, err = run_cli(["export", TINY, "--out", out], capsys)
    assert status == 1
    assert err == f"error: {out} exists (a file); pass --overwrite to replace it, or choose another path\n"
    assert out.read_bytes() == b"old"


@pytest.fixture
def fake_exporter(monkeypatch):
    """The ONNX exporter replaced by one that writes ``fake_exporter.content`` (or half of it and fails with a full
    disk when ``fake_exporter.disk_full``), and a check that fails when ``fake_exporter.mismatch``: the file
    handling of export(), without the seconds an export takes."""
    import errno
    import types

    from segzoo.inference import export as export_module
    from segzoo.inference.export import ExportCheck

    state = types.SimpleNamespace(content=b"new onnx", disk_full=False, mismatch=False)

    def write(model, example, path, dynamic, opset):
        path.write_bytes(state.content[:3] if state.disk_full else state.content)
        if state.disk_full:
            raise OSError(errno.ENOSPC, "No space left on device")

    def compare(path, format, reference, sizes, tolerance=1e-4):
        assert path.read_bytes() == state.content
        return [ExportCheck((1, 3, 8, 8), 0.5 if state.mismatch else 0.0, tolerance)]

    monkeypatch.setattr(export_module, "_export_onnx", write)
    monkeypatch.setattr(export_module, "_compare", compare)
    return state


@pytest.mark.parametrize("failure", ["mismatch", "disk_full"])
def test_export_keeps_an_existing_file_until_the_new_one_passes(failure, fake_exporter, tmp_path, capsys):
    """The API replaced the file in place and the command wrote it before checking it."""
    model = create_model(TINY)
    out = tmp_path / "x.onnx"
    out.write_bytes(b"old")
    setattr(fake_exporter, failure, True)
    error, message = {"mismatch": (ExportCheckError, r"the exported .*x.onnx does not match the eager model: .*"
                                                     r"FAILED.*; nothing was written to .*x.onnx$"),
                      "disk_full": (SegzooError, r"cannot write .*x.onnx: the disk is full$")}[failure]
    with pytest.raises(error, match=message):
        export(model, out, size=(8, 8))
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.onnx"]
    # the command: --no-check writes through a temporary name too
    argv = ["export", TINY, "--out", out, "--size", "8", "8", "--overwrite"]
    status, stdout, err = run_cli(argv + (["--no-check"] if failure == "disk_full" else []), capsys)
    assert status == 1 and len(err.splitlines()) == 1 and re.search(message, err.strip()), err
    assert ("check, onnxruntime (CPU) vs eager: batch 1 at 8x8: max abs diff 5.00e-01 (FAILED" in stdout) == \
        (failure == "mismatch") and "wrote" not in stdout
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.onnx"]
    setattr(fake_exporter, failure, False)
    status, stdout, err = run_cli(argv + ["--no-check"], capsys)
    assert status == 0 and stdout.startswith(f"wrote {out}") and out.read_bytes() == b"new onnx"
    assert [p.name for p in tmp_path.iterdir()] == ["x.onnx"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())  # not tempfile's 0o600


def test_export_output_below_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    status, _, err = run_cli(["export", TINY, "--out", tmp_path / "file" / "x.onnx"], capsys)
    assert status == 1 and err == f"error: cannot write {tmp_path / 'file' / 'x.onnx'}: {tmp_path / 'file'} is a " \
                                  f"file, not a folder\n"


def test_an_exporter_failure_is_one_line(tmp_path, capsys):
    """torch.export cannot serialise this model's graph: a raw SerializeError traceback."""
    out = tmp_path / "x.pt2"
    status, _, err = run_cli(["export", TINY, "--format", "torch.export", "--size", "32", "32", "--out", out],
                             capsys)
    assert status == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("error: torch.export could not export this model at 32x32 (") and "Traceback" not in err
    assert err.endswith(f"; nothing was written to {out}\n")
    assert list(tmp_path.iterdir()) == []


# --- torch.compile ---------------------------------------------------------------------------------------------

COMPILE_HEADS = ["fcn", "pspnet_jpu", "deeplabv3", "danet", "ocnet", "ocnet_asp", "ccnet", "bisenet"]
# Every head compiles as one graph (fullgraph=True); none needs a graph break. Dynamo's capture with AOTAutograd
# (no code generation) runs for every head in segzoo.testing.HeadBattery (tests/heads/test_builtin_heads.py).


def _has_cxx() -> bool:
    return any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++"))


def assert_compiled_matches_eager(key, backend, sizes):
    model = build(key)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    for size in sizes:
        images = torch.randn(1, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(compiled(images), model(images), atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.skipif(not _has_cxx(), reason="inductor needs a C++ compiler on the CPU")
@pytest.mark.parametrize("key", COMPILE_HEADS)
def test_torch_compile_inductor_matches_eager(key):
    """The default backend; a second size recompiles with dynamic shapes."""
    assert_compiled_matches_eager(key, "inductor", [(64, 64), (96, 80)])
