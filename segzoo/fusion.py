"""``optimize_for_inference``: fold each BatchNorm (and ReLU) into the convolution before it and, on the CPU,
keep every convolution's weight pre-packed in oneDNN's blocked layout.

Why: eager PyTorch re-lays a CPU convolution's weight out into oneDNN's blocked format on every call, and each
BatchNorm and ReLU is one more pass over the activations. In the ResNet-101 models at 480x480 that is about
8% of the time, and up to 40% for the 15x15 layers of the output-stride-32 backbones under JPU (measured by
``segzoo benchmark --optimize``). The result serves inference only: it cannot be trained or saved.

Which convolution feeds which BatchNorm is not read from the code but observed: one forward on a small example
records, at the level of tensor operations, who produces and who consumes each tensor. A pair is fused only if
the convolution's output goes to that BatchNorm and to nothing else (likewise BatchNorm -> activation, and a
BatchNorm whose only reader is a 1x1 convolution), so the rewrite cannot change what any other consumer sees;
the example's outputs are then compared before and after.
"""
from __future__ import annotations

import copy
import ctypes
import sys
import time
from collections import Counter, defaultdict
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .layers.tracing import is_exporting

__all__ = ["optimize_for_inference", "FusedConv2d", "fold_batch_norm", "is_optimized_for_inference"]


def _packing_ops_available() -> bool:
    try:  # private oneDNN ops (the ones inductor's CPU backend uses); absent in builds without mkldnn
        torch.ops.mkldnn._reorder_convolution_weight
        torch.ops.mkldnn._convolution_pointwise
    except (AttributeError, RuntimeError):
        return False
    return torch.backends.mkldnn.is_available()


_PACKING_AVAILABLE = _packing_ops_available()
# A convolution with a kernel larger than 1x1 and at least twice this many input channels is also tried as a sum
# of convolutions over chunks of this many channels. oneDNN's blocking for the whole reduction is not always its
# best: a 4096 -> 512 3x3 convolution at 60x60 (PSPNet's bottleneck at 480x480) ran at 173 GFLOP/s whole and
# 190 in 1024-channel chunks on this project's 2-core AVX2 machine, but 3% slower chunked at 80x80. So the first
# call for each input shape times one run of each layout and keeps the faster.
WIDE_INPUT_CHUNK = 1024
_BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)


def batch_norm_scale_shift(bn: nn.Module) -> tuple[Tensor, Tensor]:
    """Per-channel ``(scale, shift)`` with ``bn(y) == y * scale + shift`` in eval mode (computed in float64)."""
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def _scale_weight(weight: Tensor, scale: Tensor) -> Tensor:
    """``weight * scale`` (``scale`` broadcasts: ``(out, 1, 1, 1)`` or ``(out, in, 1, 1)``) in ``weight``'s dtype
    and memory format. The product is taken in that dtype (one rounding, and no float64 copy of a weight
    that may be 75 MB)."""
    channels_last = weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    folded = weight.detach() * scale.to(weight.dtype)
    return folded.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _fold_bias(bias: Optional[Tensor], scale: Tensor, shift: Tensor, dtype: torch.dtype) -> Tensor:
    return ((bias.detach().double() * scale if bias is not None else 0) + shift).to(dtype)


def fold_batch_norm(weight: Tensor, bias: Optional[Tensor], bn: nn.Module) -> tuple[Tensor, Tensor]:
    """The weight and bias of ``conv`` such that ``conv'(x) == bn(conv(x))`` in eval mode.

    Args:
        weight: The convolution's weight ``(out, in / groups, kh, kw)``.
        bias: Its bias, or None.
        bn: A BatchNorm with running statistics.

    Returns:
        (weight, bias) in ``weight``'s dtype and memory format.
    """
    scale, shift = batch_norm_scale_shift(bn)
    return _scale_weight(weight, scale.view(-1, 1, 1, 1)), _fold_bias(bias, scale, shift, weight.dtype)


class FusedConv2d(nn.Module):
    """An inference-only ``Conv2d`` with the following BatchNorm folded in and an optional ReLU / LeakyReLU
    (and, for a 1x1 convolution without padding, also a BatchNorm that feeds it: JPU's depthwise -> BN -> 1x1).

    On the CPU in float32 (oneDNN available, no autograd on the input) the weight is packed for the input
    shape and the activation runs inside the convolution; elsewhere it is ``F.conv2d`` with the folded
    weight. One copy of the weight is kept at a time, so the model's memory stays what it was:
    - until the first call it is the original convolution's own tensor (the BatchNorm is kept as a per-channel
      scale), so building fused layers allocates nothing and a failed check can put the originals back;
    - the first call folds the scale in, and on the CPU the packed weight replaces the plain one (while
      packing, two copies exist for a moment); a new input shape unpacks and repacks it (eager PyTorch re-lays
      the weight out on every call; this does it twice, on a change of shape only), and so does ``.to()``.
    A wide convolution (kernel above 1x1, at least ``2 * input_chunk`` input channels) may be packed as
    ``input_chunk``-channel slices whose convolutions accumulate into one output: the first call for an input
    shape times both layouts once and keeps the faster (``input_chunks`` says which: 1 is whole).
    """

    def __init__(self, conv: nn.Conv2d, bn: Optional[nn.Module] = None, activation: Optional[nn.Module] = None,
                 input_bn: Optional[nn.Module] = None):
        super().__init__()
        weight, bias = conv.weight.detach(), None if conv.bias is None else conv.bias.detach()
        scale, bias64 = None, None if bias is None else bias.double()
        if input_bn is not None:  # conv(x * s + t) = conv'(x) with W' = W * s (per input channel), b' = b + W t
            if conv.kernel_size != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
                raise ValueError("a BatchNorm before a convolution folds only into a 1x1 one without padding "
                                 "or groups (padding would see the BatchNorm's shift)")
            in_scale, in_shift = batch_norm_scale_shift(input_bn)
            scale = in_scale.view(1, -1, 1, 1)
            carried = weight.double().flatten(1) @ in_shift
            bias64 = carried if bias64 is None else bias64 + carried
        if bn is not None:
            out_scale, shift = batch_norm_scale_shift(bn)
            scale = out_scale.view(-1, 1, 1, 1) * (1 if scale is None else scale)
            bias64 = _fold_bias(bias64, out_scale, shift, torch.float64)
        if bias64 is not None and (bn is not None or input_bn is not None):
            bias = bias64.to(weight.dtype)
        # Not persistent: a fused model is never saved (save_pretrained refuses it).
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("weight_scale", scale, persistent=False)  # float64, folded in on the first call
        self.register_buffer("bias", bias, persistent=False)
        self.weight_shape = tuple(weight.shape)
        self.stride, self.padding, self.dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
        self.groups = conv.groups
        self.folded_batch_norm = bn is not None
        self.folded_input_batch_norm = input_bn is not None
        self.slope: Optional[float] = None  # None: no activation; 0.0: ReLU; else LeakyReLU's negative slope
        if activation is not None:
            self.slope = 0.0 if isinstance(activation, nn.ReLU) else float(activation.negative_slope)
        # the activation as oneDNN's post-op: (name, scalars)
        self._post_op = {None: ("none", []), 0.0: ("relu", [])}.get(self.slope, ("leaky_relu", [self.slope]))
        self.checking = False  # set while optimize_for_inference compares outputs: compute, keep nothing
        self.input_chunk = WIDE_INPUT_CHUNK
        self.input_chunks = 1  # how many input-channel slices the packed weight is in (the timed choice)
        self._packed: Optional[list[Tensor]] = None  # the weight packed for the shape _packed_for, in slices
        self._packed_for: Optional[torch.Size] = None
        self.eval()

    def extra_repr(self) -> str:
        out, in_per_group, kh, kw = self.weight_shape
        name, scalars = self._post_op
        activation = f"{name}({scalars[0]})" if scalars else name
        return (f"{in_per_group * self.groups}, {out}, kernel_size=({kh}, {kw}), stride={tuple(self.stride)}, "
                f"padding={tuple(self.padding)}, dilation={tuple(self.dilation)}, groups={self.groups}, "
                f"folded_batch_norm={self.folded_batch_norm}, activation={activation}"
                + (", folded_input_batch_norm=True" if self.folded_input_batch_norm else ""))

    def _apply(self, fn, *args, **kwargs):
        self._dense_weight()  # fold and unpack first: then the plain weight is moved or cast, never the scale
        return super()._apply(fn, *args, **kwargs)

    def _dense_weight(self, keep: bool = True) -> Tensor:
        """The plain folded weight; with ``keep`` it replaces the packed or unfolded one."""
        if self.weight is None:
            packs = [pack.to_dense() for pack in self._packed]
            self.weight = packs[0] if len(packs) == 1 else torch.cat(packs, 1)
            self._packed, self._packed_for, self.input_chunks = None, None, 1
        if self.weight_scale is None:
            return self.weight
        folded = _scale_weight(self.weight, self.weight_scale)
        if keep:
            self.weight, self.weight_scale = folded, None
        return folded

    def _can_pack(self, x: Tensor) -> bool:
        return (_PACKING_AVAILABLE and torch.backends.mkldnn.enabled and x.device.type == "cpu"
                and x.dtype == torch.float32 and (self.weight is None or self.weight.dtype == torch.float32)
                and not x.requires_grad and not self.checking and not is_exporting())

    # torch.compile cannot trace oneDNN-packed weights: it runs this layer eagerly (a graph break per layer).
    @torch.compiler.disable
    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            raise RuntimeError("this model was made by segzoo.optimize_for_inference (BatchNorm folded into the "
                               "convolutions) and serves inference only; train the original model instead")
        if self._can_pack(x):
            if self._packed_for != x.shape:  # oneDNN picks the weight layout by input shape
                return self._repack(x)
            return self._run_packed(x, self._packed)
        weight = self._dense_weight(keep=not self.checking)
        out = F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.slope is None:
            return out
        return F.relu(out, inplace=True) if self.slope == 0.0 else F.leaky_relu(out, self.slope, inplace=True)

    def _reorder(self, weight: Tensor, input_shape: torch.Size) -> Tensor:
        return torch.ops.mkldnn._reorder_convolution_weight(
            weight, self.padding, self.stride, self.dilation, self.groups, list(input_shape))

    def _input_slices(self, channels: int) -> list[slice]:
        step = self.input_chunk
        return [slice(start, min(start + step, channels)) for start in range(0, channels, step)]

    def _is_wide(self) -> bool:
        _, in_channels, kh, kw = self.weight_shape
        return self.groups == 1 and kh * kw > 1 and in_channels >= 2 * self.input_chunk

    def _pack_whole(self, weight: Tensor, input_shape: torch.Size) -> list[Tensor]:
        return [self._reorder(weight, input_shape)]

    def _pack_sliced(self, weight: Tensor, input_shape: torch.Size) -> list[Tensor]:
        return [self._reorder(weight[:, part].contiguous(), (input_shape[0], part.stop - part.start, *input_shape[2:]))
                for part in self._input_slices(input_shape[1])]

    def _repack(self, x: Tensor) -> Tensor:
        """Pack the weight for ``x``'s shape, for a wide convolution in the faster of the two layouts (one timed
        call of each: the output is needed anyway), and return the convolution of ``x``."""
        dense = self._dense_weight()
        self.weight = None
        packs = self._pack_whole(dense, x.shape)
        if self._is_wide():
            # At most two copies of the weight at a time: the plain one and one packing.
            out, elapsed = _timed(self._run_packed, x, packs)
            packs = None
            sliced = self._pack_sliced(dense, x.shape)
            sliced_out, sliced_elapsed = _timed(self._run_packed, x, sliced)
            if sliced_elapsed < elapsed:
                packs, out = sliced, sliced_out
            else:
                sliced = sliced_out = None
                packs = self._pack_whole(dense, x.shape)
        else:
            out = self._run_packed(x, packs)
        dense = None
        self._packed, self._packed_for, self.input_chunks = packs, x.shape, len(packs)
        _return_freed_memory()
        return out

    def _run_packed(self, x: Tensor, packs: list[Tensor]) -> Tensor:
        mkldnn = torch.ops.mkldnn
        conv_args = (self.padding, self.stride, self.dilation, self.groups)
        if len(packs) == 1:
            return mkldnn._convolution_pointwise(x, packs[0], self.bias, *conv_args, *self._post_op, "")
        slices = self._input_slices(x.shape[1])
        out = mkldnn._convolution_pointwise(x[:, slices[0]], packs[0], self.bias, *conv_args, "none", [], "")
        last = len(packs) - 1
        for i in range(1, len(packs)):
            # accumulate in place; oneDNN can apply a ReLU after the sum, not a LeakyReLU
            relu = "relu" if i == last and self.slope == 0.0 else None
            out = mkldnn._convolution_pointwise_.binary(out, x[:, slices[i]], packs[i], None, *conv_args, "add",
                                                        None, relu, [], "")
        return out if self.slope in (None, 0.0) else F.leaky_relu_(out, self.slope)


def _timed(fn, *args) -> tuple[Tensor, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def _return_freed_memory() -> None:
    """Hand freed heap memory back to the OS. glibc keeps freed chunks of a few MB (the plain weights a
    repack drops: about 300 MB for a ResNet-101 model, measured), and the mmap-ed activations of large
    inputs cannot reuse them, so without this the peak memory of inference would grow by that much."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to hand back
        return None


_malloc_trim = _find_malloc_trim()


def is_optimized_for_inference(model: nn.Module) -> bool:
    """True if ``model`` contains layers made by ``optimize_for_inference``."""
    return any(isinstance(module, FusedConv2d) for module in model.modules())


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


def _record_dataflow(model: nn.Module, example: Tensor):
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
        if type(module) is nn.Conv2d or _is_foldable_batch_norm(module) or type(module) in _ACTIVATIONS:
            hooks.append(module.register_forward_pre_hook(on_input(name)))
    try:
        with torch.no_grad(), counter:  # not inference_mode: its tensors have no version counter
            output = model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return output, produced, consumed, counter.uses


def _is_foldable_batch_norm(module: nn.Module) -> bool:
    return type(module) in _BATCH_NORMS and module.track_running_stats and module.running_mean is not None


def _sole_consumer(keys: list, consumed: dict, uses: Counter) -> Optional[str]:
    """The one module that reads every one of ``keys`` and is the only reader of each, else None."""
    readers = {tuple(consumed.get(key, ())) for key in keys}
    if len(readers) != 1 or not all(uses[key] == 1 for key in keys):
        return None
    (reader,) = readers
    return reader[0] if len(reader) == 1 else None


def _plan(model: nn.Module, produced, consumed, uses) -> dict[str, tuple[Optional[str], ...]]:
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
        if act is None or type(modules[act]) not in _ACTIVATIONS or set(inputs_of[act]) != set(last):
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


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _flat_outputs(output) -> list[Tensor]:
    return [value for value in tree_leaves(output) if isinstance(value, Tensor)]


def optimize_for_inference(model: nn.Module, example_size: tuple[int, int] = (64, 64), inplace: bool = False,
                           verify: bool = True) -> nn.Module:
    """An inference-only version of ``model``: each ``Conv2d`` becomes a ``FusedConv2d`` with the BatchNorm
    (and ReLU / LeakyReLU) that follows it folded in, its weight pre-packed for oneDNN on the CPU.

    Works on any module whose forward takes one ``(N, 3, H, W)`` image tensor (segzoo models, torchvision
    or timm models). Move the model to its device and dtype first. The result is in eval mode, gives the
    same outputs up to float rounding, cannot be trained (its forward raises in training mode) and cannot
    be saved with ``save_pretrained`` (save the original). Convolutions whose output goes anywhere but one
    BatchNorm keep their own output (they are packed, not folded). Memory stays what it was: the folding
    and packing happen layer by layer on the first call, each replacing the weight it was made from.

    Args:
        model: The model; its eval mode is what gets folded (BatchNorm running statistics).
        example_size: (H, W) of the random example on which the data flow is recorded and checked.
        inplace: Rewrite ``model`` itself instead of a deep copy (no second copy of the weights).
        verify: Compare the example's outputs before and after; if they differ, put the original layers
            back and raise ``RuntimeError``.

    Returns:
        The optimized model (``model`` itself with ``inplace=True``).
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    parameter = next(model.parameters(), None)
    if parameter is None:
        return model
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(1, 3, *example_size, generator=generator).to(parameter.device, parameter.dtype)
    before, produced, consumed, uses = _record_dataflow(model, example)
    before = [value.clone() for value in _flat_outputs(before)]
    modules = dict(model.named_modules())
    replacements = []
    for conv, absorbed in _plan(model, produced, consumed, uses).items():  # (BN after, activation, BN before)
        replacements.append((conv, FusedConv2d(modules[conv], *(modules[n] if n else None for n in absorbed))))
        replacements += [(n, nn.Identity()) for n in absorbed if n]
    for name, new in replacements:
        _replace(model, name, new)
    fused = [new for _, new in replacements if isinstance(new, FusedConv2d)]
    for layer in fused:  # the check folds on the fly and keeps nothing: no second copy of the weights
        layer.checking = True
    try:
        problem = _compare_outputs(model, example, before) if verify else None
    finally:
        for layer in fused:
            layer.checking = False
    if problem:
        for name, _ in replacements:  # put every original module back: the model is left as it was
            _replace(model, name, modules[name])
        raise RuntimeError(f"optimize_for_inference would change {type(model).__name__}'s outputs ({problem}); "
                           f"the model is left unchanged: use it as it is")
    return model


def _compare_outputs(model: nn.Module, example: Tensor, before: list[Tensor]) -> Optional[str]:
    """What differs between ``model(example)`` and ``before``, or None."""
    try:
        with torch.no_grad():
            after = _flat_outputs(model(example))
    except Exception as err:  # e.g. the model reads a folded BatchNorm's attributes itself
        return f"its forward fails: {type(err).__name__}: {err}"
    if [t.shape for t in after] != [t.shape for t in before]:
        return "the output shapes differ"
    tolerance = 1e-3 if example.dtype in (torch.float32, torch.float64) else 5e-2
    for old, new in zip(before, after):
        scale = old.abs().max().item() or 1.0
        error = (old - new).abs().max().item()
        if not error <= tolerance * scale:  # also catches NaN
            return f"largest difference {error:.3g} on values up to {scale:.3g}"
    return None
