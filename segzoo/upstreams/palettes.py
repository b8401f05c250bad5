"""Colour palettes of the datasets the upstreams trained on (``segzoo.zoo.palette_for`` picks a model's;
``segzoo.inference.visualize`` turns class maps into images with them).

A palette is a ``(K, 3)`` uint8 array: row ``i`` is the RGB colour of class ``i``. The dataset palettes
have 256 rows, so that they can be a PNG's palette as they are (index 255, the usual "ignore" label, has
a colour too).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["voc_palette", "cityscapes_palette", "ade20k_palette", "generic_palette"]

# The official colours of the 19 Cityscapes evaluation classes (trainIds 0..18), in CITYSCAPES_CLASSES order.
_CITYSCAPES_COLOURS = (
    (128, 64, 128),   # road
    (244, 35, 232),   # sidewalk
    (70, 70, 70),     # building
    (102, 102, 156),  # wall
    (190, 153, 153),  # fence
    (153, 153, 153),  # pole
    (250, 170, 30),   # traffic light
    (220, 220, 0),    # traffic sign
    (107, 142, 35),   # vegetation
    (152, 251, 152),  # terrain
    (70, 130, 180),   # sky
    (220, 20, 60),    # person
    (255, 0, 0),      # rider
    (0, 0, 142),      # car
    (0, 0, 70),       # truck
    (0, 60, 100),     # bus
    (0, 80, 100),     # train
    (0, 0, 230),      # motorcycle
    (119, 11, 32),    # bicycle
)


def _bit_pattern(n: int) -> np.ndarray:
    """The PASCAL VOC colour map: the bits of the class index, three at a time, spread over the high bits of
    R, G and B (1 -> (128, 0, 0), 2 -> (0, 128, 0), ..., 255 -> (224, 224, 192)). Distinct for n <= 2**24."""
    index = np.arange(n, dtype=np.int64)
    colours = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (index >> (3 * shift + channel)) & 1
            colours[:, channel] |= bit << (7 - shift)
    # Indices of 2**24 and more wrap around; there are no such class counts in practice.
    return colours.astype(np.uint8)


@lru_cache(maxsize=None)
def _voc() -> np.ndarray:
    return _bit_pattern(256)


def voc_palette() -> np.ndarray:
    """The standard 256-colour PASCAL VOC palette (255, the boundary / ignore label, is (224, 224, 192))."""
    return _voc().copy()


def cityscapes_palette() -> np.ndarray:
    """The official Cityscapes trainId colours for 0..18; the other rows (255 = ignore included) are black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:len(_CITYSCAPES_COLOURS)] = _CITYSCAPES_COLOURS
    return palette


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (each in [0, 1]) to RGB uint8."""
    i = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(h.shape + (3,))
    for k, (r, g, b) in enumerate(choices):
        sel = i == k
        rgb[sel] = np.stack([r[sel], g[sel], b[sel]], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def ade20k_palette() -> np.ndarray:
    """150 distinct colours for the ADE20K classes (0..149); rows 150..255 (255 = "other") are black.

    NOTE: this is segzoo's own deterministic palette, not the official ADE20K (SceneParsing) colour table,
    which is not reproduced here: hues step by the golden ratio (neighbouring classes get far-apart
    hues) over three saturation / value levels, so the 150 colours are distinct and none is black.
    """
    k = np.arange(150)
    hue = (k * 0.6180339887498949) % 1.0
    saturation = np.array([0.85, 0.55, 0.95])[k % 3]
    value = np.array([0.95, 0.8, 0.6])[(k // 3) % 3]
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:150] = _hsv_to_rgb(hue, saturation, value)
    return palette


def generic_palette(num_classes: int) -> np.ndarray:
    """A palette for any number of classes: the VOC bit-pattern colour map extended to ``num_classes`` rows
    (at least 256, so that it can be a PNG palette). Class 0 is black, all colours are distinct."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return _bit_pattern(max(num_classes, 256))
