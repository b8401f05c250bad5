"""Who feeds whom: one forward on an example records, at the level of tensor operations, which module produced each
tensor and which modules read it, and ``plan`` picks the convolution -> BatchNorm -> activation chains that can be
fused because nothing else reads their intermediate values."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Optional

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["record_dataflow", "plan_fusions", "BATCH_NORMS", "ACTIVATIONS"]

BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)


def _key(tensor: Tensor) -> tuple[int, int]:
    # A tensor changed in place (ReLU(inplace=True)) is a new value: count its uses per version.
    return id(tensor), tensor._version


class _UseCounter(TorchDispatchMode):
    """Counts how many tensor operations read each (tensor, version)."""

    def __init__(self):
        super().__init__()
        self.uses: Counter = Counter()
        self.alive: list[Tensor] = []  # keeps every tensor seen alive, so that no id is reused mid-recording

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in tree_leaves((args, kwargs)):
            if isinstance(value, Tensor):
                self.uses[_key(value)] += 1
                self.alive.append(value)
        return func(*args, **kwargs)


def record_dataflow(model: nn.Module, example: Tensor):
    """Run ``model(example)``; return (output, produced, consumed, uses) where ``produced[name]`` lists the keys of
    a conv / BatchNorm module's outputs, ``consumed[key]`` the conv / BatchNorm / activation modules that read it."""
    produced, consumed, hooks = defaultdict(list), defaultdict(list), []
    counter = _UseCounter()

    def on_output(name):
        def hook(module, inputs, output):
            produced[name].append(_key(output))
            counter.alive.append(output)
        return hook

    def on_input(name):
        def hook(module, inputs):
            if inputs and isinstance(inputs[0], Tensor):
                consumed[_key(inputs[0])].append(name)
        return hook

    for name, module in model.named_modules():
        if type(module) is nn.Conv2d or _is_foldable_batch_norm(module):
            hooks.append(module.register_forward_hook(on_output(name)))
        if type(module) is nn.Conv2d or _is_foldable_batch_norm(module) or type(module) in ACTIVATIONS:
            hooks.append(module.register_forward_pre_hook(on_input(name)))
    try:
        with torch.no_grad(), counter:  # not inference_mode: its tensors have no version counter
            output = model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return output, produced, consumed, counter.uses


def _is_foldable_batch_norm(module: nn.Module) -> bool:
    return type(module) in BATCH_NORMS and module.track_running_stats and module.running_mean is not None


def _sole_consumer(keys: list, consumed: dict, uses: Counter) -> Optional[str]:
    """The one module that reads every one of ``keys`` and is the only reader of each, else None."""
    readers = {tuple(consumed.get(key, ())) for key in keys}
    if len(readers) != 1 or not all(uses[key] == 1 for key in keys):
        return None
    (reader,) = readers
    return reader[0] if len(reader) == 1 else None


def plan_fusions(model: nn.Module, produced, consumed, uses) -> dict[str, tuple[Optional[str], ...]]:
    """``{conv name: (BatchNorm after, activation after, BatchNorm before)}`` (names or None) for every conv
    that ran."""
    modules = dict(model.named_modules())
    inputs_of = defaultdict(list)  # module name -> keys it read
    for key, readers in consumed.items():
        for reader in readers:
            inputs_of[reader].append(key)
    producer_of = {key: name for name, keys in produced.items() for key in keys}
    plan = {}
    for name, keys in produced.items():
        if type(modules[name]) is not nn.Conv2d or modules[name].padding_mode != "zeros" or \
                isinstance(modules[name].padding, str):
            continue
        bn = _sole_consumer(keys, consumed, uses)
        # the BatchNorm must read nothing but this conv's outputs (it may be called once per conv call)
        if bn is None or not _is_foldable_batch_norm(modules[bn]) or set(inputs_of[bn]) != set(keys):
            bn = None
        last = produced[bn] if bn else keys
        act = _sole_consumer(last, consumed, uses)
        if act is None or type(modules[act]) not in ACTIVATIONS or set(inputs_of[act]) != set(last):
            act = None
        plan[name] = (bn, act)
    folded_after = {bn for bn, _ in plan.values() if bn}
    for name, (bn, act) in plan.items():
        plan[name] = (bn, act, _input_batch_norm(name, modules, inputs_of, producer_of, produced, consumed, uses,
                                                 folded_after))
    return plan


def _input_batch_norm(name, modules, inputs_of, producer_of, produced, consumed, uses, folded_after):
    """The BatchNorm that produced every input of this 1x1, unpadded, ungrouped conv and whose outputs
    nothing else reads, or None (then ``conv(bn(x))`` folds exactly: no padding sees the BatchNorm's shift)."""
    conv = modules[name]
    if conv.kernel_size != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
        return None
    producers = {producer_of.get(key) for key in inputs_of[name]}
    if len(producers) != 1:
        return None
    (bn,) = producers
    if bn is None or bn in folded_after or not _is_foldable_batch_norm(modules[bn]):
        return None
    return bn if _sole_consumer(produced[bn], consumed, uses) == name else None
