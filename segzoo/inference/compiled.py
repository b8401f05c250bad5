"""The ``compile`` inference path: ``torch.compile`` (inductor) with freezing, in float32 or bfloat16.

Freezing turns the weights into constants of the compiled graph, so inductor folds each BatchNorm into its
convolution and pre-packs the weights for oneDNN itself: what ``optimize_for_inference`` does by hand, through
the same oneDNN ops, but maintained by PyTorch. bfloat16 runs the float32 model under bf16 autocast inside the
compiled graph: the folding happens in float32 and each folded weight is rounded to bfloat16 once, as in the eager
bfloat16 copy.

The cost: the first call at each input size compiles (tens of seconds for a ResNet-18 model on 2 cores, minutes for
ResNet-101), and a new size compiles again (after a few sizes torch.compile switches to a dynamic-shape graph).
So this path suits fixed-size inputs (sliding windows, a camera stream) and ``auto`` tries it only when asked.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .precision import float32_outputs

__all__ = ["CompiledModel", "compiled_model", "COMPILE_PRECISIONS"]

COMPILE_PRECISIONS = ("fp32", "bf16")


class _Bf16Autocast(nn.Module):
    """Runs ``model`` under CPU bfloat16 autocast and returns float32 tensors (traced into the compiled graph)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.model(images)
        return float32_outputs(out)


class CompiledModel(nn.Module):
    """``torch.compile(model, options={"freezing": True})`` run under ``torch.inference_mode`` and in the
    model's memory format (channels-last for segzoo's models). Inference only; ``config`` is the model's."""

    inference_only = True
    runtime = "compile"

    def __init__(self, model: nn.Module, precision: str = "fp32",
                 memory_format: torch.memory_format = torch.channels_last):
        super().__init__()
        self.model = model
        self.precision = precision
        self.memory_format = memory_format
        wrapped = _Bf16Autocast(model) if precision == "bf16" else model
        # freezing: weights become constants (BatchNorm folded, oneDNN pre-packing); needs inference mode
        self.compiled = torch.compile(wrapped, options={"freezing": True})
        if hasattr(model, "config"):
            self.config = model.config

    def forward(self, images: Tensor):
        if images.dim() == 4:
            images = images.contiguous(memory_format=self.memory_format)
        with torch.inference_mode():
            return self.compiled(images)


def compiled_model(model: nn.Module, precision: str = "fp32", *,
                   memory_format: torch.memory_format = torch.channels_last) -> CompiledModel:
    """``model`` (float32, put in eval mode) compiled by inductor with freezing, computing in ``"fp32"`` or
    ``"bf16"`` (bfloat16 autocast; CPU only). Compiles lazily, on the first call at each input size."""
    if precision not in COMPILE_PRECISIONS:
        raise ConfigError(f"the compile path computes in {' or '.join(COMPILE_PRECISIONS)}, not {precision!r}")
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return CompiledModel(model.to(memory_format=memory_format), precision, memory_format)
