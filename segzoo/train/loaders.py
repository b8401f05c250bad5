"""DataLoaders for training and evaluation, sharded over the processes of a DDP run.

Both use ``ShardedSampler``: training shuffles with a seed per epoch and gives every process the same
number of batches; evaluation splits the dataset without padding, so no image is scored twice.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DatasetError
from .sampler import ShardedSampler

__all__ = ["train_loader", "eval_loader", "start_epoch"]


def train_loader(dataset: Dataset, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 workers: int = 2, pin_memory: bool = False) -> DataLoader:
    """A shuffling loader over this process's shard; incomplete last batches are dropped.

    Call ``start_epoch(loader, epoch)`` before each epoch (it reshuffles and reseeds the augmentation).

    Raises:
        DatasetError: (a ``ValueError``) Each process would get fewer images than one batch.
    """
    sampler = ShardedSampler(len(dataset), shuffle=True, seed=seed, rank=rank, world_size=world_size,
                             drop_last=True)
    if len(sampler) < batch_size:
        raise DatasetError(f"each of the {world_size} process(es) gets {len(sampler)} training images, fewer than "
                         f"the batch size {batch_size}: lower --batch-size or use more data")
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                      pin_memory=pin_memory, persistent_workers=False, generator=torch.Generator())


def eval_loader(dataset: Dataset, *, batch_size: int = 1, rank: int = 0, world_size: int = 1,
                workers: int = 2, pin_memory: bool = False) -> DataLoader:
    """An in-order loader over this process's shard, without padding (images of different sizes: batch 1)."""
    sampler = ShardedSampler(len(dataset), shuffle=False, rank=rank, world_size=world_size, drop_last=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory)


def start_epoch(loader: DataLoader, epoch: int, skip_batches: int = 0) -> None:
    """Prepare ``loader`` for ``epoch``: its shuffle order depends only on (seed, epoch), and the seed the
    augmentation of each worker is drawn from on (seed, epoch, rank); ``skip_batches`` skips the batches of this
    epoch that a resumed run has already trained on, so it goes on with the very images it would have seen next."""
    sampler: ShardedSampler = loader.sampler
    sampler.set_epoch(epoch)
    sampler.set_start(skip_batches * loader.batch_size)
    if loader.generator is not None:
        # The rank too: otherwise worker k of every process draws the same flips, scales and crops.
        loader.generator.manual_seed(sampler.seed * 1_000_003 + epoch * 1009 + skip_batches + sampler.rank * 7919)
