"""A deterministic, resumable sampler that shards a data set over ranks.

Unlike ``DistributedSampler`` it never pads with duplicated samples when ``drop_last`` is False, so metrics
accumulated over several ranks equal those of a single process; and ``set_start`` skips the indices a
resumed run has already seen in the current epoch.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ShardedSampler"]


class ShardedSampler(Sampler[int]):
    """Per-rank indices of an epoch.

    Each epoch is a permutation of ``range(length)`` drawn from a ``torch.Generator`` seeded with
    ``seed + epoch`` (the same on every rank), or ``range(length)`` itself without shuffling. Rank ``r``
    takes ``indices[r::world_size]``.

    Args:
        length: Number of samples in the data set.
        shuffle: Shuffle every epoch (training) or not (evaluation).
        seed: Base seed of the shuffle.
        rank: This process's rank.
        world_size: Number of processes.
        drop_last: Truncate the epoch to a multiple of ``world_size`` so every rank gets the same number
            of samples (training, where ranks step together). False (evaluation) keeps every sample
            exactly once, so ranks may differ by one sample.
    """

    def __init__(self, length: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False):
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size) with world_size >= 1, got rank={rank}, "
                             f"world_size={world_size}")
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (its shuffle) and start it from the beginning.

        Args:
            epoch: Epoch index.
        """
        self.epoch = epoch
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this rank's list, for the current epoch only.

        Args:
            start: Number of this rank's samples already consumed in this epoch (e.g. iterations done
                in the epoch times the per-process batch size).
        """
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.start = start

    def _rank_indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.length, generator=generator).tolist()
        else:
            indices = list(range(self.length))
        if self.drop_last:
            indices = indices[:len(indices) - len(indices) % self.world_size]
        return indices[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._rank_indices()[self.start:])

    def __len__(self) -> int:
        if self.drop_last:
            per_rank = self.length // self.world_size
        else:
            per_rank = len(range(self.rank, self.length, self.world_size))
        return max(per_rank - self.start, 0)
