"""Poly learning-rate decay with a linear warm-up, stepped once per iteration (the reference recipe)."""
from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["PolyLR"]


class PolyLR(LRScheduler):
    """``lr = base_lr * (1 - t / total_iters) ** power``, times a linear warm-up factor for ``t < warmup_iters``.

    The warm-up factor rises from ``warmup_start_factor`` at ``t = 0`` to 1 at ``t = warmup_iters``. Every
    parameter group is scaled by the same factor, so the 10x head groups keep their ratio. From
    ``t = total_iters`` on the learning rate is 0. Step it once per iteration, after ``optimizer.step()``.

    Only plain attributes are stored, so ``state_dict()`` is JSON-ready and round-trips.

    Args:
        optimizer: The optimizer; its groups' current ``lr`` (or ``initial_lr`` when resuming) are the base.
        total_iters: Number of iterations of the whole run (>= 1).
        power: Poly exponent (>= 0).
        warmup_iters: Length of the linear warm-up in iterations (0 disables it).
        warmup_start_factor: Fraction of the base learning rate at iteration 0, in [0, 1].
        last_epoch: The index of the last iteration, -1 for a fresh run.
    """

    def __init__(self, optimizer: Optimizer, total_iters: int, power: float = 0.9, warmup_iters: int = 200,
                 warmup_start_factor: float = 0.01, last_epoch: int = -1):
        if isinstance(total_iters, bool) or not isinstance(total_iters, int) or total_iters < 1:
            raise ValueError(f"total_iters must be an integer >= 1, got {total_iters!r}")
        if isinstance(warmup_iters, bool) or not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ValueError(f"warmup_iters must be an integer >= 0, got {warmup_iters!r}")
        if not power >= 0:
            raise ValueError(f"power must be >= 0, got {power!r}")
        if not 0 <= warmup_start_factor <= 1:
            raise ValueError(f"warmup_start_factor must be in [0, 1], got {warmup_start_factor!r}")
        self.total_iters = total_iters
        self.power = float(power)
        self.warmup_iters = warmup_iters
        self.warmup_start_factor = float(warmup_start_factor)
        super().__init__(optimizer, last_epoch)

    def factor(self, iteration: int) -> float:
        """The multiplier of the base learning rates at ``iteration``.

        Args:
            iteration: Iteration index (0 for the first).

        Returns:
            The factor, in [0, 1].
        """
        if iteration >= self.total_iters:
            return 0.0
        value = (1.0 - max(iteration, 0) / self.total_iters) ** self.power
        if iteration < self.warmup_iters:
            progress = max(iteration, 0) / self.warmup_iters
            value *= self.warmup_start_factor + (1.0 - self.warmup_start_factor) * progress
        return value

    def reschedule(self, total_iters: int, warmup_iters: int, base_lrs: list[float]) -> None:
        """Follow another schedule from the current iteration on, e.g. a resumed run given more iterations.

        ``load_state_dict`` brings back the checkpointed run's total, warm-up and base learning rates; a resumed
        run asked for 16 iterations where the checkpoint's schedule ended at 8 would otherwise train from
        iteration 8 on at learning rate 0. The schedule is a closed form of the iteration, so the rest of the run
        gets exactly the learning rates a run started with the new values has at the same iterations.

        Args:
            total_iters: The new number of iterations of the whole run (>= 1).
            warmup_iters: The new warm-up length (>= 0).
            base_lrs: The new base learning rate of every parameter group.
        """
        if isinstance(total_iters, bool) or not isinstance(total_iters, int) or total_iters < 1:
            raise ValueError(f"total_iters must be an integer >= 1, got {total_iters!r}")
        if isinstance(warmup_iters, bool) or not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ValueError(f"warmup_iters must be an integer >= 0, got {warmup_iters!r}")
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"{len(base_lrs)} base learning rates for {len(self.optimizer.param_groups)} groups")
        self.total_iters, self.warmup_iters, self.base_lrs = total_iters, warmup_iters, [float(x) for x in base_lrs]
        for group, base_lr, lr in zip(self.optimizer.param_groups, self.base_lrs, self.get_lr()):
            group["initial_lr"], group["lr"] = base_lr, lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:
        """The learning rates of the groups at ``last_epoch`` (closed form, not chained)."""
        factor = self.factor(self.last_epoch)
        return [base_lr * factor for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()
