"""``FusedConv2d``: an inference-only convolution with the BatchNorm after it folded in, its activation run inside,
and, on the CPU, its weight kept pre-packed in oneDNN's blocked layout.

Why: eager PyTorch re-lays a CPU convolution's weight out into oneDNN's blocked format on every call, and each
BatchNorm and ReLU is one more pass over the activations. The packing uses private oneDNN ops (the ones
inductor's CPU backend uses), so it is gated (``packing_problem``): a torch version in ``TESTED_TORCH``, the ops
present, and a tiny convolution through them equal to ``F.conv2d``. Where the gate fails, the layer runs
``F.conv2d`` with the folded weight (one warning per process says why).

Under a CPU autocast (``torch.autocast("cpu", dtype=torch.bfloat16)``) the layer does not pack: it runs
``F.conv2d``, which autocast computes in the autocast dtype, so a fused model keeps the precision the caller asked
for (the oneDNN ops are outside autocast's lists and would silently compute in float32).
"""
from __future__ import annotations

import ctypes
import functools
import re
import sys
import time
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...layers.tracing import is_exporting
from .batch_norm import batch_norm_scale_shift, fold_bias, scale_weight

__all__ = ["FusedConv2d", "WIDE_INPUT_CHUNK", "TESTED_TORCH", "packing_available", "packing_problem",
           "cpu_autocast_enabled"]


# The torch versions the packing is tested with: [first, last) as (major, minor). The ops are private: their
# schema may change in any release, so outside this range the layers run ``F.conv2d`` (BatchNorm still folded).
# The lower bound is segzoo's own (torch>=2.1, whose inductor already calls these ops with these arguments); the
# upper one is the next major version. Inside the range a functional check guards against a schema change.
TESTED_TORCH = ((2, 1), (3, 0))


def _torch_version(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", str(version))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def packing_problem() -> Optional[str]:
    """Why the oneDNN packing cannot be used with this torch, or None when it can: a version outside
    ``TESTED_TORCH``, a build without oneDNN, the private ops missing, or a tiny packed convolution (whole, and
    accumulated in place as the sliced layout runs it) that differs from ``F.conv2d`` or fails."""
    first, last = TESTED_TORCH
    version = _torch_version(torch.__version__)
    if not first <= version < last:
        return (f"torch {torch.__version__} is outside the versions the packing is tested with "
                f"(>= {first[0]}.{first[1]}, < {last[0]}.{last[1]})")
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN (mkldnn)"
    try:  # private oneDNN ops (the ones inductor's CPU backend uses); absent in builds without mkldnn
        torch.ops.mkldnn._reorder_convolution_weight  # noqa: B018 (looking the op up is the check)
        torch.ops.mkldnn._convolution_pointwise  # noqa: B018
        torch.ops.mkldnn._convolution_pointwise_.binary  # noqa: B018
    except (AttributeError, RuntimeError):
        return "this torch build lacks the private oneDNN ops torch.ops.mkldnn._convolution_pointwise / " \
               "_reorder_convolution_weight"
    try:
        error = _packed_convolution_error()
    except Exception as err:  # a changed schema, a oneDNN failure: run F.conv2d instead
        return f"a packed test convolution failed ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    if not error <= 1e-4:
        return f"a packed test convolution differs from F.conv2d by {error:.3g}"
    return None


def _packed_convolution_error() -> float:
    """Largest difference between ``F.conv2d`` and the packed ops, as ``FusedConv2d`` calls them, on a tiny case."""
    generator = torch.Generator().manual_seed(0)
    x, other = (torch.randn(1, 4, 7, 6, generator=generator) for _ in range(2))
    weight, bias = torch.randn(3, 4, 3, 3, generator=generator), torch.randn(3, generator=generator)
    conv_args = ([1, 1], [1, 1], [1, 1], 1)  # padding, stride, dilation, groups
    mkldnn = torch.ops.mkldnn
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        packed = mkldnn._reorder_convolution_weight(weight, *conv_args, list(x.shape))
        whole = mkldnn._convolution_pointwise(x, packed, bias, *conv_args, "relu", [], "")
        expected = F.relu(F.conv2d(x, weight, bias, 1, 1))
        summed = mkldnn._convolution_pointwise_.binary(whole.clone(), other, packed, None, *conv_args, "add", None,
                                                       None, [], "")
        expected_sum = expected + F.conv2d(other, weight, None, 1, 1)
    return max((whole - expected).abs().max().item(), (summed - expected_sum).abs().max().item())


@functools.cache
def packing_available() -> bool:
    """Whether ``FusedConv2d`` packs weights for oneDNN here (checked once; ``packing_problem`` says why not, and
    a warning says it once per process)."""
    problem = packing_problem()
    if problem is not None:
        warnings.warn(f"optimize_for_inference: {problem}; convolutions run as F.conv2d with the BatchNorm folded, "
                      f"without oneDNN weight pre-packing (slower on the CPU, same results)", RuntimeWarning,
                      stacklevel=2)
    return problem is None


def cpu_autocast_enabled() -> bool:
    """Whether a CPU autocast region is active (``torch.is_autocast_enabled("cpu")``; older torch: its CPU
    function)."""
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled()


# A convolution with a kernel larger than 1x1 and at least twice this many input channels is also tried as a sum
# of convolutions over chunks of this many channels. oneDNN's blocking for the whole reduction is not always its
# best: a 4096 -> 512 3x3 convolution at 60x60 (PSPNet's bottleneck at 480x480) ran at 173 GFLOP/s whole and
# 190 in 1024-channel chunks on this project's 2-core AVX2 machine, but 3% slower chunked at 80x80. So the first
# call for each input shape times one run of each layout and keeps the faster.
WIDE_INPUT_CHUNK = 1024


class FusedConv2d(nn.Module):
    """An inference-only ``Conv2d`` with the following BatchNorm folded in and an optional ReLU / LeakyReLU
    (and, for a 1x1 convolution without padding, also a BatchNorm that feeds it: JPU's depthwise -> BN -> 1x1).

    On the CPU in float32 (the packing gate passed, no autograd on the input, no CPU autocast active) the weight
    is packed for the input shape and the activation runs inside the convolution; elsewhere it is ``F.conv2d``
    with the folded weight (under autocast: in the autocast dtype; in a bfloat16 model: in bfloat16). One copy
    of the weight is kept at a time, so the model's memory stays what it was:
    - until the first call it is the original convolution's own tensor (the BatchNorm is kept as a per-channel
      scale), so building fused layers allocates nothing and a failed check can put the originals back;
    - the first call folds the scale in, and on the CPU the packed weight replaces the plain one (while
      packing, two copies exist for a moment); a new input shape unpacks and repacks it (eager PyTorch re-lays
      the weight out on every call; this does it twice, on a change of shape only), and so does ``.to()``.
    A wide convolution (kernel above 1x1, at least ``2 * input_chunk`` input channels) may be packed as
    ``input_chunk``-channel slices whose convolutions accumulate into one output: the first call for an input
    shape times both layouts once and keeps the faster (``input_chunks`` says which: 1 is whole).
    """

    inference_only = True  # save_pretrained refuses models that hold one (their BatchNorms are folded away)

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
            bias64 = fold_bias(bias64, out_scale, shift, torch.float64)
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
        folded = scale_weight(self.weight, self.weight_scale)
        if keep:
            self.weight, self.weight_scale = folded, None
        return folded

    def _can_pack(self, x: Tensor) -> bool:
        # Not under a CPU autocast: autocast computes F.conv2d in its dtype, the packed ops would stay float32.
        return (x.device.type == "cpu" and x.dtype == torch.float32
                and (self.weight is None or self.weight.dtype == torch.float32)
                and not x.requires_grad and not self.checking and not is_exporting() and not cpu_autocast_enabled()
                and torch.backends.mkldnn.enabled and packing_available())

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
    malloc_trim = _find_malloc_trim()
    if malloc_trim is not None:
        malloc_trim(0)


@functools.cache
def _find_malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to hand back
        return None

