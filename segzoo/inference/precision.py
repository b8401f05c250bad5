"""bfloat16 on the CPU: whether this CPU computes it natively (``cpu_has_fast_bf16``), the bfloat16 copy of a model
behind a float32 interface (``bf16_model``), and how far a reduced-precision path agrees with float32
(``argmax_agreement``). ``segzoo.optimize`` (``segzoo.inference.paths``) chooses among the paths.

Why a bfloat16 copy and not eager autocast: both run every convolution in bfloat16 through oneDNN (which is fast
only with AMX-BF16 or AVX512-BF16), but autocast casts each float32 weight to bfloat16 on every call and runs each
BatchNorm as a separate pass, which the copy does not: its BatchNorms are folded in float32 first
(``optimize_for_inference``) and each folded weight is rounded once. The attention heads run their chunked
attention unchanged, in bfloat16 (half the memory).
"""
from __future__ import annotations

import copy
import functools
import os
import platform
import warnings
from typing import Optional

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from ..errors import ConfigError
from .decode import decode_logits
from .optimize import optimize_for_inference

__all__ = ["AGREEMENT_THRESHOLD", "FAST_BF16_ENV", "BFloat16Model", "cpu_has_fast_bf16", "fast_bf16_signal",
           "cpu_signature", "argmax_agreement", "bf16_model", "inference_precision", "inference_runtime"]

# ``auto`` keeps bfloat16 only if at least this fraction of the check images' pixels get the same class (binary /
# multi-label models: the same 0 / 1 per label) as in float32.
AGREEMENT_THRESHOLD = 0.995

_BF16_FLAGS = ("amx_bf16", "avx512_bf16")

# "1" or "0" pins the answer of cpu_has_fast_bf16 (read at call time): to compare the paths on one machine, to
# keep bfloat16 out of "auto", and in the tests, which must not depend on the CPU they run on.
FAST_BF16_ENV = "SEGZOO_FAST_BF16"


def cpu_has_fast_bf16() -> bool:
    """True only when this CPU computes bfloat16 natively (x86 AMX-BF16 or AVX512-BF16) and torch has oneDNN to
    run bfloat16 convolutions on it; detected, never assumed (``fast_bf16_signal`` says from what).

    ``SEGZOO_FAST_BF16=1`` / ``=0`` in the environment pins the answer. Else the signal, in order:
    ``torch.cpu.get_capabilities()`` (its ``amx_bf16`` and ``avx512_bf16`` entries, from cpuinfo), else
    ``torch.cpu._is_amx_tile_supported()`` / ``_is_avx512_bf16_supported()`` (older torch 2.x; every CPU with AMX
    tiles has AMX-BF16), else the ``amx_bf16`` / ``avx512_bf16`` flags of ``/proc/cpuinfo`` (Linux); with none of
    these, False. Arm's bfloat16 instructions are not counted (not measured).
    """
    pinned = _pinned_fast_bf16()
    return pinned if pinned is not None else _detect_fast_bf16()[0]


def fast_bf16_signal() -> str:
    """What ``cpu_has_fast_bf16`` read, e.g. ``"torch.cpu.get_capabilities(): amx_bf16=False, avx512_bf16=False"``
    or ``"SEGZOO_FAST_BF16=1 (pinned in the environment)"``."""
    if _pinned_fast_bf16() is not None:
        return f"{FAST_BF16_ENV}={os.environ[FAST_BF16_ENV].strip()} (pinned in the environment)"
    return _detect_fast_bf16()[1]


def _pinned_fast_bf16() -> Optional[bool]:
    value = os.environ.get(FAST_BF16_ENV, "").strip()
    if not value:
        return None
    if value not in ("0", "1"):
        raise ConfigError(f"{FAST_BF16_ENV} must be 1 (native bfloat16), 0 (none) or unset (detect), got {value!r}")
    return value == "1"


def cpu_signature() -> str:
    """What makes one CPU's timings differ from another's, as one string: the processor's name, the bfloat16
    signal, torch's version and its thread count. ``segzoo.predict``'s remembered path choices are keyed on it."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            name = next((line.partition(":")[2].strip() for line in file if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} | {fast_bf16_signal()} | torch {torch.__version__} | {torch.get_num_threads()} threads"


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


def float32_outputs(out):
    """``out`` (a tensor, or a dict / tuple of them) with every bfloat16 tensor cast to float32."""
    return tree_map(_to_float32, out)


class BFloat16Model(nn.Module):
    """A bfloat16 model behind a float32 interface: the input is cast to bfloat16 (in ``memory_format``), the
    model runs in bfloat16, and every bfloat16 tensor it returns is cast to float32. Made by ``bf16_model``;
    inference only (``save_pretrained`` refuses it: save the original). ``config`` is the wrapped model's."""

    inference_only = True
    precision = "bf16"
    runtime = "eager"

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
        return float32_outputs(self.model(images, *args, **kwargs))


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
    """What ``model`` computes in: ``"int8"`` / ``"bf16"`` / ``"fp32"`` for a model made by ``segzoo.optimize``
    (its ``precision``), else the dtype of its first floating-point parameter as ``"fp32"`` / ``"bf16"`` /
    ``"fp16"`` (``"fp32"`` when it has none)."""
    chosen = getattr(model, "precision", None)
    if getattr(model, "inference_only", False) and isinstance(chosen, str):
        return chosen
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    dtype = tensors[0].dtype if tensors else torch.float32
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def inference_runtime(model: nn.Module) -> str:
    """What runs ``model``: ``"onnxruntime"`` or ``"compile"`` for those paths of ``segzoo.optimize``, else
    ``"eager"``."""
    runtime = getattr(model, "runtime", None)
    return runtime if getattr(model, "inference_only", False) and isinstance(runtime, str) else "eager"


@functools.cache
def _warn_slow_bf16() -> None:
    warnings.warn(f"precision='bf16' on a CPU without native bfloat16 ({fast_bf16_signal()}): it runs emulated, "
                  f"several times slower than fp32; use precision='auto' or 'fp32' for speed", RuntimeWarning,
                  stacklevel=3)
