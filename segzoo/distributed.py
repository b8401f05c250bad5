"""Process-group helpers for ``torchrun`` (one process per GPU, any number of nodes) and single-process runs.

Every helper is a no-op without an initialised process group, so training code calls them unconditionally. They
sit in segzoo's core rather than in ``segzoo.train`` because the weights layer needs one too: under DDP, rank 0
downloads (and converts) weights first and the other ranks then read the cache (``rank0_first``).
"""
from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import ConfigError

__all__ = [
    "DistributedContext",
    "SharedError",
    "all_gather_objects",
    "all_reduce_mean",
    "all_reduce_sum_",
    "barrier",
    "broadcast_buffers",
    "cleanup_distributed",
    "first_failing_rank",
    "init_distributed",
    "is_main_process",
    "resolve_device",
    "rank0_first",
    "run_collectively",
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


def resolve_device(device: str | torch.device | None = None, *, available: bool = True) -> torch.device:
    """``device`` as a ``torch.device``, checked before any work is done: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
    ``None`` / ``"auto"`` (CUDA when available, else the CPU). With ``available`` (the default) CUDA must be
    available and N a visible GPU; without it only the name is checked, as torch's (planning for another machine).

    Raises:
        ConfigError: An unknown device (``"tpu"``), or CUDA asked for where there is none (torch's own errors come
            late and as tracebacks).
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if not available:
        return resolved
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported: use auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for, but CUDA is not available here: use --device cpu "
                          f"(device='cpu')")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r} was asked for, but {torch.cuda.device_count()} GPU(s) are visible")
    return resolved


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
    kind = resolve_device(device).type  # a bad or unavailable device is a ConfigError before any work
    if kind == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are visible")
        torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
    else:
        torch_device = torch.device("cpu")
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


class SharedError(RuntimeError):
    """Raised on the ranks that did not fail when another rank failed in ``run_collectively`` or ``rank0_first``:
    the failing rank reports its own error, the others can exit quietly."""


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def first_failing_rank(failed: bool, device: torch.device | str = "cpu") -> int | None:
    """The lowest rank on which ``failed`` is true (this rank's own flag without a process group), or None.

    One small all-reduce: every rank must call it at the same point. It lets a check that can fail on some ranks
    only (a nan loss) stop every rank together instead of leaving the others waiting in the next collective.
    ``device`` is where the backend's tensors live (the model's device under NCCL)."""
    if not _active():
        return 0 if failed else None
    flags = torch.zeros(dist.get_world_size(), device=device)
    flags[dist.get_rank()] = float(failed)
    dist.all_reduce(flags)
    failing = torch.nonzero(flags).flatten().tolist()
    return failing[0] if failing else None


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
    """Run ``fn`` on rank 0 first and on the other ranks after it (they then read what rank 0 cached).

    The other ranks wait in one collective that rank 0 ends by telling them whether ``fn`` failed: if it did, they
    raise a ``SharedError`` (rank 0 reports the error itself) instead of meeting a closed connection in a barrier
    and printing a traceback each. One collective per call on every rank, as a barrier, so calls may nest.
    Without a process group of more than one rank it simply calls ``fn``.
    """
    if not _active():
        return fn()
    if dist.get_rank() == 0:
        try:
            result = fn()
        except Exception as err:
            if not getattr(err, "_segzoo_shared", False):  # a nested call told the others already: they are gone
                dist.broadcast_object_list([f"rank 0 failed: {type(err).__name__}: {err}"], src=0)
                with contextlib.suppress(AttributeError):  # exceptions with __slots__ cannot be marked
                    err._segzoo_shared = True
            raise
        dist.broadcast_object_list([None], src=0)
        return result
    failure = [None]
    dist.broadcast_object_list(failure, src=0)
    if failure[0] is not None:
        raise SharedError(failure[0])
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


def all_reduce_sum_(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over all ranks in place (no-op without a process group of more than one rank); under NCCL a
    CPU tensor goes through a CUDA copy, since NCCL reduces CUDA tensors only. Returns ``tensor``."""
    if not _active():
        return tensor
    reduced = tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        reduced = tensor.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    if reduced is not tensor:
        tensor.copy_(reduced)
    return tensor


def all_gather_objects(obj: object) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` when not distributed."""
    if not _active():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def run_collectively(fn: Callable[[], T], *, rank0_only: bool = False) -> T:
    """Run ``fn`` on every rank (or on rank 0 alone) so that an error on any rank stops every rank at this point.

    Without this, an error on one rank leaves the others waiting in the next collective until the connection
    breaks or torchrun kills them, and an error every rank meets is printed once per rank. Here the lowest rank
    that failed raises its own exception and every other rank a ``SharedError``, so the error is reported once
    (by rank 0 when every rank fails alike). Every rank must call this at the same point.

    Args:
        fn: The work; it must not itself use collectives (another rank may have failed and not be there).
        rank0_only: Run ``fn`` on rank 0 only and give its result to every rank (e.g. a scan of shared files).

    Returns:
        ``fn()``'s result (rank 0's when ``rank0_only``); without a process group simply ``fn()``.
    """
    if not _active():
        return fn()
    rank, result, error = dist.get_rank(), None, None
    if rank == 0 or not rank0_only:
        try:
            result = fn()
        except Exception as err:  # shared with the others first, then re-raised below
            error = err
    failures = all_gather_objects(None if error is None else f"{type(error).__name__}: {error}")
    first = next((index for index, failure in enumerate(failures) if failure is not None), None)
    if first == rank:
        raise error
    if first is not None:
        raise SharedError(f"rank {first} failed: {failures[first]}")
    if rank0_only:
        shared = [result]
        dist.broadcast_object_list(shared, src=0)
        result = shared[0]
    return result


def broadcast_buffers(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank; a no-op when not distributed.

    Without SyncBatchNorm every process updates its running statistics from its own batches, and DDP copies
    rank 0's only at the next training forward. Evaluating right after training would then score a different
    model on every rank, none of them quite the one rank 0 saves. Parameters need no copy: DDP keeps them equal.

    Args:
        model: The model, possibly wrapped.
        src: The rank whose buffers win (0: the rank that saves checkpoints).
    """
    if not _active():
        return
    for buffer in unwrap_model(model).buffers():
        dist.broadcast(buffer.data, src)


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
