"""A nan loss stops training with one clear error, also when it appears on one rank only (two gloo processes)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from segzoo.distributed import SharedError, first_failing_rank
from segzoo.errors import SegzooError, TrainingDivergedError
from segzoo.train import train_step


def tiny_step(model, *, nan: bool):
    images, masks = torch.ones(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)

    def criterion(outputs, target):
        loss = nn.functional.cross_entropy(outputs, target)
        return loss * math.nan if nan else loss

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return train_step(model, images, masks, criterion, optimizer)


def test_nan_loss_is_a_segzoo_error_and_nothing_is_stepped():
    model = nn.Conv2d(1, 2, 1)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TrainingDivergedError, match=r"the loss is nan: lower the learning rate") as raised:
        tiny_step(model, nan=True)
    assert isinstance(raised.value, SegzooError) and isinstance(raised.value, FloatingPointError)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert first_failing_rank(False) is None and first_failing_rank(True) == 0  # without a process group


def _worker(rank: int, world_size: int, init_file: str, results: str):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Conv2d(1, 2, 1))
    outcome = "finished"
    try:
        tiny_step(model, nan=False)              # both fine: a normal step
        tiny_step(model, nan=(rank == 1))        # rank 1 alone diverges: both must stop here, neither may hang
    except TrainingDivergedError as err:
        outcome = f"TrainingDivergedError: {err}"
    except SharedError as err:
        outcome = f"SharedError: {err}"
    with open(f"{results}.{rank}", "w") as file:
        file.write(outcome)
    dist.destroy_process_group()


def test_nan_on_one_rank_stops_every_rank_and_the_failing_one_says_why(tmp_path):
    results = tmp_path / "result"
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(results)), nprocs=2, join=True)
    assert (tmp_path / "result.0").read_text() == "SharedError: rank 1 failed: the loss is not finite"
    assert (tmp_path / "result.1").read_text().startswith("TrainingDivergedError: the loss is nan")
