"""One training iteration: forward, loss, backward and step, with optional mixed precision."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ..distributed import SharedError, first_failing_rank
from ..errors import TrainingDivergedError

__all__ = ["train_step"]


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() \
        else 0


def train_step(model: nn.Module, images: Tensor, masks: Tensor, criterion: Callable, optimizer: torch.optim.Optimizer,
               *, scaler: Optional["torch.amp.GradScaler"] = None, autocast_dtype: Optional[torch.dtype] = None,
               scheduler=None) -> Tensor:
    """Run one optimisation step on a batch and return the loss (detached).

    Args:
        model: The model (or its DDP wrapper) in train mode; its output (``(main, *aux)``) goes to ``criterion``.
        images, masks: A batch already on the model's device.
        criterion: ``criterion(outputs, masks) -> loss``, e.g. ``segzoo.losses.SegmentationLoss``.
        optimizer: The optimiser.
        scaler: A ``torch.amp.GradScaler`` for float16 training (None: plain backward).
        autocast_dtype: Run the forward under ``torch.autocast`` in this dtype (None: full precision).
        scheduler: Stepped after the optimiser (per-iteration schedules such as ``PolyLR``).
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(images.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        outputs = model(images)
        loss = criterion(outputs, masks)
    # Checked on every rank together: a rank that raised alone would leave the others waiting in backward's
    # gradient all-reduce. The lowest failing rank says why, the others raise SharedError and exit quietly.
    failing = first_failing_rank(not bool(torch.isfinite(loss)), loss.device)
    if failing is not None:
        if failing != _rank():
            raise SharedError(f"rank {failing} failed: the loss is not finite")
        raise TrainingDivergedError(f"the loss is {loss.item()}: lower the learning rate, or check the labels "
                                    "and the input images")
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss.detach()
