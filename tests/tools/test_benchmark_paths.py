"""segzoo benchmark's per-row options (``name@word,...``), its runtimes and int8 rows, the smp: peers and the machine's
GEMM roof."""
import pytest
import torch

import segzoo
from segzoo.errors import ConfigError, UnknownModelError
from segzoo.tools.benchmark import RowOptions, check_model_name, format_table, gemm_roof, parse_spec
from segzoo.tools.flops import build_for_benchmark, count_flops


def test_row_options_parse_and_refuse_nonsense():
    assert parse_spec("fcn_resnet18") == ("fcn_resnet18", RowOptions())
    assert parse_spec("tv:fcn_resnet50@contiguous,plain") == (
        "tv:fcn_resnet50", RowOptions(memory_format="contiguous", optimize=False))
    assert parse_spec("fcn_resnet18@int8,onnxruntime") == (
        "fcn_resnet18", RowOptions(precision="int8", runtime="onnxruntime"))
    with pytest.raises(ConfigError, match="unknown option 'fp16' after '@'; the options are contiguous, "):
        parse_spec("fcn_resnet18@fp16")
    with pytest.raises(ConfigError, match="two values for the precision"):
        parse_spec("fcn_resnet18@fp32,bf16")
    with pytest.raises(ConfigError, match="nothing after '@'"):
        parse_spec("fcn_resnet18@")
    with pytest.raises(ConfigError, match="fcn_resnet18: runtime eager does not compute in int8"):
        segzoo.benchmark(["fcn_resnet18@int8,eager"])
    with pytest.raises(ConfigError, match="fcn_resnet18: precision bf16 on eager is an inference path"):
        segzoo.benchmark(["fcn_resnet18@bf16"], train=True)
    with pytest.raises(ConfigError, match="runtime must be one of eager, compile, onnxruntime"):
        segzoo.benchmark(["fcn_resnet18"], runtime="tensorrt")


def test_rows_carry_their_own_path_and_the_roof():
    """Two rows of one run, each with its own options: int8 (on ONNX Runtime, its runtime when none is given:
    the export and the quantization run in the child, untimed) and a peer as users run it."""
    rows = segzoo.benchmark(["fcn_resnet18@int8", "tv:fcn_resnet50@contiguous,plain"], size=(32, 32), runs=1,
                            num_classes=3, roof=True)
    int8, peer = rows
    assert (int8.precision, int8.runtime, int8.optimized, int8.channels_last) == ("int8", "onnxruntime", False, False)
    assert (peer.precision, peer.runtime, peer.optimized, peer.channels_last) == ("fp32", "eager", False, False)
    assert [r.spec for r in rows] == ["fcn_resnet18@int8", "tv:fcn_resnet50@contiguous,plain"]
    assert peer.roof_gflops_per_s > 0 and int8.roof_gflops_per_s is None and all(r.latency_s > 0 for r in rows)
    table = format_table(rows, reference="tv:fcn_resnet50@contiguous,plain").splitlines()
    assert table[0].split()[-4:] == ["roof", "%roof", "lat/ref", "rate/ref"]
    assert table[2].split()[1:5] == ["contig", "int8", "onnxruntime", "no"]
    assert table[2].split()[-4:-2] == ["-", "-"]  # int8: no roof measured
    assert table[3].split()[1:5] == ["contig", "fp32", "eager", "no"] and table[3].split()[-2:] == ["1.00", "1.00"]
    assert table[4].startswith("roof: ")


def test_gemm_roof_is_a_rate_in_each_precision():
    fp32, bf16 = gemm_roof(torch.float32, max_size=512), gemm_roof(torch.bfloat16, max_size=512)
    assert fp32 > 0.1 and bf16 > 0.01


def test_smp_peers_build_and_unknown_ones_are_named():
    pytest.importorskip("segmentation_models_pytorch")
    model = build_for_benchmark("smp:FPN:resnet18", num_classes=3).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    gflops, params_m = count_flops("smp:FPN:resnet18", (64, 64), num_classes=3)
    assert gflops > 0.1 and params_m > 10
    check_model_name("smp:DeepLabV3:resnet101@contiguous,plain")
    with pytest.raises(UnknownModelError, match="give smp:<architecture>:<encoder>.*Did you mean"):
        check_model_name("smp:DeeplabV3:resnet101")
    with pytest.raises(UnknownModelError, match="no encoder 'resnet999'"):
        check_model_name("smp:FPN:resnet999")


KILLED_HEAD = """
import os, signal
from torch import nn
from segzoo.heads import SegmentationHead

class KilledHead(SegmentationHead):
    in_features = ("c4",)

    def __init__(self, in_channels, num_classes, align_corners=True):
        super().__init__()
        if os.environ.get("SEGZOO_TEST_BENCHMARK_PARENT") != str(os.getpid()):  # in the row's process only
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
        self.classifier = nn.Conv2d(in_channels["c4"], num_classes, 1)

    def forward(self, features, image=None):
        return self.classifier(features["c4"])
"""


def test_a_row_whose_process_is_killed_is_an_error_not_a_hang(make_plugin, monkeypatch):
    """The row's process dies without reporting (SIGKILL, as the OOM killer sends): the benchmark says so at once.
    The variable reaches the row through the caller's environment, which rows take over from the fork server's
    (started earlier in a full test run)."""
    import os

    make_plugin("killed-head", "killed_head_mod", KILLED_HEAD, {"killed": "killed_head_mod:KilledHead"})
    monkeypatch.setenv("SEGZOO_TEST_BENCHMARK_PARENT", str(os.getpid()))
    with pytest.raises(segzoo.SegzooError, match=r"benchmark of 'killed_resnet18' failed: its process was killed "
                                                 r"by SIGKILL \(out of memory\? try a smaller --size or --batch\)"):
        segzoo.benchmark(["killed_resnet18"], size=(32, 32), runs=1)
