"""Training building blocks: optimizer groups, PolyLR, ShardedSampler, distributed helpers, checkpoints."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

import segzoo
from segzoo import train
from segzoo.errors import CheckpointError
from segzoo.train.losses import SegmentationLoss


def tiny_model(**kwargs):
    options = {"num_classes": 3, "output_stride": 32, "aux": True, **kwargs}
    return segzoo.create_model(options.pop("name", "fcn_test_resnet"), **options)


class Wrapper(nn.Module):  # what DistributedDataParallel looks like from outside
    def __init__(self, module):
        super().__init__()
        self.module = module


def test_param_groups_split_backbone_and_the_rest():
    model = tiny_model(neck="jpu")
    frozen = next(model.backbone.parameters())
    frozen.requires_grad_(False)
    groups = train.param_groups(Wrapper(model), lr=0.01, weight_decay=5e-4)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [("backbone", 0.01, 5e-4), ("head", 0.1, 5e-4)]
    backbone = {id(p) for p in model.backbone.parameters() if p.requires_grad}
    rest = {id(p) for name in ("neck", "head", "aux_head") for p in getattr(model, name).parameters()}
    assert {id(p) for p in groups[0]["params"]} == backbone and {id(p) for p in groups[1]["params"]} == rest
    assert id(frozen) not in backbone
    model.backbone.requires_grad_(False)
    assert [g["name"] for g in train.param_groups(model, lr=0.01)] == ["head"]


def test_build_optimizer_and_scaled_lr():
    optimizer = train.build_optimizer(tiny_model(), lr=0.02, head_lr_multiplier=5)
    assert isinstance(optimizer, torch.optim.SGD)
    assert [(g["lr"], g["momentum"], g["weight_decay"]) for g in optimizer.param_groups] == [(0.02, 0.9, 1e-4),
                                                                                             (0.1, 0.9, 1e-4)]
    assert train.scaled_lr(0.001, 4, 4) == pytest.approx(0.002) and train.scaled_lr(0.01, 8, 1) == pytest.approx(0.01)


def _sgd(lrs=(0.01, 0.1)):
    return torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs], lr=lrs[0])


def _advance(optimizer, scheduler, steps):
    for _ in range(steps):
        optimizer.step()
        scheduler.step()


def test_poly_lr_follows_the_formula():
    optimizer = _sgd()
    scheduler = train.PolyLR(optimizer, total_iters=1000, power=0.9, warmup_iters=100, warmup_start_factor=0.01)
    t = 0
    for target in (0, 50, 100, 500, 999, 1000, 1200):
        _advance(optimizer, scheduler, target - t)
        t = target
        factor = (1 - t / 1000) ** 0.9 if t < 1000 else 0.0
        if t < 100:
            factor *= 0.01 + 0.99 * t / 100
        assert scheduler.last_epoch == t
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01 * factor, 0.1 * factor], abs=1e-12)
        assert scheduler.get_last_lr() == pytest.approx([0.01 * factor, 0.1 * factor], abs=1e-12)
    assert train.PolyLR(_sgd(), total_iters=10, warmup_iters=0).get_last_lr() == pytest.approx([0.01, 0.1])


def test_poly_lr_state_dict_round_trip_continues_the_sequence():
    optimizer = _sgd()
    scheduler = train.PolyLR(optimizer, total_iters=300, warmup_iters=20)
    _advance(optimizer, scheduler, 37)
    state = json.loads(json.dumps(scheduler.state_dict()))  # plain values only
    optimizer2 = _sgd()
    scheduler2 = train.PolyLR(optimizer2, total_iters=300, warmup_iters=20)
    scheduler2.load_state_dict(state)
    for _ in range(30):
        _advance(optimizer, scheduler, 1), _advance(optimizer2, scheduler2, 1)
        assert [g["lr"] for g in optimizer2.param_groups] == [g["lr"] for g in optimizer.param_groups]


@pytest.mark.parametrize("kwargs", [{"total_iters": 0}, {"total_iters": 10, "warmup_iters": -1},
                                    {"total_iters": 10, "power": -1}, {"total_iters": 10, "warmup_start_factor": 2}])
def test_poly_lr_validates(kwargs):
    with pytest.raises(ValueError):
        train.PolyLR(_sgd(), **kwargs)


@pytest.mark.parametrize("shuffle", [False, True])
def test_sampler_shards(shuffle):
    shards = [list(train.ShardedSampler(10, shuffle=shuffle, rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(10))
    assert [len(s) for s in shards] == [4, 3, 3]
    assert [len(train.ShardedSampler(10, shuffle=shuffle, rank=r, world_size=3)) for r in range(3)] == [4, 3, 3]
    assert shuffle or shards[1] == [1, 4, 7]
    samplers = [train.ShardedSampler(11, shuffle=shuffle, rank=r, world_size=3, drop_last=True) for r in range(3)]
    shards = [list(s) for s in samplers]  # drop_last: equal shards (9 distinct of 11)
    assert [len(s) for s in shards] == [3, 3, 3] == [len(s) for s in samplers]
    assert len({i for shard in shards for i in shard}) == 9


def test_sampler_is_deterministic_per_epoch_and_seed():
    a, b = train.ShardedSampler(50, shuffle=True, seed=7), train.ShardedSampler(50, shuffle=True, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(50))
    assert list(train.ShardedSampler(50, shuffle=True, seed=8)) != first


def test_sampler_set_start_resumes_the_same_sequence():
    sampler = train.ShardedSampler(20, shuffle=True, seed=3, rank=1, world_size=2)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_start(6)
    assert list(sampler) == full[6:] and len(sampler) == 4
    sampler.set_epoch(5)
    assert len(sampler) == 10


def test_single_process_distributed_helpers(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    context = train.init_distributed("cpu")
    assert (context.rank, context.world_size, context.device, context.backend) == (0, 1, torch.device("cpu"), None)
    assert context.is_main and not context.distributed and train.is_main_process()
    assert train.all_reduce_mean(torch.tensor(2.5)) == 2.5 and train.all_reduce_mean(3) == 3.0
    train.barrier()
    assert isinstance(train.unwrap_model(Wrapper(Wrapper(nn.Linear(1, 1)))), nn.Linear)


def _train(model, optimizer, scheduler, steps=2):
    model.train()
    images, target = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    for _ in range(steps):
        optimizer.zero_grad()
        SegmentationLoss()(model(images), target).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def _setup(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = tiny_model(**kwargs)
    optimizer = train.build_optimizer(model, lr=0.01)
    return model, optimizer, train.PolyLR(optimizer, total_iters=100, warmup_iters=5)


def test_save_load_resume_round_trip(tmp_path):
    model, optimizer, scheduler = _setup()
    _train(model, optimizer, scheduler)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    path = train.save_checkpoint(tmp_path, model=Wrapper(model), optimizer=optimizer, scheduler=scheduler,
                                 scaler=scaler, epoch=1, iteration=2,
                                 extra={"best_miou": 0.5, "history": [(1, 0.25)]})
    draws = torch.rand(3), random.random(), np.random.rand()
    assert path == tmp_path / "checkpoint-00000002" and (tmp_path / "latest").read_text().strip() == path.name
    model2, optimizer2, scheduler2 = _setup(seed=1)
    scaler2 = torch.amp.GradScaler("cpu")
    state = train.resume_from(tmp_path, model=Wrapper(model2), optimizer=optimizer2, scheduler=scheduler2,
                              scaler=scaler2)
    assert (torch.rand(3).tolist(), random.random(), np.random.rand()) == (draws[0].tolist(), *draws[1:])
    assert (state.epoch, state.iteration, state.extra) == (1, 2, {"best_miou": 0.5, "history": [(1, 0.25)]})
    assert all(torch.equal(v, model2.state_dict()[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(optimizer.state[a]["momentum_buffer"], optimizer2.state[b]["momentum_buffer"])
               for a, b in zip(model.parameters(), model2.parameters()))
    assert scheduler2.last_epoch == 2 and scheduler2.get_last_lr() == scheduler.get_last_lr()
    assert [g["lr"] for g in optimizer2.param_groups] == [g["lr"] for g in optimizer.param_groups]
    assert scaler2.get_scale() == 1024.0
    for m, o, s in ((model, optimizer, scheduler), (model2, optimizer2, scheduler2)):  # training goes on alike
        torch.manual_seed(5)  # same images and dropout for both
        _train(m, o, s, steps=1)
    assert all(torch.allclose(a, b) for a, b in zip(model.parameters(), model2.parameters()))
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()
    loaded, saved = segzoo.create_model(f"local-dir:{path}"), train.load_checkpoint(path).model_state
    assert loaded.config.aux and all(torch.equal(v, saved[k]) for k, v in loaded.state_dict().items())


def test_adam_state_round_trips(tmp_path):
    model = tiny_model(aux=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    _train(model, optimizer, None, steps=1)
    train.save_checkpoint(tmp_path, model=model, optimizer=optimizer, epoch=0, iteration=1)
    optimizer2 = torch.optim.Adam(model.parameters(), lr=1e-3)
    train.resume_from(tmp_path, model=model, optimizer=optimizer2, restore_rng=False)
    assert optimizer2.param_groups[0]["betas"] == (0.8, 0.95)
    first = next(iter(model.parameters()))
    for key in ("step", "exp_avg", "exp_avg_sq"):
        assert torch.equal(optimizer2.state[first][key], optimizer.state[first][key])
    _train(model, optimizer2, None, steps=1)  # the loaded state is usable


def test_latest_keep_and_crash_leftovers(tmp_path):
    model, optimizer, _ = _setup()
    for iteration in (10, 20, 30):
        train.save_checkpoint(tmp_path, model=model, optimizer=optimizer, epoch=0, iteration=iteration, keep=2)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-00000020", "checkpoint-00000030"]
    assert train.find_checkpoint(tmp_path).name == "checkpoint-00000030"
    train.save_checkpoint(tmp_path, model=model, optimizer=optimizer, epoch=0, iteration=30, extra={"again": True})
    assert train.load_checkpoint(tmp_path).extra == {"again": True}  # re-saving an iteration replaces it

    crashed = tmp_path / ".tmp-checkpoint-crash"  # a save killed mid-write
    crashed.mkdir()
    (crashed / "model.safetensors").write_bytes(b"\0" * 10)
    assert train.load_checkpoint(tmp_path).iteration == 30
    (tmp_path / "latest").unlink()
    assert train.find_checkpoint(tmp_path).name == "checkpoint-00000030"
    (tmp_path / "latest").write_text("checkpoint-00000040\n")
    with pytest.warns(UserWarning, match="does not exist"):
        assert train.find_checkpoint(tmp_path).name == "checkpoint-00000030"
    train.save_checkpoint(tmp_path, model=model, optimizer=optimizer, epoch=0, iteration=40)
    assert not crashed.exists() and not list(tmp_path.glob(".tmp-*"))


def test_missing_or_corrupt_files_are_named(tmp_path):
    model, optimizer, _ = _setup()
    path = train.save_checkpoint(tmp_path / "run", model=model, optimizer=optimizer, epoch=0, iteration=5)
    json_file, state_file = path / "training_state.json", path / "training_state.safetensors"
    (path / "SHA256SUMS").unlink()  # as an older segzoo wrote it: the readers' own checks still name the file
    json_file.write_text(json_file.read_text()[:-20])
    with pytest.raises(CheckpointError, match="training_state.json is corrupt"):
        train.load_checkpoint(path)
    state_file.write_bytes(state_file.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="training_state.safetensors is not a valid safetensors file"):
        train.load_checkpoint(path)
    state_file.unlink()
    with pytest.raises(CheckpointError, match="training_state.safetensors is missing"):
        train.load_checkpoint(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no training checkpoint in .*empty: expected a run directory"):
        train.find_checkpoint(tmp_path / "empty")


def test_resume_with_another_model_names_the_differences(tmp_path):
    model, optimizer, _ = _setup()
    train.save_checkpoint(tmp_path / "run", model=model, optimizer=optimizer, epoch=0, iteration=100)
    other = tiny_model(name="pspnet_test_resnet", num_classes=5)
    with pytest.raises(CheckpointError, match=r"checkpoint-00000100 is of another model: head 'fcn' != 'pspnet', "
                                              r"num_classes 3 != 5"):
        train.resume_from(tmp_path / "run", model=other, optimizer=train.build_optimizer(other, lr=0.01))


def flip_byte(path, offset_from_end=10):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.safetensors", "training_state.safetensors", "training_state.json"])
def test_a_flipped_byte_is_refused_naming_the_file_and_the_previous_good_checkpoint(tmp_path, name):
    model, optimizer, _ = _setup()
    for iteration in (10, 20):
        train.save_checkpoint(tmp_path, model=model, optimizer=optimizer, epoch=0, iteration=iteration)
    assert (tmp_path / "checkpoint-00000020" / "SHA256SUMS").read_text().count("\n") == 4
    flip_byte(tmp_path / "checkpoint-00000020" / name, offset_from_end=3)  # a tensor value or a JSON digit
    with pytest.raises(CheckpointError, match=rf"checkpoint-00000020/{name} has sha256 .* corrupt .*; resume from "
                                              rf"the previous good checkpoint instead: .*checkpoint-00000010$"):
        train.resume_from(tmp_path, model=model, optimizer=optimizer)
    assert train.load_checkpoint(tmp_path / "checkpoint-00000010").iteration == 10
    flip_byte(tmp_path / "checkpoint-00000010" / "model.safetensors")
    with pytest.raises(CheckpointError, match="no earlier checkpoint of this run is intact"):
        train.load_checkpoint(tmp_path)
