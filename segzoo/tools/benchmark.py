"""Inference (or training-step) benchmark: latency, images/s, GFLOPs, GFLOP/s and peak memory.

Each model runs in a fresh child process so that its peak memory is its own (CPU: resident set size,
read from the kernel; CUDA: ``max_memory_allocated``). FLOPs come from torch's FLOP counter on a
``meta`` copy of the model (no compute; a multiply-add counts as 2 FLOPs; resampling and elementwise ops
are not counted). ``tv:<name>`` benchmarks a torchvision segmentation model (weights=None) as a peer.
By default segzoo models run in eval as segzoo's own inference paths run them, after
``optimize_for_inference`` (BatchNorm folded, weights pre-packed); ``optimize`` chooses for which models.
``precision`` (fp32 by default) applies to every row, peers included, and each row records the precision it ran in.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch

from ..errors import ConfigError, SegzooError, UnknownModelError, did_you_mean
from ..inference.optimize import optimize_for_inference
from ..inference.precision import PRECISIONS, bf16_model, resolve_precision
from ..model import input_channels
from ..weights.resolver import resolve_model_name
from .flops import TORCHVISION_PREFIX, build_for_benchmark, count_flops

__all__ = ["BenchmarkResult", "BenchmarkError", "benchmark", "check_model_name", "format_table", "results_as_dicts"]

OPTIMIZE_CHOICES = ("segzoo", "all", "none")


@dataclass
class BenchmarkResult:
    """One row of a benchmark."""

    model: str
    size: tuple[int, int]
    batch: int
    device: str
    channels_last: bool
    mode: str
    optimized: bool
    params_m: float
    gflops: float
    latency_s: float
    images_per_s: float
    gflops_per_s: float
    peak_memory_mb: float
    forward_memory_mb: float
    round_latencies_s: tuple[float, ...] = ()  # each round's median latency (``rounds``); latency_s is their median
    precision: str = "fp32"  # what the row computed in: "fp32" or "bf16" (``precision="auto"`` resolved)


def _rss_peak_mb() -> float:
    import resource  # POSIX only: imported where it is used, so that importing segzoo works everywhere

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _run_one(name, size, batch, device, channels_last, train, warmup, runs, compile_model, optimize, kwargs, queue,
             precision="fp32"):
    try:
        torch.manual_seed(0)
        gflops, params_m = count_flops(name, size, batch, **kwargs)
        model = build_for_benchmark(name, **kwargs).to(device)
        model.train(train)
        images = torch.randn(batch, input_channels(model), *size, device=device)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=memory_format)
        images = images.contiguous(memory_format=memory_format)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-6) if train else None
        chosen = "fp32" if train else resolve_precision(precision, device)
        if chosen == "bf16":  # not timed: a bfloat16 copy (its BatchNorms folded first where optimize applies)
            model = bf16_model(model, fold=optimize, inplace=True, memory_format=memory_format)
        elif optimize:  # not timed, like the compilation
            model = optimize_for_inference(model, inplace=True)
        if compile_model:  # compiled on the first (warm-up) call
            model = torch.compile(model)

        def step():
            if train:
                out = model(images)
                out = out if isinstance(out, torch.Tensor) else (out["out"] if isinstance(out, dict) else out[0])
                out.float().mean().backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            else:
                with torch.inference_mode():
                    model(images)
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        before = _rss_peak_mb()
        times = []
        for i in range(warmup + runs):
            start = time.perf_counter()
            step()
            if i >= warmup:
                times.append(time.perf_counter() - start)
        if device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated() / 2**20
            forward = peak - sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
        else:
            peak = _rss_peak_mb()
            forward = peak - before
        latency = statistics.median(times)
        queue.put(BenchmarkResult(
            model=name, size=tuple(size), batch=batch, device=device, channels_last=channels_last,
            mode="train" if train else "eval", optimized=optimize, params_m=params_m, gflops=gflops, latency_s=latency,
            images_per_s=batch / latency, gflops_per_s=gflops * (3 if train else 1) / latency,
            peak_memory_mb=peak, forward_memory_mb=forward, round_latencies_s=(latency,), precision=chosen))
    except BaseException as err:  # report, don't hang the parent
        queue.put(err)


class BenchmarkError(SegzooError, RuntimeError):
    """A model that failed while being benchmarked (in its own process)."""


def _parse_spec(spec: str) -> tuple[str, Optional[str]]:
    """``name[@contiguous|@channels_last]`` -> (name, memory format or None for the run's default)."""
    name, _, memory_format = spec.partition("@")
    if memory_format not in ("", "contiguous", "channels_last"):
        raise ConfigError(f"{spec!r}: the suffix after '@' must be 'contiguous' or 'channels_last'")
    return name, memory_format or None


def check_model_name(spec: str) -> None:
    """``UnknownModelError`` (or ``ConfigError``) for a name that ``benchmark`` could not build, before any process
    is started: a segzoo name is resolved (nothing is downloaded), a ``tv:`` name looked up in torchvision."""
    name, _ = _parse_spec(spec)
    if not name.startswith(TORCHVISION_PREFIX):
        resolve_model_name(name)
        return
    import torchvision

    models = torchvision.models.segmentation
    builders = [n for n in dir(models) if not n.startswith("_") and n.islower() and callable(getattr(models, n))]
    if name[len(TORCHVISION_PREFIX):] not in builders:
        raise UnknownModelError(f"{name!r}: torchvision has no segmentation model "
                                f"{name[len(TORCHVISION_PREFIX):]!r}; it has {', '.join(builders)}."
                                f"{did_you_mean(name[len(TORCHVISION_PREFIX):], builders)}")


def _check_arguments(names, size, batch, device, warmup, runs, optimize, rounds, precision="fp32", train=False) -> None:
    """``ConfigError`` (or ``UnknownModelError``) naming the first argument of ``benchmark`` that cannot work."""
    if isinstance(names, str) or not names:
        raise ConfigError(f"names must be a non-empty list of model names, got {names!r}")
    for name in names:
        check_model_name(name)
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(_is_count(side, 1) for side in size):
        raise ConfigError(f"size must be (height, width), two integers >= 1, got {size!r}")
    for argument, value, minimum in (("batch", batch, 1), ("warmup", warmup, 0), ("runs", runs, 1),
                                     ("rounds", rounds, 1)):
        if not _is_count(value, minimum):
            raise ConfigError(f"{argument} must be at least {minimum} (an integer), got {value!r}")
    if optimize not in OPTIMIZE_CHOICES:
        raise ConfigError(f"optimize must be one of {', '.join(OPTIMIZE_CHOICES)}, got {optimize!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and train:
        raise ConfigError("precision bf16 is an inference path; a training step (train=True / --train) runs fp32")
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}") from None
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for, but CUDA is not available here")
    if precision == "bf16" and kind != "cpu":
        raise ConfigError("precision bf16 is the CPU path; on CUDA benchmark fp32")


def _is_count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def benchmark(names: list[str], size: tuple[int, int] = (480, 480), batch: int = 1, device: str = "cpu",
              channels_last: bool = True,
              train: bool = False, warmup: int = 1, runs: int = 3, compile: bool = False,
              optimize: str = "segzoo", rounds: int = 1, precision: str = "fp32",
              **kwargs: Any) -> list[BenchmarkResult]:
    """Benchmark each model in its own process, one after the other (``rounds`` times over).

    Args:
        names: segzoo model names, or ``tv:<torchvision segmentation model>`` peers; a suffix
            ``@contiguous`` or ``@channels_last`` sets that model's memory format (``tv:deeplabv3_resnet101@contiguous``
            is torchvision as users run it).
        size: Input (height, width).
        batch: Batch size.
        device: ``"cpu"`` or ``"cuda"``.
        channels_last: Run in channels-last memory format (segzoo's default).
        train: Time a training step (forward, backward, SGD step) instead of inference. Its GFLOP/s
            counts the backward as twice the forward.
        warmup: Untimed runs first (at least 1 with ``compile``: compilation happens there).
        runs: Timed runs; the median is reported.
        compile: Run ``torch.compile(model)`` (the compilation is not timed).
        optimize: Which models run through ``optimize_for_inference`` first (eval only; not timed):
            ``"segzoo"`` (segzoo models, as ``segzoo predict`` and ``examples/evaluate.py`` run them),
            ``"all"`` (torchvision peers too) or ``"none"`` (plain eager models).
        rounds: Run the whole list this many times, one model after the other each time, and report each
            model's median over the rounds. On a shared machine a slow stretch then slows one round of every
            model instead of all the runs of one model.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"auto"`` (``segzoo.inference.precision``), applied to every
            row, torchvision peers too, in eval only: bf16 runs a bfloat16 copy of the model, its BatchNorms
            folded first where ``optimize`` applies to it, behind a float32 interface (the input's cast to
            bfloat16 is timed); auto is bf16 where the CPU has native bfloat16, else fp32. Each row's
            ``precision`` says what it ran in. CPU only.
        **kwargs: Passed to ``create_model`` (e.g. ``num_classes``); ignored for torchvision peers
            except ``num_classes``.

    Returns:
        One ``BenchmarkResult`` per name.
    """
    _check_arguments(names, size, batch, device, warmup, runs, optimize, rounds, precision, train)
    context = multiprocessing.get_context("spawn")
    by_model = [[] for _ in names]
    for _ in range(rounds):
        for spec, results in zip(names, by_model):
            results.append(_run_in_child(context, spec, size, batch, device, channels_last, train, warmup, runs,
                                         compile, optimize, kwargs, precision))
    return [_combine_rounds(results) for results in by_model]


def _run_in_child(context, spec, size, batch, device, channels_last, train, warmup, runs, compile, optimize,
                  kwargs, precision="fp32") -> BenchmarkResult:
    name, memory_format = _parse_spec(spec)
    model_channels_last = channels_last if memory_format is None else memory_format == "channels_last"
    queue = context.Queue()
    optimize_model = not train and (optimize == "all" or
                                    (optimize == "segzoo" and not name.startswith(TORCHVISION_PREFIX)))
    model_kwargs = {k: v for k, v in kwargs.items() if not name.startswith(TORCHVISION_PREFIX) or k == "num_classes"}
    process = context.Process(target=_run_one, args=(name, tuple(size), batch, device, model_channels_last,
                                                     train, max(warmup, int(compile)), runs, compile,
                                                     optimize_model, model_kwargs, queue, precision))
    process.start()
    result = queue.get()
    process.join()
    if isinstance(result, BaseException):
        reason = next((line.strip() for line in str(result).splitlines() if line.strip()), "")
        raise BenchmarkError(f"benchmark of {name!r} failed: {type(result).__name__}: {reason}") from result
    return result


def _combine_rounds(results: list[BenchmarkResult]) -> BenchmarkResult:
    """One model's rounds as one row: the median latency (and the rates from it), the highest peak memory."""
    latencies = tuple(r.latency_s for r in results)
    latency = statistics.median(latencies)
    first = results[0]
    return dataclasses.replace(
        first, latency_s=latency, images_per_s=first.batch / latency,
        gflops_per_s=first.gflops_per_s * first.latency_s / latency,
        peak_memory_mb=max(r.peak_memory_mb for r in results),
        forward_memory_mb=max(r.forward_memory_mb for r in results), round_latencies_s=latencies)


def _format_name(result: BenchmarkResult) -> str:
    return "channels_last" if result.channels_last else "contiguous"


def format_table(results: list[BenchmarkResult], reference: Optional[str] = None) -> str:
    """A fixed-width table (each row's precision among its columns); with ``reference`` (a model in the
    results), a column of GFLOP/s ratios; after several rounds, each round's latency."""
    ref = next((r for r in results if reference in (r.model, f"{r.model}@{_format_name(r)}")), None)
    rounds = max(len(r.round_latencies_s) for r in results) if results else 0
    header = (f"{'model':<34} {'format':<8} {'params(M)':>9} {'GFLOPs':>8} {'latency(s)':>10} {'img/s':>7} "
              f"{'GFLOP/s':>8} {'peak MB':>8} {'fwd MB':>8} {'precision':>9}" + (f" {'vs ref':>7}" if ref else "")
              + (f" {'rounds: latency(s)'}" if rounds > 1 else ""))
    lines = [header, "-" * len(header)]
    optimized = [r.model for r in results if r.optimized]
    for r in results:
        line = (f"{r.model:<34} {'cl' if r.channels_last else 'contig':<8} {r.params_m:>9.2f} {r.gflops:>8.1f} "
                f"{r.latency_s:>10.3f} {r.images_per_s:>7.2f} {r.gflops_per_s:>8.1f} {r.peak_memory_mb:>8.0f} "
                f"{r.forward_memory_mb:>8.0f} {r.precision:>9}")
        if ref:
            line += f" {r.gflops_per_s / ref.gflops_per_s:>7.2f}"
        if rounds > 1:
            line += " " + " ".join(f"{latency:.3f}" for latency in r.round_latencies_s)
        lines.append(line)
    if optimized:
        lines.append(f"optimize_for_inference: {', '.join(optimized)}")
    return "\n".join(lines)


def results_as_dicts(results: list[BenchmarkResult]) -> list[dict]:
    return [asdict(r) for r in results]
