"""Inference (or training-step) benchmark: latency, images/s, GFLOPs, GFLOP/s and peak memory, beside this
machine's roof (a large GEMM in float32 and bfloat16).

Each model runs in a child process of its own that has run no model before, so that its peak memory is its own (CPU:
resident set size, read from the kernel; CUDA: ``max_memory_allocated``). The children are forked from a server that
has imported torch and segzoo once (see ``_child_context``): a forked child's resident set counts only the shared
library pages it touches, about 270 MB less than a freshly started interpreter's. FLOPs come from torch's FLOP
counter on a ``meta`` copy of the model (no compute; a multiply-add counts as 2 FLOPs; resampling and elementwise
ops are not counted). Peers: ``tv:<name>`` is a torchvision segmentation model, ``smp:<Arch>:<encoder>`` a
segmentation_models_pytorch model, ``hf:upernet-<convnext|swin>-<size>`` transformers'
``UperNetForSemanticSegmentation`` as the ``openmmlab/upernet-*`` repos build it and ``hf:segformer-b<0..5>`` its
``SegformerForSemanticSegmentation`` as the ``nvidia/segformer-*`` repos do (each where installed), all with random
weights.

Every row records what was applied to it: memory format, precision, runtime and whether
``optimize_for_inference`` ran. The run's options apply to every row, peers included (``optimize`` chooses for
which models the folding runs); a row's own suffix overrides them (``tv:deeplabv3_resnet101@contiguous,plain`` is
torchvision as users run it), so one table can hold segzoo's default, the peers as users run them and the peers
given the same options.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue as queue_module
import signal
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch

from ..errors import ConfigError, SegzooError, UnknownModelError, did_you_mean
from ..inference.compiled import compiled_model
from ..inference.decode import main_output
from ..inference.onnx_runtime import onnx_runtime_model
from ..inference.optimize import optimize_for_inference
from ..inference.paths import PRECISIONS, check_path
from ..inference.precision import bf16_model, cpu_has_fast_bf16
from ..model import input_channels
from ..weights.resolver import resolve_model_name
from .flops import HF_PEERS, HF_PREFIX, SMP_PREFIX, TORCHVISION_PREFIX, build_for_benchmark, count_flops, is_peer

__all__ = ["BenchmarkResult", "BenchmarkError", "RowOptions", "benchmark", "check_model_name", "format_table",
           "gemm_roof", "results_as_dicts", "parse_spec"]

OPTIMIZE_CHOICES = ("segzoo", "all", "none")
BENCHMARK_RUNTIMES = ("eager", "compile", "onnxruntime")
# a row's own options, after "@": each word sets one of its settings
_ROW_WORDS = {"contiguous": ("memory_format", "contiguous"), "channels_last": ("memory_format", "channels_last"),
              **{p: ("precision", p) for p in PRECISIONS}, **{r: ("runtime", r) for r in BENCHMARK_RUNTIMES},
              "optimized": ("optimize", True), "plain": ("optimize", False)}


@dataclass(frozen=True)
class RowOptions:
    """What one row runs with: any setting left None takes the run's option."""

    memory_format: Optional[str] = None  # "contiguous" | "channels_last"
    precision: Optional[str] = None
    runtime: Optional[str] = None
    optimize: Optional[bool] = None  # optimize_for_inference first (eager runtime only)


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
    precision: str = "fp32"  # what the row computed in: "fp32", "bf16" or "int8" (``precision="auto"`` resolved)
    runtime: str = "eager"  # "eager", "compile" (inductor, freezing) or "onnxruntime"
    roof_gflops_per_s: Optional[float] = None  # the machine's GEMM roof in this row's precision (fp32 / bf16)
    spec: str = ""  # the name as given to ``benchmark``, with its ``@options``


def _rss_peak_mb() -> float:
    import resource  # POSIX only: imported where it is used, so that importing segzoo works everywhere

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _prepare(model, images, precision, runtime, optimize, memory_format):
    """The model to time, on the row's path (not timed: conversion, export and compilation happen here)."""
    if runtime == "onnxruntime":  # int8: calibrated on the benchmark's input (speed only, no accuracy here)
        return onnx_runtime_model(model, precision, calibration_images=[images])
    if runtime == "compile":  # freezing folds the BatchNorms itself
        return compiled_model(model, precision, memory_format=memory_format)
    if precision == "bf16":  # a bfloat16 copy, its BatchNorms folded first where optimize applies
        return bf16_model(model, fold=optimize, inplace=True, memory_format=memory_format)
    return optimize_for_inference(model, inplace=True) if optimize else model


def _run_one(name, size, batch, device, channels_last, train, warmup, runs, optimize, kwargs, queue,
             precision="fp32", runtime="eager", environ=None, threads=None):
    try:
        if environ is not None:  # the caller's environment now, not the one the fork server started with
            os.environ.clear()
            os.environ.update(environ)
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(0)
        gflops, params_m = count_flops(name, size, batch, **kwargs)
        model = build_for_benchmark(name, **kwargs).to(device)
        model.train(train)
        images = torch.randn(batch, input_channels(model), *size, device=device)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=memory_format)
        images = images.contiguous(memory_format=memory_format)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-6) if train else None
        if not train:
            model = _prepare(model, images, precision, runtime, optimize, memory_format)

        def step():
            if train:
                main_output(model(images)).float().mean().backward()
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
            model=name, size=tuple(size), batch=batch, device=device,
            channels_last=channels_last and runtime != "onnxruntime", mode="train" if train else "eval",
            optimized=optimize and runtime == "eager", params_m=params_m, gflops=gflops, latency_s=latency,
            images_per_s=batch / latency, gflops_per_s=gflops * (3 if train else 1) / latency,
            peak_memory_mb=peak, forward_memory_mb=forward, round_latencies_s=(latency,), precision=precision,
            runtime=runtime))
    except BaseException as err:  # report, don't hang the parent
        queue.put(err)


def gemm_roof(dtype: torch.dtype = torch.float32, max_size: int = 2048, runs: int = 3, device: str = "cpu",
              min_seconds: float = 0.05) -> float:
    """GFLOP/s of an n x n x n matrix product in ``dtype``, the median of ``runs``: the most this machine computes
    per second in that precision, to read a model's GFLOP/s against. The product runs both as ``torch.mm`` (BLAS)
    and as a 1x1 convolution in channels-last (oneDNN, the library the models' convolutions run on; without
    native bfloat16, torch.mm's bfloat16 is several times slower than oneDNN's), and the faster counts. For each,
    n doubles from 256 until one product takes ``min_seconds`` or n reaches ``max_size``."""
    def as_mm(a, b):
        return torch.mm, a, b

    def as_conv(a, b):  # (HW = n pixels) x (n channels in) x (n channels out)
        size, channels_last = a.shape[0], torch.channels_last
        return (torch.nn.functional.conv2d, a.reshape(1, size, size // 32, 32).contiguous(memory_format=channels_last),
                b.reshape(size, size, 1, 1).contiguous(memory_format=channels_last))

    with torch.inference_mode():
        return max(_product_rate(form, dtype, max_size, runs, device, min_seconds) for form in (as_mm, as_conv))


def _product_rate(form, dtype, max_size, runs, device, min_seconds) -> float:
    generator = torch.Generator().manual_seed(0)
    size = 256
    while True:
        operation, *args = form(torch.randn(size, size, generator=generator).to(device, dtype),
                                torch.randn(size, size, generator=generator).to(device, dtype))
        _time(operation, *args, device=device)  # warm-up (the first call also starts the thread pool)
        if _time(operation, *args, device=device) >= min_seconds or size >= max_size:
            break
        size *= 2
    return 2 * size**3 / statistics.median([_time(operation, *args, device=device) for _ in range(runs)]) / 1e9


def _time(operation, *args, device: str) -> float:
    start = time.perf_counter()
    operation(*args)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


class BenchmarkError(SegzooError, RuntimeError):
    """A model that failed while being benchmarked (in its own process)."""


def parse_spec(spec: str) -> tuple[str, RowOptions]:
    """``name[@word,word,...]`` -> (name, the row's own options). Words: ``contiguous`` / ``channels_last``,
    a precision (``fp32``, ``bf16``, ``int8``, ``auto``), a runtime (``eager``, ``compile``, ``onnxruntime``),
    ``optimized`` / ``plain`` (with or without ``optimize_for_inference``)."""
    name, _, suffix = spec.partition("@")
    settings: dict[str, Any] = {}
    for word in filter(None, suffix.split(",")) if suffix else ():
        if word not in _ROW_WORDS:
            raise ConfigError(f"{spec!r}: unknown option {word!r} after '@'; the options are "
                              f"{', '.join(_ROW_WORDS)} (comma-separated)")
        setting, value = _ROW_WORDS[word]
        if setting in settings:
            raise ConfigError(f"{spec!r}: two values for the {setting.replace('_', ' ')} ({word!r} and an earlier one)")
        settings[setting] = value
    if "@" in spec and not settings:
        raise ConfigError(f"{spec!r}: nothing after '@'; give options such as @contiguous,fp32,plain")
    return name, RowOptions(**settings)


def check_model_name(spec: str) -> None:
    """``UnknownModelError`` (or ``ConfigError``) for a name that ``benchmark`` could not build, before any process
    is started: a segzoo name is resolved (nothing is downloaded), a ``tv:`` name looked up in torchvision, an
    ``smp:`` name in segmentation_models_pytorch."""
    name, _ = parse_spec(spec)
    if name.startswith(SMP_PREFIX):
        _check_smp_name(name)
        return
    if name.startswith(HF_PREFIX):
        _check_hf_name(name)
        return
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


def _check_hf_name(name: str) -> None:
    import importlib.util

    if name[len(HF_PREFIX):] not in HF_PEERS:
        raise UnknownModelError(f"{name!r}: the transformers peers are {', '.join(HF_PREFIX + n for n in HF_PEERS)}."
                                f"{did_you_mean(name[len(HF_PREFIX):], list(HF_PEERS))}")
    if importlib.util.find_spec("transformers") is None:
        raise ConfigError(f"{name!r}: transformers is not installed (pip install transformers)")


def _check_smp_name(name: str) -> None:
    import importlib.util

    if importlib.util.find_spec("segmentation_models_pytorch") is None:
        raise ConfigError(f"{name!r}: segmentation_models_pytorch is not installed (pip install "
                          f"segmentation-models-pytorch)")
    import segmentation_models_pytorch as smp

    arch, _, encoder = name[len(SMP_PREFIX):].partition(":")
    archs = sorted(n for n in dir(smp) if n[:1].isupper() and isinstance(getattr(smp, n), type)
                   and issubclass(getattr(smp, n), torch.nn.Module))
    if arch not in archs or not encoder:
        raise UnknownModelError(f"{name!r}: give smp:<architecture>:<encoder>, e.g. smp:DeepLabV3:resnet101; the "
                                f"architectures are {', '.join(archs)}.{did_you_mean(arch, archs)}")
    encoders = smp.encoders.get_encoder_names()
    if encoder not in encoders:
        raise UnknownModelError(f"{name!r}: segmentation_models_pytorch has no encoder {encoder!r}."
                                f"{did_you_mean(encoder, encoders)}")


def _row_path(name: str, options: RowOptions, precision: str, runtime: Optional[str], optimize: str,
              channels_last: bool, device: str, train: bool) -> tuple[bool, str, str, bool]:
    """(channels_last, precision, runtime, optimize) of one row: its own options over the run's, ``auto``
    resolved, checked (``ConfigError`` naming the row)."""
    row_precision = options.precision or precision
    if row_precision == "auto":  # segzoo's default path where the agreement check passes (not checked here)
        row_precision = "bf16" if torch.device(device).type == "cpu" and cpu_has_fast_bf16() else "fp32"
    row_runtime = options.runtime or runtime or ("onnxruntime" if row_precision == "int8" else "eager")
    optimize_model = options.optimize if options.optimize is not None else (
        optimize == "all" or (optimize == "segzoo" and not is_peer(name)))
    memory_format = options.memory_format
    row_channels_last = channels_last if memory_format is None else memory_format == "channels_last"
    where = f"{name}: " if options != RowOptions() else ""
    try:  # a precision the runtime computes in, CPU-only paths on the CPU, ONNX Runtime installed
        check_path(row_precision, row_runtime, device)
    except ConfigError as err:
        raise ConfigError(f"{where}{err}") from None
    if train and (row_precision != "fp32" or row_runtime != "eager"):
        raise ConfigError(f"{where}precision {row_precision} on {row_runtime} is an inference path; a training step "
                          f"(train=True / --train) runs fp32 eager")
    return row_channels_last, row_precision, row_runtime, optimize_model and not train


def _check_arguments(names, size, batch, device, warmup, runs, optimize, rounds, precision="fp32", runtime=None,
                     train=False) -> None:
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
    if runtime is not None and runtime not in BENCHMARK_RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(BENCHMARK_RUNTIMES)}, got {runtime!r}")
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}") from None
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for, but CUDA is not available here")
    for spec in names:
        name, options = parse_spec(spec)
        _row_path(name, options, precision, runtime, optimize, True, device, train)


def _is_count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def benchmark(names: list[str], size: tuple[int, int] = (480, 480), batch: int = 1, device: str = "cpu",
              channels_last: bool = True,
              train: bool = False, warmup: int = 1, runs: int = 3, compile: bool = False,
              optimize: str = "segzoo", rounds: int = 1, precision: str = "fp32", runtime: Optional[str] = None,
              roof: bool = False, **kwargs: Any) -> list[BenchmarkResult]:
    """Benchmark each model in its own process, one after the other (``rounds`` times over).

    Args:
        names: segzoo model names, ``tv:<torchvision segmentation model>``, ``smp:<Arch>:<encoder>`` or
            ``hf:upernet-<convnext|swin>-<size>`` and ``hf:segformer-b<0..5>`` peers;
            a suffix ``@word,word`` sets that row's own options over the run's (see ``parse_spec``):
            ``tv:deeplabv3_resnet101@contiguous,plain`` is torchvision as users run it,
            ``fcn_resnet101@bf16`` one row in bfloat16.
        size: Input (height, width).
        batch: Batch size.
        device: ``"cpu"`` or ``"cuda"``.
        channels_last: Run in channels-last memory format (segzoo's default).
        train: Time a training step (forward, backward, SGD step) instead of inference. Its GFLOP/s
            counts the backward as twice the forward.
        warmup: Untimed runs first (at least 1 with ``compile``: compilation happens there).
        runs: Timed runs; the median is reported.
        compile: The same as ``runtime="compile"`` (kept for existing calls).
        optimize: Which models run through ``optimize_for_inference`` first (eager runtime, eval only; not
            timed): ``"segzoo"`` (segzoo models, as ``segzoo predict`` and ``examples/evaluate.py`` run them),
            ``"all"`` (peers too) or ``"none"`` (plain eager models).
        rounds: Run the whole list this many times, one model after the other each time, and report each
            model's median over the rounds. On a shared machine a slow stretch then slows one round of every
            model instead of all the runs of one model.
        precision: ``"fp32"`` (default), ``"bf16"``, ``"int8"`` or ``"auto"``, for every row without its own, peers
            included, in eval only: bf16 runs a bfloat16 copy (eager; its BatchNorms folded first where
            ``optimize`` applies) or bf16 autocast inside the compiled graph (compile); int8 runs ONNX Runtime's
            static quantization, calibrated on the benchmark's random input (its speed, not its accuracy);
            ``auto`` is what segzoo's default path runs when the agreement check passes: bf16 where the CPU has
            native bfloat16, else fp32 (random weights: the agreement is not judged here). CPU only.
        runtime: ``"eager"``, ``"compile"`` (``torch.compile`` with freezing; compiled in the warm-up) or
            ``"onnxruntime"`` (the ONNX export; not timed); default eager, onnxruntime for int8.
        roof: Also measure the machine's roof, a square GEMM (``gemm_roof``) in float32 and bfloat16 (in this
            process, before the models of each round; the best round counts), into each row's
            ``roof_gflops_per_s`` (its precision's; int8 rows have none).
        **kwargs: Passed to ``create_model`` (e.g. ``num_classes``); ignored for peers except ``num_classes``.

    Returns:
        One ``BenchmarkResult`` per name.
    """
    runtime = "compile" if compile and runtime is None else runtime
    _check_arguments(names, size, batch, device, warmup, runs, optimize, rounds, precision, runtime, train)
    roofs: dict[str, float] = {}
    context = _child_context()
    by_model = [[] for _ in names]
    for _ in range(rounds):
        if roof:  # measured each round, the best kept: the roof is what the machine reaches when it is free
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                roofs[name] = max(roofs.get(name, 0.0), gemm_roof(dtype, device=device))
        for spec, results in zip(names, by_model):
            results.append(_run_in_child(context, spec, size, batch, device, channels_last, train, warmup, runs,
                                         optimize, kwargs, precision, runtime))
    return [dataclasses.replace(_combine_rounds(results), roof_gflops_per_s=roofs.get(results[0].precision),
                                spec=spec) for spec, results in zip(names, by_model)]


def _child_context():
    """Where each row's process comes from: forked from a server that has imported torch, timm and segzoo once
    (``forkserver``, where the platform has it), so a row does not pay those seconds of imports again; else a
    fresh interpreter (``spawn``). Either way each row runs in a process of its own that has never run a model,
    and the server never runs torch (so its children start with no thread pools, and may use CUDA)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _run_in_child(context, spec, size, batch, device, channels_last, train, warmup, runs, optimize, kwargs,
                  precision="fp32", runtime=None) -> BenchmarkResult:
    name, options = parse_spec(spec)
    row_channels_last, row_precision, row_runtime, optimize_model = _row_path(
        name, options, precision, runtime, optimize, channels_last, device, train)
    queue = context.Queue()
    model_kwargs = {k: v for k, v in kwargs.items() if not is_peer(name) or k == "num_classes"}
    process = context.Process(target=_run_one, args=(
        name, tuple(size), batch, device, row_channels_last, train,
        max(warmup, int(row_runtime == "compile")), runs, optimize_model, model_kwargs, queue, row_precision,
        row_runtime, dict(os.environ), torch.get_num_threads()))
    process.start()
    result = _result_or_death(queue, process, name)
    process.join()
    if isinstance(result, BaseException):
        reason = next((line.strip() for line in str(result).splitlines() if line.strip()), "")
        raise BenchmarkError(f"benchmark of {name!r} failed: {type(result).__name__}: {reason}") from result
    return result


def _result_or_death(queue, process, name: str, poll_s: float = 1.0):
    """The child's result, or a ``BenchmarkError`` as soon as it has ended without one (killed for memory, a
    crash in native code): waiting on the queue alone would wait forever."""
    while process.is_alive():
        try:
            return queue.get(timeout=poll_s)
        except queue_module.Empty:
            pass
    try:  # it may have put its result just before it ended
        return queue.get(timeout=poll_s)
    except queue_module.Empty:
        raise BenchmarkError(f"benchmark of {name!r} failed: its process {_how_it_ended(process.exitcode)} "
                             f"before reporting") from None


def _how_it_ended(code: Optional[int]) -> str:
    if code is None or code >= 0:
        return f"ended with exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    hint = " (out of memory? try a smaller --size or --batch)" if name == "SIGKILL" else ""
    return f"was killed by {name}{hint}"


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


def _row_label(result: BenchmarkResult) -> str:
    """The row's options as a benchmark suffix would give them, e.g. ``contiguous,fp32,eager,plain``."""
    return ",".join(("channels_last" if result.channels_last else "contiguous", result.precision, result.runtime,
                     "optimized" if result.optimized else "plain"))


def format_table(results: list[BenchmarkResult], reference: Optional[str] = None) -> str:
    """A fixed-width table: each row's format, precision, runtime and folding among its columns; with
    ``reference`` (a model in the results, or its ``name@options`` as given, to pick one row of a model given
    twice), its latency and GFLOP/s ratios against that row; with a measured roof, the roof of the row's
    precision and the share of it reached; after several rounds, each round's latency."""
    ref = next((r for r in results if reference in (r.spec, r.model, f"{r.model}@{_row_label(r)}")), None)
    rounds = max(len(r.round_latencies_s) for r in results) if results else 0
    roofs = any(r.roof_gflops_per_s for r in results)
    header = (f"{'model':<34} {'format':<6} {'prec':<5} {'runtime':<11} {'fold':<4} {'params(M)':>9} {'GFLOPs':>8} "
              f"{'latency(s)':>10} {'img/s':>7} {'GFLOP/s':>8} {'peak MB':>8} {'fwd MB':>8}"
              + (f" {'roof':>7} {'%roof':>5}" if roofs else "") + (f" {'lat/ref':>7} {'rate/ref':>8}" if ref else "")
              + (f" {'rounds: latency(s)'}" if rounds > 1 else ""))
    lines = [header, "-" * len(header)]
    for r in results:
        line = (f"{r.model:<34} {'cl' if r.channels_last else 'contig':<6} {r.precision:<5} {r.runtime:<11} "
                f"{'yes' if r.optimized else 'no':<4} {r.params_m:>9.2f} {r.gflops:>8.1f} {r.latency_s:>10.3f} "
                f"{r.images_per_s:>7.2f} {r.gflops_per_s:>8.1f} {r.peak_memory_mb:>8.0f} {r.forward_memory_mb:>8.0f}")
        if roofs:
            line += (f" {r.roof_gflops_per_s:>7.0f} {100 * r.gflops_per_s / r.roof_gflops_per_s:>4.0f}%"
                     if r.roof_gflops_per_s else f" {'-':>7} {'-':>5}")
        if ref:
            line += f" {r.latency_s / ref.latency_s:>7.2f} {r.gflops_per_s / ref.gflops_per_s:>8.2f}"
        if rounds > 1:
            line += " " + " ".join(f"{latency:.3f}" for latency in r.round_latencies_s)
        lines.append(line)
    if roofs:
        lines.append("roof: GFLOP/s of a square matrix product (up to 2048) in the row's precision (int8: not "
                     "measured)")
    lines.append("fold: optimize_for_inference (BatchNorm folded, weights pre-packed); compile folds by freezing")
    return "\n".join(lines)


def results_as_dicts(results: list[BenchmarkResult]) -> list[dict]:
    return [asdict(r) for r in results]
