"""Precision on the CPU: ``optimize(model, precision)`` runs a model in float32 (``optimize_for_inference``) or in
bfloat16, and ``"auto"`` picks bfloat16 only where the CPU computes it natively and the model keeps its answer.

- ``"fp32"``: ``optimize_for_inference`` (BatchNorm folded, weights pre-packed for oneDNN): segzoo's fastest
  float32 path.
- ``"bf16"``: a bfloat16 copy of the model with its BatchNorms folded in float32 first (``optimize_for_inference``,
  then ``.to(torch.bfloat16)``), in channels-last, behind ``BFloat16Model``: it takes the usual float32
  normalised image and returns float32 logits, so the test-time code (``predict_logits``, sliding windows) is
  unchanged. Why this design and not eager autocast: both run every convolution in bfloat16 through oneDNN
  (which is fast only with AMX-BF16 or AVX512-BF16), but autocast casts each float32 weight to bfloat16 on every
  call and runs each BatchNorm as a separate pass, which the bfloat16 copy does not; its weights are rounded once,
  after folding. The attention heads run their chunked attention unchanged, in bfloat16 (half the memory).
- ``"auto"``: ``"bf16"`` on a CPU with native bfloat16 (``cpu_has_fast_bf16``) when the model passes the
  agreement check on ``check_images`` (``AGREEMENT_THRESHOLD`` of its pixels decoded alike in both precisions),
  else ``"fp32"``. Without check images it relies on the per-model agreement stated in docs/inference.md. On a
  CUDA device it is ``"fp32"`` (the GPU's reduced precision is ``predict(half=True)``).
"""
from __future__ import annotations

import copy
import functools
import warnings
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from ..errors import ConfigError
from .decode import decode_logits
from .optimize import optimize_for_inference

__all__ = ["PRECISIONS", "AGREEMENT_THRESHOLD", "BFloat16Model", "cpu_has_fast_bf16", "fast_bf16_signal",
           "resolve_precision", "check_precision", "argmax_agreement", "bf16_model", "optimize",
           "inference_precision"]

PRECISIONS = ("auto", "fp32", "bf16")
# ``auto`` keeps bfloat16 only if at least this fraction of the check images' pixels get the same class (binary /
# multi-label models: the same 0 / 1 per label) as in float32.
AGREEMENT_THRESHOLD = 0.995

_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_fast_bf16() -> bool:
    """True only when this CPU computes bfloat16 natively (x86 AMX-BF16 or AVX512-BF16) and torch has oneDNN to
    run bfloat16 convolutions on it; detected, never assumed (``fast_bf16_signal`` says from what).

    The signal, in order: ``torch.cpu.get_capabilities()`` (its ``amx_bf16`` and ``avx512_bf16`` entries, from
    cpuinfo), else ``torch.cpu._is_amx_tile_supported()`` / ``_is_avx512_bf16_supported()`` (older torch 2.x;
    every CPU with AMX tiles has AMX-BF16), else the ``amx_bf16`` / ``avx512_bf16`` flags of ``/proc/cpuinfo``
    (Linux); with none of these, False. Arm's bfloat16 instructions are not counted (not measured). Tests
    monkeypatch this function to simulate a CPU with and without bfloat16.
    """
    return _detect_fast_bf16()[0]


def fast_bf16_signal() -> str:
    """What ``cpu_has_fast_bf16`` read, e.g. ``"torch.cpu.get_capabilities(): amx_bf16=False, avx512_bf16=False"``."""
    return _detect_fast_bf16()[1]


@functools.cache
def _detect_fast_bf16() -> tuple[bool, str]:
    if not torch.backends.mkldnn.is_available():
        return False, "torch built without oneDNN (mkldnn): no fast bfloat16 convolutions"
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        try:
            capabilities = dict(get_capabilities())
        except Exception:  # cpuinfo failed: try the next signal
            capabilities = {}
        if any(flag in capabilities for flag in _BF16_FLAGS):
            found = {flag: bool(capabilities.get(flag, False)) for flag in _BF16_FLAGS}
            return any(found.values()), "torch.cpu.get_capabilities(): " + _describe(found)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if amx is not None and avx512_bf16 is not None:
        found = {"amx_tile": bool(amx()), "avx512_bf16": bool(avx512_bf16())}
        return any(found.values()), "torch.cpu._is_amx_tile_supported / _is_avx512_bf16_supported: " + _describe(found)
    flags = _cpuinfo_flags()
    if flags is not None:
        found = {flag: flag in flags for flag in _BF16_FLAGS}
        return any(found.values()), "/proc/cpuinfo flags: " + _describe(found)
    return False, "no CPU capability signal (torch.cpu, /proc/cpuinfo): taken as absent"


def _describe(found: dict) -> str:
    return ", ".join(f"{flag}={value}" for flag, value in found.items())


def _cpuinfo_flags() -> Optional[set]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        return None
    return None


def check_precision(precision) -> None:
    """``ConfigError`` unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def resolve_precision(precision: str, device: Union[str, torch.device] = "cpu") -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision`` means on ``device`` without an agreement check (``"auto"``:
    ``"bf16"`` on a CPU where ``cpu_has_fast_bf16()``, else ``"fp32"``)."""
    check_precision(precision)
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_fast_bf16() else "fp32"


def argmax_agreement(reference_logits: Tensor, logits: Tensor, mode: str = "multiclass",
                     threshold: float = 0.5) -> float:
    """The fraction of pixels whose decoded prediction is the same in ``logits`` as in ``reference_logits``
    (both ``(N, C, H, W)``): the argmax class for ``"multiclass"``; for ``"binary"`` / ``"multilabel"`` models the
    0 / 1 mask per label (sigmoid > ``threshold``), counted per pixel and label."""
    if reference_logits.shape != logits.shape:
        raise ValueError(f"the logits differ in shape: {tuple(reference_logits.shape)} vs {tuple(logits.shape)}")
    same = decode_logits(reference_logits.float(), mode, threshold) == decode_logits(logits.float(), mode, threshold)
    return same.float().mean().item()


def _to_float32(value):
    return value.float() if isinstance(value, Tensor) and value.dtype == torch.bfloat16 else value


class BFloat16Model(nn.Module):
    """A bfloat16 model behind a float32 interface: the input is cast to bfloat16 (in ``memory_format``), the
    model runs in bfloat16, and every bfloat16 tensor it returns is cast to float32. Made by ``bf16_model``;
    inference only (``save_pretrained`` refuses it: save the original). ``config`` is the wrapped model's."""

    inference_only = True
    precision = "bf16"

    def __init__(self, model: nn.Module, memory_format: torch.memory_format = torch.channels_last):
        super().__init__()
        self.model = model
        self.memory_format = memory_format
        if hasattr(model, "config"):
            self.config = model.config

    def forward(self, images: Tensor, *args, **kwargs):
        images = images.to(torch.bfloat16)
        if images.dim() == 4:
            images = images.contiguous(memory_format=self.memory_format)
        return tree_map(_to_float32, self.model(images, *args, **kwargs))


def bf16_model(model: nn.Module, *, fold: bool = True, example_size: tuple[int, int] = (64, 64),
               inplace: bool = False, memory_format: torch.memory_format = torch.channels_last) -> BFloat16Model:
    """``model`` in bfloat16 behind a float32 interface (``BFloat16Model``), in eval mode.

    Args:
        model: A float32 model (or any module whose forward takes one image tensor).
        fold: Fold its BatchNorms (and activations) into the convolutions first, in float32
            (``optimize_for_inference``, checked on an example), so that each folded weight is rounded to
            bfloat16 once; False converts the model as it is.
        example_size: (H, W) of ``optimize_for_inference``'s example.
        inplace: Convert ``model`` itself (no second copy of the weights) instead of a deep copy.
        memory_format: Of the weights and of the input (channels-last: oneDNN's fast layout).
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    if fold:
        model = optimize_for_inference(model, example_size=example_size, inplace=True)
    # FusedConv2d folds its BatchNorm scale in its own dtype (float32) before the cast: one rounding per weight.
    model.to(dtype=torch.bfloat16, memory_format=memory_format)
    return BFloat16Model(model, memory_format)


def inference_precision(model: nn.Module) -> str:
    """``"bf16"`` for a model made by ``optimize`` / ``bf16_model`` in bfloat16, else the dtype of its first
    floating-point parameter as ``"fp32"`` / ``"bf16"`` / ``"fp16"`` (``"fp32"`` when it has none)."""
    if isinstance(model, BFloat16Model):
        return "bf16"
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    dtype = tensors[0].dtype if tensors else torch.float32
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


@functools.cache
def _warn_slow_bf16() -> None:
    warnings.warn(f"precision='bf16' on a CPU without native bfloat16 ({fast_bf16_signal()}): it runs emulated, "
                  f"several times slower than fp32; use precision='auto' or 'fp32' for speed", RuntimeWarning,
                  stacklevel=3)


def _as_batches(images: Union[Tensor, Sequence[Tensor]]) -> list[Tensor]:
    batches = [images] if isinstance(images, Tensor) else list(images)
    out = []
    for batch in batches:
        if not isinstance(batch, Tensor) or batch.dim() not in (3, 4) or not batch.is_floating_point():
            raise ConfigError("check_images must be a float tensor (N, C, H, W) of normalised images, or a list of "
                              "(C, H, W) / (N, C, H, W) tensors")
        out.append(batch[None] if batch.dim() == 3 else batch)
    if not out:
        raise ConfigError("check_images is empty: give at least one image, or None")
    return out


def _logits(model: nn.Module, images: Tensor) -> Tensor:
    out = model(images)
    if isinstance(out, dict):  # torchvision's {"out": ..., "aux": ...}
        out = out["out"] if "out" in out else next(iter(out.values()))
    elif isinstance(out, (tuple, list)):
        out = out[0]
    return out.float()


def _agreement_on(reference: nn.Module, candidate: nn.Module, batches: list[Tensor], device: torch.device,
                  mode: str, threshold: float) -> float:
    same = total = 0.0
    with torch.inference_mode():
        for batch in batches:
            batch = batch.to(device, torch.float32)
            expected, got = _logits(reference, batch), _logits(candidate, batch)
            pixels = got.shape[0] * got.shape[-2] * got.shape[-1] * (1 if mode == "multiclass" else got.shape[1])
            same += argmax_agreement(expected, got, mode, threshold) * pixels
            total += pixels
    return same / total


def optimize(model: nn.Module, precision: str = "auto", *, example_size: tuple[int, int] = (64, 64),
             check_images: Optional[Union[Tensor, Sequence[Tensor]]] = None, inplace: bool = False) -> nn.Module:
    """The fastest inference version of ``model`` in ``precision`` (see the module's docstring).

    Args:
        model: A float32 model in eval mode on its device (a segzoo model, or any module whose forward takes one
            image tensor).
        precision: ``"fp32"`` (``optimize_for_inference``), ``"bf16"`` (``bf16_model``: CPU only; on a CPU
            without native bfloat16 it runs emulated, slowly, with a warning) or ``"auto"`` (bf16 where
            ``cpu_has_fast_bf16()`` and the agreement check on ``check_images`` passes, else fp32; fp32 on CUDA).
        example_size: (H, W) of the example ``optimize_for_inference`` records and checks the folding on.
        check_images: Normalised float32 images (a tensor ``(N, C, H, W)`` or a list of them) on which ``"auto"``
            compares the bfloat16 model's decoded predictions with the float32 model's: below
            ``AGREEMENT_THRESHOLD`` it warns, naming the agreement, and returns the float32 path. With
            ``"bf16"`` they are checked too, and a low agreement is a warning only. None: ``"auto"`` runs fp32
            (it never picks bf16 unchecked; ``segzoo.predict`` checks on its first batch).
        inplace: Rewrite ``model`` itself (no second copy of the weights). With check images the bfloat16
            candidate is always a copy, so that a fallback still has the float32 weights.

    Returns:
        The model to run: float32 in, float32 logits out, whichever precision it computes in
        (``inference_precision`` says which).
    """
    check_precision(precision)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    if precision == "bf16" and device.type != "cpu":
        raise ConfigError(f"precision='bf16' is the CPU path; the model is on {device.type} (on a GPU use float16 "
                          f"autocast: predict(half=True) / --half)")
    chosen = resolve_precision(precision, device)
    if chosen == "fp32":
        return optimize_for_inference(model, example_size=example_size, inplace=inplace)
    if precision == "bf16" and not cpu_has_fast_bf16():
        _warn_slow_bf16()
    if check_images is None:
        if precision == "auto":
            # auto never runs bf16 unchecked: the one trained model measured offline (docs/inference.md) agreed
            # with fp32 on only ~98.8% of unseen photos' pixels, below AGREEMENT_THRESHOLD
            return optimize_for_inference(model, example_size=example_size, inplace=inplace)
        return bf16_model(model, example_size=example_size, inplace=inplace)
    batches = _as_batches(check_images)
    config = getattr(model, "config", None)
    mode, threshold = getattr(config, "mode", "multiclass"), getattr(config, "threshold", 0.5)
    was_training = model.training
    model.eval()
    candidate = bf16_model(model, example_size=example_size, inplace=False)
    try:
        agreement = _agreement_on(model, candidate, batches, device, mode, threshold)
    finally:
        model.train(was_training)
    if agreement >= AGREEMENT_THRESHOLD:
        return candidate
    name = f"{config.head}_{config.backbone}" if hasattr(config, "head") else type(model).__name__
    if precision == "bf16":
        warnings.warn(f"precision='bf16': {name} agrees with fp32 on {agreement:.2%} of the check images' pixels, "
                      f"below {AGREEMENT_THRESHOLD:.1%}", RuntimeWarning, stacklevel=2)
        return candidate
    warnings.warn(f"precision='auto': bf16 agrees with fp32 on only {agreement:.2%} of the check images' pixels "
                  f"(< {AGREEMENT_THRESHOLD:.1%}) for {name}; running fp32", RuntimeWarning, stacklevel=2)
    del candidate
    return optimize_for_inference(model, example_size=example_size, inplace=inplace)
