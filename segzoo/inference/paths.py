"""``segzoo.optimize``: the inference path a model runs on, one precision on one runtime, chosen by the caller or,
with ``"auto"``, measured on this machine.

- ``eager``: fp32 is ``optimize_for_inference`` (BatchNorm folded, oneDNN pre-packed weights), bf16 is
  ``bf16_model`` (a folded bfloat16 copy).
- ``compile``: inductor with freezing (``compiled_model``), fp32 or under bf16 autocast.
- ``onnxruntime``: the ONNX export (``onnx_runtime_model``) in fp32, or int8 by static quantization calibrated on
  the caller's images.

``"auto"`` (precision, runtime or both) lists the paths it may take: the reduced precisions only where they can be
fast (bf16 where ``cpu_has_fast_bf16()``; int8 only with calibration images), ONNX Runtime where it is installed,
``compile`` only when asked for by name (its first call at each input size compiles for tens of seconds to
minutes). Without check images it takes the first of them, float32 eager. With check images it builds each, runs
them on the images, drops any that decodes fewer than ``AGREEMENT_THRESHOLD`` of the pixels as float32 eager does,
times the rest in interleaved rounds, and returns the fastest; the returned model's ``optimize_report`` says what was
tried and measured.
"""
from __future__ import annotations

import copy
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..distributed import resolve_device
from ..errors import ConfigError
from ..model import model_device
from . import precision as bf16
from .compiled import compiled_model
from .decode import main_output
from .onnx_runtime import onnx_runtime_available, onnx_runtime_model
from .optimize import optimize_for_inference
from .precision import AGREEMENT_THRESHOLD, argmax_agreement, bf16_model

__all__ = ["PRECISIONS", "RUNTIMES", "RUNTIME_PRECISIONS", "PathTrial", "OptimizeReport", "optimize",
           "check_path", "candidate_paths", "usable_paths", "build_path", "default_runtime", "image_batches"]

PRECISIONS = ("auto", "fp32", "bf16", "int8")
RUNTIMES = ("auto", "eager", "compile", "onnxruntime")
RUNTIME_PRECISIONS = {"eager": ("fp32", "bf16"), "compile": ("fp32", "bf16"), "onnxruntime": ("fp32", "int8")}
# compile is left out of runtime="auto": its warm-up (per input size) costs more than a folder of images saves
AUTO_RUNTIMES = ("eager", "onnxruntime")
TIMING_ROUNDS = 3  # interleaved, after one untimed call per path (the agreement check)

Images = Union[Tensor, Sequence[Tensor]]


@dataclass(frozen=True)
class PathTrial:
    """One path ``optimize`` tried: its agreement with float32 eager on the check images (the fraction of pixels
    decoded alike) and its median latency on the first check batch, or why it could not be built or run."""

    precision: str
    runtime: str
    agreement: Optional[float] = None
    latency_s: Optional[float] = None
    error: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.runtime}/{self.precision}"

    @property
    def passed(self) -> bool:
        """Ran, and (a reduced precision) kept the threshold. A float32 path is never left out for its agreement:
        its folding (eager) or export (ONNX Runtime) is already checked against the model's logits."""
        if self.error is not None or self.agreement is None:
            return False
        return self.precision == "fp32" or self.agreement >= AGREEMENT_THRESHOLD

    def __str__(self) -> str:
        if self.error is not None:
            return f"{self.name}: failed ({self.error})"
        agreement = f"agreement {self.agreement:.2%}" if self.agreement is not None else "not checked"
        latency = f", {self.latency_s * 1000:.1f} ms" if self.latency_s is not None else ""
        return f"{self.name}: {agreement}{latency}{'' if self.passed else ' (below the threshold)'}"


@dataclass(frozen=True)
class OptimizeReport:
    """What ``optimize`` chose and why; ``trials`` lists every path it measured (empty when it measured none)."""

    precision: str
    runtime: str
    reason: str
    trials: tuple[PathTrial, ...] = ()

    def __str__(self) -> str:
        lines = [f"{self.runtime}/{self.precision}: {self.reason}"]
        lines += [f"  {trial}" for trial in self.trials]
        return "\n".join(lines)


def check_path(precision: str, runtime: str = "auto", device: Union[str, torch.device] = "cpu") -> None:
    """``ConfigError`` naming what cannot work: an unknown precision or runtime, a precision the runtime cannot
    compute in, a CPU-only path on another device, or an uninstalled ONNX Runtime."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if precision != "auto" and runtime != "auto" and precision not in RUNTIME_PRECISIONS[runtime]:
        runs = [name for name, precisions in RUNTIME_PRECISIONS.items() if precision in precisions]
        raise ConfigError(f"runtime {runtime} does not compute in {precision} (it computes in "
                          f"{' or '.join(RUNTIME_PRECISIONS[runtime])}); {precision} runs on {' or '.join(runs)}")
    kind = resolve_device(device, available=False).type
    if kind != "cpu":
        if precision in ("bf16", "int8"):
            raise ConfigError(f"precision {precision} is a CPU path; the device is {kind} (on a GPU use float16 "
                              f"autocast: predict(half=True) / --half)")
        if runtime == "onnxruntime":
            raise ConfigError(f"runtime onnxruntime runs on the CPU here; the device is {kind}")
    if runtime == "onnxruntime" and not onnx_runtime_available():
        raise ConfigError("runtime onnxruntime needs onnx, onnxscript and onnxruntime: pip install 'segzoo[onnx]'")


def candidate_paths(precision: str = "auto", runtime: str = "eager", device: Union[str, torch.device] = "cpu", *,
                    calibration: bool = False) -> list[tuple[str, str]]:
    """The (precision, runtime) paths ``optimize`` may take, float32 eager first where it is one of them (the path
    taken without check images). ``calibration``: whether calibration images are given (int8 needs them)."""
    check_path(precision, runtime, device)
    cpu = torch.device(device).type == "cpu"
    runtimes = [runtime] if runtime != "auto" else [r for r in AUTO_RUNTIMES
                                                      if r != "onnxruntime" or (cpu and onnx_runtime_available())]
    if precision != "auto":
        precisions = [precision]
    else:
        precisions = ["fp32"] + (["bf16"] if cpu and bf16.cpu_has_fast_bf16() else []) + \
                     (["int8"] if cpu and calibration else [])
    paths = [(p, r) for p in precisions for r in runtimes if p in RUNTIME_PRECISIONS[r]]
    if not paths:
        raise ConfigError(f"no path computes in {precision} on runtime {runtime}")
    return paths


def image_batches(images: Images, what: str = "check_images") -> list[Tensor]:
    """``images`` (a float tensor ``(N, C, H, W)``, one ``(C, H, W)`` image, or a list of them) as 4-d batches;
    ``ConfigError`` naming ``what`` for anything else."""
    batches = [images] if isinstance(images, Tensor) else list(images)
    out = []
    for batch in batches:
        if not isinstance(batch, Tensor) or batch.dim() not in (3, 4) or not batch.is_floating_point():
            raise ConfigError(f"{what} must be a float tensor (N, C, H, W) of normalised images, or a list of "
                              f"(C, H, W) / (N, C, H, W) tensors")
        out.append(batch[None] if batch.dim() == 3 else batch)
    if not out:
        raise ConfigError(f"{what} is empty: give at least one image, or None")
    return out


def build_path(model: nn.Module, path: tuple[str, str], *, example_size=(64, 64), inplace: bool = False,
               calibration: Optional[list[Tensor]] = None, warn_emulated: bool = True) -> nn.Module:
    """``model`` on one (precision, runtime) path, unmeasured. ``warn_emulated``: a ``RuntimeWarning`` when bf16
    is asked for on a CPU that emulates it (``segzoo.predict`` says so in its own line instead)."""
    chosen, runtime = path
    if runtime == "onnxruntime":  # exports from the model; never changes it
        return onnx_runtime_model(model, chosen, calibration_images=calibration, example_size=example_size)
    if runtime == "compile":
        return compiled_model(model if inplace else copy.deepcopy(model), chosen)
    if chosen == "bf16":
        if warn_emulated and not bf16.cpu_has_fast_bf16():
            bf16._warn_slow_bf16()
        return bf16_model(model, example_size=example_size, inplace=inplace)
    return optimize_for_inference(model, example_size=example_size, inplace=inplace)


def _logits(model: nn.Module, images: Tensor) -> Tensor:
    return main_output(model(images)).float()


def _agreement(reference: list[Tensor], candidate: nn.Module, batches: list[Tensor], mode: str,
               threshold: float) -> float:
    same = total = 0.0
    for expected, batch in zip(reference, batches):
        got = _logits(candidate, batch)
        pixels = got.shape[0] * got.shape[-2] * got.shape[-1] * (1 if mode == "multiclass" else got.shape[1])
        same += argmax_agreement(expected, got, mode, threshold) * pixels
        total += pixels
    return same / total


def _latencies(runs: dict[tuple[str, str], Callable[[], object]], rounds: int = TIMING_ROUNDS) -> dict:
    """Median seconds per call of each runnable, timed in interleaved rounds (a slow stretch of a shared machine
    slows one round of every path, not every call of one)."""
    times: dict[tuple[str, str], list[float]] = {path: [] for path in runs}
    for _ in range(rounds):
        for path, run in runs.items():
            start = time.perf_counter()
            run()
            times[path].append(time.perf_counter() - start)
    return {path: statistics.median(values) for path, values in times.items()}


def _attention_unchunked_when_exported(model: nn.Module) -> bool:
    """Whether an ONNX export of ``model`` would hold full attention matrices (DANet, OCNet: modules that say
    ``unchunked_when_exported``)."""
    return any(getattr(module, "unchunked_when_exported", False) for module in model.modules())


def usable_paths(model: nn.Module, paths: list[tuple[str, str]], runtime: str) -> list[tuple[str, str]]:
    """``paths`` less those ``model`` should not take: with ``runtime="auto"``, ONNX Runtime for a model whose
    export would hold full attention matrices (auto keeps the chunked attention's memory bound); asked for by
    name, it is kept with a warning."""
    if not _attention_unchunked_when_exported(model):
        return paths
    if runtime == "auto":
        return [path for path in paths if path[1] != "onnxruntime"]
    if runtime == "onnxruntime":
        warnings.warn(f"{_describe(model)} on onnxruntime computes its spatial attention in one pass, not in "
                      f"chunks: its memory grows with the square of the feature map's pixels (fine at crop "
                      f"sizes, not at 1024x2048); eager and compile keep the chunks", RuntimeWarning, stacklevel=3)
    return paths


def _describe(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return f"{config.head}_{config.backbone}" if hasattr(config, "head") else type(model).__name__


def default_runtime(precision: str, runtime: Optional[str] = None) -> str:
    """``runtime``, or where it is None the default for ``precision``: onnxruntime for int8 (the only runtime that
    computes in int8), else eager."""
    return runtime if runtime is not None else ("onnxruntime" if precision == "int8" else "eager")


def optimize(model: nn.Module, precision: str = "auto", runtime: Optional[str] = None, *,
             check_images: Optional[Images] = None, calibration_images: Optional[Images] = None,
             example_size: tuple[int, int] = (64, 64), inplace: bool = False) -> nn.Module:
    """The model to run for inference: ``model`` on the path of ``precision`` and ``runtime`` (see the module's
    docstring), float32 images in and float32 logits out whatever it computes in.

    Args:
        model: A float32 model on its device (a segzoo model, or any module whose forward takes one image tensor).
        precision: ``"fp32"``, ``"bf16"`` (CPU; emulated and slow, with a warning, on a CPU without native
            bfloat16), ``"int8"`` (CPU, ONNX Runtime, needs ``calibration_images``) or ``"auto"``.
        runtime: ``"eager"``, ``"compile"``, ``"onnxruntime"`` or ``"auto"`` (eager or ONNX Runtime, measured);
            None: eager (no conversion cost), or onnxruntime for int8.
        check_images: Normalised float32 images (a tensor ``(N, C, H, W)`` or a list of them). With more than one
            possible path, each is run on them and the fastest that keeps ``AGREEMENT_THRESHOLD`` of the pixels'
            decoded predictions of float32 eager is returned. With one path that computes in reduced precision,
            a lower agreement is a warning. None: ``"auto"`` takes float32 (never a reduced precision unchecked).
        calibration_images: int8's calibration images (same form); without them ``"auto"`` does not consider
            int8. Check on other images than these for an honest agreement.
        example_size: (H, W) of the example the folding (eager) or the export (ONNX Runtime) is checked on.
        inplace: Rewrite ``model`` itself where the path allows (eager, compile) when only one path is built; the
            candidates of a measured choice are copies, so the float32 reference stays intact.

    Returns:
        The model to run; ``inference_precision`` / ``inference_runtime`` say what it is, and its
        ``optimize_report`` (an ``OptimizeReport``) what was measured.
    """
    device = model_device(model)
    runtime = default_runtime(precision, runtime)
    if precision == "int8" and calibration_images is None:
        raise ConfigError("precision int8 needs calibration_images (--calibration DIR): the quantization scales are "
                          "measured on them")
    paths = usable_paths(model, candidate_paths(precision, runtime, device,
                                                calibration=calibration_images is not None), runtime)
    calibration = image_batches(calibration_images, "calibration_images") if calibration_images is not None else None
    batches = image_batches(check_images) if check_images is not None else None
    config = getattr(model, "config", None)
    mode, threshold = getattr(config, "mode", "multiclass"), getattr(config, "threshold", 0.5)
    measured = batches is not None and (len(paths) > 1 or paths[0][0] != "fp32")
    if not measured:
        chosen = paths[0]
        built = build_path(model, chosen, example_size=example_size, inplace=inplace, calibration=calibration)
        reason = "the only candidate path" if len(paths) == 1 else "float32: no check images to measure on"
        return _with_report(built, OptimizeReport(*chosen, reason))

    batches = [batch.to(device, torch.float32) for batch in batches]
    candidates, trials = _try_paths(model, paths, batches, example_size, calibration, mode, threshold)
    if len(paths) == 1:  # asked for one reduced-precision path: measured for the report, kept whatever it scored
        trial = trials[paths[0]]
        if not trial.passed:
            warnings.warn(f"precision={paths[0][0]!r}: {_describe(model)} agrees with fp32 on {trial.agreement:.2%} "
                          f"of the check images' pixels, below {AGREEMENT_THRESHOLD:.1%}", RuntimeWarning,
                          stacklevel=2)
        return _with_report(candidates[paths[0]], OptimizeReport(*paths[0], "the only path asked for", (trial,)))
    return _fastest(model, paths, candidates, trials, batches[0])


def _try_paths(model: nn.Module, paths: list[tuple[str, str]], batches: list[Tensor], example_size,
               calibration: Optional[list[Tensor]], mode: str, threshold: float) -> tuple[dict, dict]:
    """Build each path (from copies: ``model`` stays the float32 reference) and measure its agreement with
    ``model`` on ``batches``: ({path: model}, {path: PathTrial}). A path that fails is a trial with its error,
    unless it is the only one (then its error is raised)."""
    was_training = model.training
    model.eval()
    candidates, trials = {}, {}
    try:
        with torch.inference_mode():
            reference = [_logits(model, batch) for batch in batches]
        for path in paths:
            try:
                candidate = build_path(model, path, example_size=example_size, inplace=False, calibration=calibration)
                with torch.inference_mode():
                    agreement = _agreement(reference, candidate, batches, mode, threshold)
            except Exception as err:  # noqa: BLE001 - a path that cannot run here is reported, not fatal
                if len(paths) == 1:
                    raise
                trials[path] = PathTrial(*path, error=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
                continue
            candidates[path] = candidate
            trials[path] = PathTrial(*path, agreement=agreement)
    finally:
        model.train(was_training)
    return candidates, trials


def _fastest(model: nn.Module, paths, candidates: dict, trials: dict, batch: Tensor) -> nn.Module:
    """The fastest of the candidates that passed, timed on ``batch``, with the report of every trial."""
    passing = {path: candidates[path] for path in candidates if trials[path].passed}
    with torch.inference_mode():
        latencies = _latencies({path: (lambda m=m: m(batch)) for path, m in passing.items()})
    for path, latency in latencies.items():
        trials[path] = PathTrial(*path, agreement=trials[path].agreement, latency_s=latency)
    measured = tuple(trials[path] for path in paths)
    if not latencies:
        raise ConfigError(f"no inference path for {_describe(model)} agrees with fp32 on the check images: "
                          + "; ".join(map(str, measured)))
    fastest = min(latencies, key=latencies.get)
    rejected = [trial for trial in measured if not trial.passed]
    if rejected:
        warnings.warn(f"{_describe(model)}: left out " + "; ".join(map(str, rejected)), RuntimeWarning, stacklevel=3)
    reason = f"the fastest of {len(latencies)} path(s) agreeing with fp32 on >= {AGREEMENT_THRESHOLD:.1%} of pixels"
    return _with_report(passing[fastest], OptimizeReport(*fastest, reason, measured))


def _with_report(model: nn.Module, report: OptimizeReport) -> nn.Module:
    model.optimize_report = report
    return model
