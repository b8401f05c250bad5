"""`segzoo benchmark` (run in this process: each row runs in a process of its own anyway), and FLOP counts against
torchvision's same architectures."""
import json

import pytest
import timm

from segzoo.tools.cli import main
from segzoo.tools.flops import count_flops


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_flops_equal_torchvision_for_the_same_architecture(name):
    ours, our_params = count_flops(name, (96, 128), num_classes=21)
    theirs, _ = count_flops(f"tv:{name}", (96, 128), num_classes=21)
    assert ours == pytest.approx(theirs, rel=1e-9) and ours > 10


def benchmark_command(capsys, *args: str) -> str:
    """The stdout of ``segzoo benchmark ARGS``, which must succeed."""
    assert main(["benchmark", *args]) == 0
    return capsys.readouterr().out


def test_benchmark_command_prints_sane_json(capsys):
    rows = json.loads(benchmark_command(capsys, "fcn_resnet18", "tv:fcn_resnet50", "--size", "64", "80", "--runs", "2",
                                        "--json", "--num-classes", "5"))
    assert [r["model"] for r in rows] == ["fcn_resnet18", "tv:fcn_resnet50"]
    assert [r["optimized"] for r in rows] == [True, False]  # by default segzoo models only, as predict runs them
    for row in rows:
        assert row["size"] == [64, 80] and row["batch"] == 1 and row["mode"] == "eval"
        assert row["latency_s"] > 0 and row["images_per_s"] == pytest.approx(1 / row["latency_s"])
        assert row["gflops_per_s"] == pytest.approx(row["gflops"] / row["latency_s"])
        assert row["peak_memory_mb"] > 100  # the process holds torch at least
    backbone = sum(p.numel() for n, p in timm.create_model("resnet18").named_parameters() if not n.startswith("fc."))
    fcn_head = 512 * 128 * 9 + 2 * 128 + 128 * 5 + 5  # 3x3 conv, BN, 1x1 classifier with bias
    assert rows[0]["params_m"] == pytest.approx((backbone + fcn_head) / 1e6, abs=1e-6)


def test_benchmark_table_with_reference_ratio(capsys):
    out = benchmark_command(capsys, "fcn_resnet18", "--size", "48", "48", "--runs", "1", "--reference", "fcn_resnet18")
    header, _, row, footer = out.splitlines()
    assert header.split()[:6] == ["model", "format", "prec", "runtime", "fold", "params(M)"]
    assert header.endswith("lat/ref rate/ref")
    assert row.split()[:5] == ["fcn_resnet18", "cl", "fp32", "eager", "yes"] and row.split()[-2:] == ["1.00", "1.00"]
    assert footer.startswith("fold: optimize_for_inference")


@pytest.mark.slow
def test_benchmark_with_torch_compile(capsys):
    row = json.loads(benchmark_command(capsys, "fcn_resnet18", "--size", "48", "48", "--runs", "1", "--compile",
                                       "--json"))[0]
    assert row["model"] == "fcn_resnet18" and row["latency_s"] > 0


def test_benchmark_is_a_python_function_too():
    import segzoo
    from segzoo.tools.benchmark import format_table

    ours, peer = segzoo.benchmark(["fcn_resnet18", "tv:fcn_resnet50"], size=(40, 40), runs=1, num_classes=2,
                                    optimize="all")
    assert ours.model == "fcn_resnet18" and ours.size == (40, 40) and ours.gflops > 0
    assert ours.optimized and peer.optimized
    (row,) = segzoo.benchmark(["fcn_resnet18"], size=(40, 40), runs=1, num_classes=2, optimize="none")
    assert not row.optimized and row.round_latencies_s == (row.latency_s,)
    assert "rounds" not in format_table([row]).splitlines()[0]
    (row,) = segzoo.benchmark(["fcn_resnet18"], size=(40, 40), runs=1, num_classes=2, train=True)
    assert not row.optimized and row.mode == "train"  # a training step runs the model as it is
    with pytest.raises(ValueError, match="optimize must be one of"):
        segzoo.benchmark(["fcn_resnet18"], optimize="yes")


def test_rounds_report_the_median_round_and_every_round():
    import segzoo
    from segzoo.tools.benchmark import format_table

    (row,) = segzoo.benchmark(["fcn_resnet18"], size=(40, 40), runs=1, num_classes=2, rounds=3)
    assert len(row.round_latencies_s) == 3 and all(t > 0 for t in row.round_latencies_s)
    assert row.latency_s == sorted(row.round_latencies_s)[1]
    assert row.gflops_per_s == pytest.approx(row.gflops / row.latency_s)
    assert row.images_per_s == pytest.approx(1 / row.latency_s)
    header, _, line, _ = format_table([row], reference="fcn_resnet18").splitlines()
    assert header.endswith("lat/ref rate/ref rounds: latency(s)")
    assert line.split()[-5:] == ["1.00", "1.00"] + [f"{t:.3f}" for t in row.round_latencies_s]
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        segzoo.benchmark(["fcn_resnet18"], rounds=0)
