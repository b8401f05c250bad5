"""The reference optimiser: SGD with the backbone at the base learning rate and everything newly initialised
(JPU neck, head, aux head) at a multiple of it."""
from __future__ import annotations

import torch
from torch import nn

from ..distributed import unwrap_model

__all__ = ["build_optimizer", "param_groups", "scaled_lr"]


def param_groups(model: nn.Module, lr: float, weight_decay: float = 1e-4,
                 head_lr_multiplier: float = 10.0) -> list[dict]:
    """Split a segmentation model's trainable parameters into a backbone group and a head group.

    Args:
        model: A ``SegmentationModel``, possibly wrapped in DDP / DataParallel / torch.compile.
        lr: Learning rate of the backbone.
        weight_decay: Weight decay of both groups.
        head_lr_multiplier: The other parameters (``neck``, ``head``, ``aux_head``, anything outside the
            backbone) train at ``lr * head_lr_multiplier``.

    Returns:
        Optimizer parameter groups with keys ``name`` (``"backbone"`` / ``"head"``), ``params``, ``lr``
        and ``weight_decay``. Frozen parameters are left out, and so are empty groups.
    """
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    model = unwrap_model(model)
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"expected a segmentation model with a .backbone, got {type(model).__name__}")
    backbone_ids = {id(param) for param in backbone.parameters()}
    backbone_params, head_params = [], []
    for param in model.parameters():  # parameters() already skips shared duplicates
        if not param.requires_grad:
            continue
        (backbone_params if id(param) in backbone_ids else head_params).append(param)
    groups = [
        {"name": "backbone", "params": backbone_params, "lr": lr, "weight_decay": weight_decay},
        {"name": "head", "params": head_params, "lr": lr * head_lr_multiplier, "weight_decay": weight_decay},
    ]
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4,
                    head_lr_multiplier: float = 10.0, algorithm: str = "sgd") -> torch.optim.Optimizer:
    """SGD (the CNN heads' recipe) or AdamW (Mask2Former's and the transformers') over ``param_groups(model, ...)``.

    Args:
        model: A ``SegmentationModel``, possibly wrapped.
        lr: Learning rate of the backbone (see ``scaled_lr``).
        momentum: SGD momentum (AdamW: unused).
        weight_decay: Weight decay of every parameter.
        head_lr_multiplier: Learning-rate multiplier of the parameters outside the backbone.
        algorithm: ``"sgd"`` or ``"adamw"``.

    Returns:
        The optimizer.
    """
    if algorithm not in ("sgd", "adamw"):
        raise ValueError(f"algorithm must be 'sgd' or 'adamw', got {algorithm!r}")
    groups = param_groups(model, lr, weight_decay, head_lr_multiplier)
    if not groups:
        raise ValueError("the model has no trainable parameter")
    if algorithm == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


def scaled_lr(base_lr: float, batch_per_process: int, world_size: int) -> float:
    """The reference's linear scaling rule: ``base_lr * batch_per_process / 8 * world_size``.

    Args:
        base_lr: Learning rate for 8 images per step (0.001 VOC, 0.01 Cityscapes in the reference).
        batch_per_process: Images per process per step.
        world_size: Number of processes.

    Returns:
        The learning rate of the backbone.
    """
    if batch_per_process < 1 or world_size < 1:
        raise ValueError(f"batch_per_process and world_size must be >= 1, got {batch_per_process}, {world_size}")
    return base_lr * batch_per_process / 8 * world_size
