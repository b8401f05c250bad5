"""Process-group helpers for ``torchrun`` (one process per GPU, any number of nodes) and single-process runs.

Every helper is a no-op without an initialised process group, so training code calls them unconditionally. They
sit in segzoo's core rather than in ``segzoo.train`` because the weights layer needs one too: under DDP, rank 0
downloads (and converts) weights first and the other ranks then read the cache (``rank0_first``).
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistributedContext",
    "all_reduce_mean",
    "barrier",
    "cleanup_distributed",
    "init_distributed",
    "is_main_process",
    "rank0_first",
    "unwrap_model",
]

T = TypeVar("T")


@dataclass
class DistributedContext:
    """Where this process stands.

    Attributes:
        rank: Global rank (0 in a single-process run).
        local_rank: Rank on this node (selects the GPU).
        world_size: Number of processes.
        device: The device this process computes on.
        backend: ``"nccl"`` / ``"gloo"`` when a process group was initialised, else None.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the process that logs and writes checkpoints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device: str | None = None) -> DistributedContext:
    """Set up this process from ``torchrun``'s environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``).

    Without those variables the run is a single process and no process group is created. With
    ``WORLD_SIZE > 1`` the group is initialised through ``env://`` (``MASTER_ADDR`` / ``MASTER_PORT``, set
    by torchrun), which works unchanged across nodes.

    Args:
        device: ``"cuda"``, ``"cpu"`` or None (CUDA when available). On CUDA each process uses
            ``cuda:LOCAL_RANK`` and makes it the current device.

    Returns:
        The context of this process.
    """
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid torchrun environment: RANK={rank}, WORLD_SIZE={world_size}")
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kind = torch.device(kind).type
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for, but CUDA is not available")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are visible")
        torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
    elif kind == "cpu":
        torch_device = torch.device("cpu")
    else:
        raise ValueError(f"device must be 'cuda' or 'cpu', got {device!r}")
    backend = None
    if world_size > 1:
        backend = "nccl" if kind == "cuda" else "gloo"
        if not dist.is_initialized():
            kwargs = {}
            # Binding the group to the device up front avoids NCCL guessing it in barrier().
            if kind == "cuda" and "device_id" in inspect.signature(dist.init_process_group).parameters:
                kwargs["device_id"] = torch_device
            dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size, **kwargs)
        backend = dist.get_backend()
    return DistributedContext(rank, local_rank, world_size, torch_device, backend)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def cleanup_distributed() -> None:
    """Destroy the process group if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if _active():
        dist.barrier()


def is_main_process() -> bool:
    """Whether this process is rank 0 (always True when not distributed)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def rank0_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 first and on the other ranks after a barrier (they then read what rank 0 cached).

    Without a process group of more than one rank it simply calls ``fn``.
    """
    if not _active():
        return fn()
    if dist.get_rank() == 0:
        result = fn()
        dist.barrier()
        return result
    dist.barrier()
    return fn()


def all_reduce_mean(value: float | Tensor) -> float:
    """The mean of a scalar over all ranks (the value itself when not distributed).

    Args:
        value: A Python number or a one-element tensor.

    Returns:
        The mean as a Python float.
    """
    if not _active():
        return float(value)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    if isinstance(value, Tensor):
        tensor = value.detach().reshape(()).to(device, torch.float64)
    else:
        tensor = torch.tensor(float(value), dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor) / dist.get_world_size()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel (``.module``) and torch.compile
    (``._orig_mod``) wrappers.

    Args:
        model: A model, possibly wrapped (several times).

    Returns:
        The innermost model.
    """
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module) or inner is model:
            return model
        model = inner
