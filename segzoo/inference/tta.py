"""Test-time inference over a model: multi-scale, horizontal flip and sliding-window, as pure functions.

Every view's logits are brought back to the input's size and the views are averaged as *logits* (not
softmax probabilities): the average is linear, so the window, flip and scale averages commute, a single
view is returned exactly as the model gave it, and the argmax is that of the summed scores, as in the
reference evaluation code.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["predict_logits", "sliding_window_logits", "window_starts", "fit_within", "recipe_options"]

Size = Union[int, Sequence[int]]


def _pair(value: Size, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return pair


def _align_corners(model: nn.Module) -> bool:
    return bool(getattr(getattr(model, "config", None), "align_corners", False))


def _resize(tensor: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=align_corners)


def _run(model: nn.Module, images: Tensor) -> Tensor:
    """One forward pass -> logits at the input's size, at least float32 (half-precision outputs are cast up);
    models that return a tuple: its first entry."""
    out = model(images)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.dtype in (torch.float16, torch.bfloat16):
        out = out.float()
    return _resize(out, tuple(images.shape[-2:]), _align_corners(model))


def fit_within(height: int, width: int, bounds: Sequence[int]) -> tuple[int, int]:
    """The size an image is rescaled to, keeping its aspect ratio, so that its long side fits ``bounds[0]`` and its
    short side ``bounds[1]`` (mmseg's test ``Resize(scale=(long, short), keep_ratio=True)``, rounding as it does)."""
    long_bound, short_bound = bounds
    factor = min(long_bound / max(height, width), short_bound / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def recipe_options(config) -> dict:
    """``predict_logits`` options that run a model as its upstream evaluated it (``config.inference``): the test
    resize and, for ``"slide"``, the windows and stride; {} for a config without a recipe."""
    recipe = getattr(config, "inference", None) or {}
    options = {"resize": tuple(recipe["resize"])} if recipe.get("resize") else {}
    if recipe.get("mode") == "slide":
        options.update(window=tuple(recipe["crop"]), stride=tuple(recipe["stride"]))
    return options


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Offsets of the windows along one axis of ``length`` (>= ``window``): every ``stride``, plus one flush
    with the end so that the last pixels are covered."""
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def sliding_window_logits(model: nn.Module, images: Tensor, window: Size, stride: Optional[Size] = None) -> Tensor:
    """Logits of ``images`` ``(N, 3, H, W)`` computed window by window.

    Windows of ``window`` pixels are placed every ``stride`` pixels (default: 2/3 of the window, at
    least 1) plus one flush with the bottom / right edge; overlapping logits are averaged (a sum and a
    count map). An axis shorter than the window is padded at the bottom / right with zeros (the mean
    colour, in normalised input) up to the window, and the padding is cropped from the result. An image
    that fits in one window is run whole, unpadded: the same as plain inference.
    """
    window_h, window_w = _pair(window, "window")
    if stride is None:
        stride = (max(1, window_h * 2 // 3), max(1, window_w * 2 // 3))
    stride_h, stride_w = _pair(stride, "stride")
    n, _, height, width = images.shape
    if height <= window_h and width <= window_w:
        return _run(model, images)
    padded_h, padded_w = max(height, window_h), max(width, window_w)
    if (padded_h, padded_w) != (height, width):
        images = F.pad(images, (0, padded_w - width, 0, padded_h - height))
    total: Optional[Tensor] = None
    count = torch.zeros((padded_h, padded_w), dtype=torch.float32, device=images.device)
    for top in window_starts(padded_h, window_h, stride_h):
        for left in window_starts(padded_w, window_w, stride_w):
            logits = _run(model, images[:, :, top:top + window_h, left:left + window_w])
            if total is None:
                total = logits.new_zeros((n, logits.shape[1], padded_h, padded_w))
            total[:, :, top:top + window_h, left:left + window_w] += logits
            count[top:top + window_h, left:left + window_w] += 1
    return (total / count)[:, :, :height, :width]


def predict_logits(model: nn.Module, images: Tensor, *, scales: Sequence[float] = (1.0,), flip: bool = False,
                   window: Optional[Size] = None, stride: Optional[Size] = None,
                   resize: Optional[Sequence[int]] = None) -> Tensor:
    """Logits ``(N, num_classes, H, W)`` of normalised ``images`` ``(N, 3, H, W)``, at the input's size.

    Args:
        model: A model in eval mode returning logits (at any size; they are resized to the input's).
        images: Normalised RGB images on the model's device.
        scales: The input is resized by each factor (bilinear, the model's ``align_corners``), run, and its
            logits resized back; scale 1.0 runs the input as it is.
        flip: Also run each scale mirrored left-right and mirror its logits back.
        window: Sliding-window size (int or (height, width)) used at every scale on inputs larger than it;
            None runs each scale whole.
        stride: Window stride (default 2/3 of the window).
        resize: (long, short) bounds: the input is first rescaled to fit them, keeping its aspect ratio (bilinear,
            half-pixel centres, as image libraries resize; ``fit_within``), and the scales apply to that size
            (mmseg's test resize; ``recipe_options`` gives a model's).

    All views (scales x flips) are averaged as logits; with one view the model's output is returned as
    it is (float16 / bfloat16 outputs cast to float32). Runs under ``torch.inference_mode()``.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images (N, 3, H, W), got shape {tuple(images.shape)}")
    scales = tuple(float(s) for s in scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be positive numbers, got {scales!r}")
    align_corners = _align_corners(model)
    height, width = images.shape[-2:]
    total: Optional[Tensor] = None
    views = 0
    with torch.inference_mode():
        base = images if resize is None else _resize(images, fit_within(height, width, resize), False)
        base_height, base_width = base.shape[-2:]
        for scale in scales:
            size = (max(1, round(base_height * scale)), max(1, round(base_width * scale)))
            scaled = base if scale == 1.0 else _resize(base, size, align_corners)
            for flipped in ((False, True) if flip else (False,)):
                view = scaled.flip(-1) if flipped else scaled
                if window is None:
                    logits = _run(model, view)
                else:
                    logits = sliding_window_logits(model, view, window, stride)
                if flipped:
                    logits = logits.flip(-1)
                logits = _resize(logits, (height, width), align_corners)
                total = logits if total is None else total + logits
                views += 1
    return total if views == 1 else total / views
