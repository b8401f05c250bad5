"""FLOPs and parameters of a model, counted with torch's FLOP counter on the meta device (nothing is computed;
a multiply-add counts as 2 FLOPs; resampling and elementwise ops are not counted)."""
from __future__ import annotations

from typing import Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..factory import create_model
from ..model import input_channels

__all__ = ["TORCHVISION_PREFIX", "SMP_PREFIX", "build_for_benchmark", "count_flops", "count_model_flops", "is_peer"]

TORCHVISION_PREFIX = "tv:"
SMP_PREFIX = "smp:"


def is_peer(name: str) -> bool:
    """Whether ``name`` is a peer's model (torchvision's or segmentation_models_pytorch's), not segzoo's."""
    return name.startswith((TORCHVISION_PREFIX, SMP_PREFIX))


def build_for_benchmark(name: str, num_classes: Optional[int] = None, **kwargs) -> torch.nn.Module:
    """A segzoo model (random weights) or a peer with random weights: ``tv:<name>``, a torchvision segmentation
    model (no aux head); ``smp:<Arch>:<encoder>``, a segmentation_models_pytorch model (``smp.create_model``)."""
    if name.startswith(SMP_PREFIX):
        import segmentation_models_pytorch as smp

        arch, _, encoder = name[len(SMP_PREFIX):].partition(":")
        return smp.create_model(arch, encoder_name=encoder, encoder_weights=None, classes=num_classes or 21)
    if name.startswith(TORCHVISION_PREFIX):
        import torchvision

        builder = getattr(torchvision.models.segmentation, name[len(TORCHVISION_PREFIX):])
        return builder(weights=None, weights_backbone=None, aux_loss=False, num_classes=num_classes or 21)
    return create_model(name, num_classes=num_classes, **kwargs)


def count_flops(name: str, size: tuple[int, int], batch: int = 1, **kwargs) -> tuple[float, float]:
    """(GFLOPs of one forward, parameters in millions), counted on the meta device (nothing is computed)."""
    with torch.device("meta"):
        model = build_for_benchmark(name, **kwargs).eval()
    return count_model_flops(model, size, batch)


def count_model_flops(model: torch.nn.Module, size: tuple[int, int], batch: int = 1) -> tuple[float, float]:
    """(GFLOPs of one forward, parameters in millions) of a model, best built on the meta device."""
    device = next(model.parameters()).device
    images = torch.empty(batch, input_channels(model), *size, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(images)
    params = sum(p.numel() for p in model.parameters())
    return counter.get_total_flops() / 1e9, params / 1e6
