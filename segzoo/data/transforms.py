"""The reference augmentation recipe: random scale / flip / pad / crop / blur for training, full or cropped eval.

Transforms take and return ``(image, mask)``: an ``(H, W, C)`` image and an ``(H, W)`` int64 array in, a normalised
``(C, H, W)`` float32 tensor and an ``(H, W)`` int64 tensor out. ``C`` is ``len(mean)``: 3 for RGB, the model's
``in_chans`` otherwise. The image is what ``load_image`` gives: uint8 (scaled by 1/255) or float (already in the
0..1 scale, used as it is). An RGB uint8 image goes through Pillow as it always has; other images are resized band
by band with the same Pillow filter (float bands in Pillow's 32-bit float mode), and float images are blurred with
a Gaussian of the same standard deviation in NumPy (Pillow blurs 8-bit images only). Randomness comes from Python's
:mod:`random`, which :class:`torch.utils.data.DataLoader` seeds differently in every worker.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter

from ..config import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["EVAL_MODES", "EvalTransform", "TrainTransform"]

EVAL_MODES = ("testval", "val")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``crop_size`` as ``(height, width)``."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check(image: np.ndarray, mask: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim == 2:  # one band
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] != channels or not (
            image.dtype == np.uint8 or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"expected an (H, W, {channels}) image ({channels} = len(mean)), uint8 or float in [0, 1], "
                         f"got {image.shape} {image.dtype}")
    if image.dtype != np.uint8 and image.dtype != np.float32:
        image = image.astype(np.float32)
    if mask.ndim not in (2, 3) or mask.shape[:2] != image.shape[:2]:
        raise ValueError(f"mask of shape {mask.shape} does not match image of shape {image.shape} (expected (H, W) "
                         f"labels, or (H, W, L) for L labels of a multi-label dataset)")
    return image, mask


def _is_rgb8(image: np.ndarray) -> bool:
    """An RGB uint8 image: Pillow handles it whole, exactly as before N-band images existed."""
    return image.dtype == np.uint8 and image.shape[2] == 3


def _resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize (Pillow's): an RGB uint8 image whole, any other band by band (uint8 as ``L``, float as
    ``F``)."""
    if _is_rgb8(image):
        return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BILINEAR))
    bands = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., band])).resize((width, height),
                                                                                        Image.BILINEAR))
             for band in range(image.shape[2])]
    return np.stack(bands, axis=-1).astype(image.dtype, copy=False)


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    # Nearest for the mask: interpolating labels would invent classes at the boundaries. int32 "I" mode keeps
    # every label (and an ignore index above 255) through PIL's nearest resize. (H, W, L) masks: label by label.
    if mask.ndim == 3:
        return np.stack([_resize_mask(mask[..., label], height, width) for label in range(mask.shape[2])], axis=-1)
    resized = Image.fromarray(np.ascontiguousarray(mask, dtype=np.int32)).resize((width, height), Image.NEAREST)
    return np.asarray(resized).astype(np.int64)


def _gaussian_blur_float(image: np.ndarray, radius: float) -> np.ndarray:
    """A Gaussian blur of standard deviation ``radius`` (what Pillow's ``GaussianBlur(radius)`` approximates),
    separable, kernel truncated at 3 standard deviations, edges extended; every band alike."""
    if radius <= 0:
        return image
    half = max(1, int(np.ceil(3 * radius)))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / radius) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    out = image.astype(np.float32)
    for axis in (0, 1):
        padded = np.pad(out, [(half, half) if a == axis else (0, 0) for a in range(out.ndim)], mode="edge")
        length = out.shape[axis]
        out = sum(weight * np.take(padded, np.arange(i, i + length), axis=axis) for i, weight in enumerate(kernel))
    return out.astype(np.float32)


def _blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Pillow's Gaussian blur of an 8-bit image (an RGB one whole, any other band by band); a float image's in
    NumPy (``_gaussian_blur_float``)."""
    if _is_rgb8(image):
        return np.asarray(Image.fromarray(np.ascontiguousarray(image)).filter(ImageFilter.GaussianBlur(radius)))
    if image.dtype == np.uint8:
        return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., band]))
                                    .filter(ImageFilter.GaussianBlur(radius))) for band in range(image.shape[2])],
                        axis=-1)
    return _gaussian_blur_float(image, radius)


class _Normalise:
    """Shared tail of both transforms: to float tensors, normalised with ``mean`` / ``std``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], ignore_index: int) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if not self.mean or len(self.mean) != len(self.std):
            raise ValueError(f"mean and std need one value per image channel each, got {len(self.mean)} and "
                             f"{len(self.std)}")
        self.ignore_index = int(ignore_index)

    def _check(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _check(image, mask, len(self.mean))

    def _finish(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        scaled = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
        normed = (scaled - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        tensor = torch.from_numpy(np.ascontiguousarray(normed.transpose(2, 0, 1), dtype=np.float32))
        if mask.ndim == 3:  # multi-label (H, W, L) -> (L, H, W), the layout of the logits
            mask = mask.transpose(2, 0, 1)
        return tensor, torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))


class TrainTransform(_Normalise):
    """Training augmentation: flip, random short-side scale, pad, random crop, blur, normalise.

    Args:
        base_size: The short side is resized to a random integer in
            ``[scale_range[0] * base_size, scale_range[1] * base_size]``.
        crop_size: The output size, an int or ``(height, width)``.
        scale_range: The range of the short side relative to ``base_size``.
        flip: Random horizontal flip with probability 0.5.
        blur_prob: Probability of a Gaussian blur of the image with a radius drawn from U(0, 1).
        mean: Per-channel mean of the 0..1 image, one value per channel (``in_chans`` of them).
        std: Per-channel standard deviation of the 0..1 image.
        ignore_index: The mask value of padded pixels.
    """

    def __init__(self, base_size: int, crop_size: int | Sequence[int], scale_range: Sequence[float] = (0.5, 2.0),
                 flip: bool = True, blur_prob: float = 0.5, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, ignore_index: int = 255) -> None:
        super().__init__(mean, std, ignore_index)
        self.base_size = int(base_size)
        self.crop_size = _pair(crop_size)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip = bool(flip)
        self.blur_prob = float(blur_prob)

    def __repr__(self) -> str:
        return (f"TrainTransform(base_size={self.base_size}, crop_size={self.crop_size}, "
                f"scale_range={self.scale_range}, flip={self.flip}, blur_prob={self.blur_prob})")

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment one sample.

        Args:
            image: ``(H, W, C)``, ``C = len(mean)``: uint8 (RGB for ``C = 3``) or float in [0, 1].
            mask: ``(H, W)`` integer labels.

        Returns:
            ``(image, mask)``: a ``(C, crop_h, crop_w)`` float32 tensor and a ``(crop_h, crop_w)`` int64 tensor.
        """
        image, mask = self._check(image, mask)
        if self.flip and random.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]

        low, high = self.scale_range
        short = max(1, random.randint(int(low * self.base_size), int(high * self.base_size)))
        h, w = image.shape[:2]
        if h > w:
            oh, ow = max(1, round(h * short / w)), short
        else:
            oh, ow = short, max(1, round(w * short / h))
        image, mask = _resize_image(image, oh, ow), _resize_mask(mask, oh, ow)

        crop_h, crop_w = self.crop_size
        pad_h, pad_w = max(crop_h - oh, 0), max(crop_w - ow, 0)
        if pad_h or pad_w:
            # The mask is padded with the ignore index: the reference pads it with 0, teaching "background"
            # on pixels that are not in the photo at all.
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=0)
            mask = np.pad(mask, ((0, pad_h), (0, pad_w)) + ((0, 0),) * (mask.ndim - 2),
                          constant_values=self.ignore_index)
        y = random.randint(0, image.shape[0] - crop_h)
        x = random.randint(0, image.shape[1] - crop_w)
        image, mask = image[y:y + crop_h, x:x + crop_w], mask[y:y + crop_h, x:x + crop_w]

        if random.random() < self.blur_prob:
            radius = random.random()
            image = _blur(image, radius)
        return self._finish(image, mask)


class EvalTransform(_Normalise):
    """Evaluation preprocessing.

    Args:
        mode: ``"testval"``: the full image at its own size, only normalised. ``"val"``: the short side resized
            to ``crop_size``, then a centre crop of ``crop_size``.
        crop_size: The ``"val"`` crop, an int or ``(height, width)``; unused by ``"testval"``.
        mean: Per-channel mean of the 0..1 image, one value per channel (``in_chans`` of them).
        std: Per-channel standard deviation of the 0..1 image.
        ignore_index: The dataset's ignore value (kept for symmetry with :class:`TrainTransform`).

    Raises:
        ValueError: ``mode`` is not one of ``"testval"``, ``"val"``, or ``"val"`` is asked without ``crop_size``.
    """

    def __init__(self, mode: str = "testval", crop_size: int | Sequence[int] | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 ignore_index: int = 255) -> None:
        super().__init__(mean, std, ignore_index)
        if mode not in EVAL_MODES:
            raise ValueError(f"unknown eval mode {mode!r}; valid modes: {', '.join(EVAL_MODES)}")
        if mode == "val" and crop_size is None:
            raise ValueError("EvalTransform(mode='val') needs crop_size")
        self.mode = mode
        self.crop_size = None if crop_size is None else _pair(crop_size)

    def __repr__(self) -> str:
        return f"EvalTransform(mode={self.mode!r}, crop_size={self.crop_size})"

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocess one sample.

        Args:
            image: ``(H, W, C)``, ``C = len(mean)``: uint8 (RGB for ``C = 3``) or float in [0, 1].
            mask: ``(H, W)`` integer labels.

        Returns:
            ``(image, mask)``: a ``(C, H', W')`` float32 tensor and an ``(H', W')`` int64 tensor, where
            ``(H', W')`` is the input size (``"testval"``) or the crop size (``"val"``).
        """
        image, mask = self._check(image, mask)
        if self.mode == "val":
            crop_h, crop_w = self.crop_size
            h, w = image.shape[:2]
            # Smallest scale covering the crop; for a square crop that is "short side = crop_size".
            scale = max(crop_h / h, crop_w / w)
            oh, ow = max(crop_h, round(h * scale)), max(crop_w, round(w * scale))
            image, mask = _resize_image(image, oh, ow), _resize_mask(mask, oh, ow)
            y, x = round((oh - crop_h) / 2), round((ow - crop_w) / 2)
            image = image[y:y + crop_h, x:x + crop_w]
            mask = mask[y:y + crop_h, x:x + crop_w]
        return self._finish(image, mask)
