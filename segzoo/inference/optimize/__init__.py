"""``optimize_for_inference``: fold each BatchNorm (and ReLU) into the convolution before it and, on the CPU,
keep every convolution's weight pre-packed in oneDNN's blocked layout.

In the ResNet-101 models at 480x480 that saves about 8% of the time, and up to 40% for the 15x15 layers of the
output-stride-32 backbones under JPU (measured by ``segzoo benchmark --optimize``). The result serves inference
only: it cannot be trained or saved.

Which convolution feeds which BatchNorm is not read from the code but observed (``dataflow``): one forward on a
small example records who produces and who consumes each tensor. A pair is fused only if the convolution's
output goes to that BatchNorm and to nothing else (likewise BatchNorm -> activation, and a BatchNorm whose only
reader is a 1x1 convolution), so the rewrite cannot change what any other consumer sees; the example's outputs
are then compared before and after. The layers themselves are ``packed_conv.FusedConv2d``; the folding
arithmetic is in ``batch_norm``.

Precision: the result computes in the precision the caller runs it in. A bfloat16 (or float16) model is folded in
float32 and runs its convolutions in its own dtype; under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the
fused layers skip the oneDNN packing (whose private ops autocast does not see) and run ``F.conv2d``, which
autocast computes in bfloat16, as the eager model's convolutions are. ``segzoo.inference.precision.optimize``
chooses between this float32 path and a bfloat16 one. The packing is gated on the torch versions it is tested
with (``packed_conv.TESTED_TORCH``); elsewhere the convolutions run ``F.conv2d``, BatchNorm still folded.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Optional

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from ...model import input_channels
from .batch_norm import fold_batch_norm
from .dataflow import plan_fusions, record_dataflow
from .packed_conv import WIDE_INPUT_CHUNK, FusedConv2d, packing_available

__all__ = ["optimize_for_inference", "FusedConv2d", "fold_batch_norm", "is_optimized_for_inference",
           "WIDE_INPUT_CHUNK"]


def is_optimized_for_inference(model: nn.Module) -> bool:
    """True if ``model`` contains layers made by ``optimize_for_inference``."""
    return any(isinstance(module, FusedConv2d) for module in model.modules())


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _flat_outputs(output) -> list[Tensor]:
    return [value for value in tree_leaves(output) if isinstance(value, Tensor)]


def optimize_for_inference(model: nn.Module, example_size: tuple[int, int] = (64, 64), inplace: bool = False,
                           verify: bool = True) -> nn.Module:
    """An inference-only version of ``model``: each ``Conv2d`` becomes a ``FusedConv2d`` with the BatchNorm
    (and ReLU / LeakyReLU) that follows it folded in, its weight pre-packed for oneDNN on the CPU.

    Works on any module whose forward takes one ``(N, C, H, W)`` image tensor (segzoo models, with ``C`` their
    ``config.in_chans``; torchvision or timm models, ``C`` = 3). Move the model to its device and dtype first.
    It keeps the precision it is run in: a bfloat16 model runs its convolutions in bfloat16, and under a CPU
    bfloat16 autocast the convolutions compute in bfloat16 as the eager model's do (not packed: the packed
    oneDNN ops would stay float32). Built under an autocast, the folding is recorded and checked in the model's
    own dtype (autocast off), so the check compares like with like.
    The result is in eval mode, gives the same outputs up to float rounding, cannot be trained (its forward
    raises in training mode) and cannot be saved with ``save_pretrained`` (save the original). Convolutions
    whose output goes anywhere but one BatchNorm keep their own output (they are packed, not folded). Memory
    stays what it was: the folding and packing happen layer by layer on the first call, each replacing the
    weight it was made from.

    Args:
        model: The model; its eval mode is what gets folded (BatchNorm running statistics).
        example_size: (H, W) of the random example on which the data flow is recorded and checked.
        inplace: Rewrite ``model`` itself instead of a deep copy (no second copy of the weights).
        verify: Compare the example's outputs before and after; if they differ, put the original layers
            back and raise ``RuntimeError``.

    Returns:
        The optimized model (``model`` itself with ``inplace=True``).
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    parameter = next(model.parameters(), None)
    if parameter is None:
        return model
    if parameter.device.type == "cpu":
        packing_available()  # the version gate: checked (and warned about) here, not inside a forward
    no_autocast = (torch.autocast(parameter.device.type, enabled=False) if parameter.device.type in ("cpu", "cuda")
                   else contextlib.nullcontext())
    with no_autocast:
        return _optimize(model, example_size, verify, parameter)


def _optimize(model: nn.Module, example_size: tuple[int, int], verify: bool, parameter: Tensor) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(1, input_channels(model), *example_size, generator=generator).to(parameter.device,
                                                                                           parameter.dtype)
    before, produced, consumed, uses = record_dataflow(model, example)
    before = [value.clone() for value in _flat_outputs(before)]
    modules = dict(model.named_modules())
    replacements = []
    for conv, absorbed in plan_fusions(model, produced, consumed, uses).items():  # (BN after, activation, BN before)
        replacements.append((conv, FusedConv2d(modules[conv], *(modules[n] if n else None for n in absorbed))))
        replacements += [(n, nn.Identity()) for n in absorbed if n]
    for name, new in replacements:
        _replace(model, name, new)
    fused = [new for _, new in replacements if isinstance(new, FusedConv2d)]
    for layer in fused:  # the check folds on the fly and keeps nothing: no second copy of the weights
        layer.checking = True
    try:
        problem = _compare_outputs(model, example, before) if verify else None
    finally:
        for layer in fused:
            layer.checking = False
    if problem:
        for name, _ in replacements:  # put every original module back: the model is left as it was
            _replace(model, name, modules[name])
        raise RuntimeError(f"optimize_for_inference would change {type(model).__name__}'s outputs ({problem}); "
                           f"the model is left unchanged: use it as it is")
    return model


def _compare_outputs(model: nn.Module, example: Tensor, before: list[Tensor]) -> Optional[str]:
    """What differs between ``model(example)`` and ``before``, or None."""
    try:
        with torch.no_grad():
            after = _flat_outputs(model(example))
    except Exception as err:  # e.g. the model reads a folded BatchNorm's attributes itself
        return f"its forward fails: {type(err).__name__}: {err}"
    if [t.shape for t in after] != [t.shape for t in before]:
        return "the output shapes differ"
    tolerance = 1e-3 if example.dtype in (torch.float32, torch.float64) else 5e-2
    for old, new in zip(before, after):
        scale = old.abs().max().item() or 1.0
        error = (old - new).abs().max().item()
        if not error <= tolerance * scale:  # also catches NaN
            return f"largest difference {error:.3g} on values up to {scale:.3g}"
    return None
