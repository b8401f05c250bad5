"""Class maps as images: palette PNGs and colour overlays (the palettes: ``segzoo.upstreams.palettes``)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["colorize", "overlay", "overlay_labels", "legend"]

_SWATCH, _GAP = 12, 6  # legend: swatch side and spacing, in pixels


def _check_labels(label_map: np.ndarray, palette: np.ndarray, limit: int) -> np.ndarray:
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"expected a (H, W) class map, got shape {label_map.shape}")
    if not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f"expected an integer class map, got dtype {label_map.dtype}")
    if label_map.size and (label_map.min() < 0 or label_map.max() >= min(len(palette), limit)):
        raise ValueError(f"class indices must lie in [0, {min(len(palette), limit)}); got "
                         f"[{label_map.min()}, {label_map.max()}]")
    return label_map


def colorize(label_map: np.ndarray, palette: np.ndarray) -> Image.Image:
    """A ``P``-mode PIL image of a ``(H, W)`` class map whose palette is ``palette`` (its first 256 rows).

    The pixel values are the class indices, so ``np.asarray(colorize(m, p)) == m``. Class indices must be
    below 256 (a PNG palette holds 256 colours).
    """
    palette = np.asarray(palette, dtype=np.uint8)
    label_map = _check_labels(label_map, palette, 256)
    height, width = label_map.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(label_map, dtype=np.uint8).tobytes())
    rows = np.zeros((256, 3), dtype=np.uint8)
    rows[:min(len(palette), 256)] = palette[:256]
    image.putpalette(rows.flatten().tolist())
    return image


def overlay(image_rgb: np.ndarray, label_map: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the class colours over an image: ``(1 - alpha) * image + alpha * palette[label]``, RGB uint8."""
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image_rgb.shape} {image_rgb.dtype}")
    palette = np.asarray(palette, dtype=np.uint8)
    label_map = _check_labels(label_map, palette, len(palette))
    if label_map.shape != image_rgb.shape[:2]:
        raise ValueError(f"class map {label_map.shape} and image {image_rgb.shape[:2]} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    colours = palette[label_map].astype(np.float32)
    blended = (1.0 - alpha) * image_rgb.astype(np.float32) + alpha * colours
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def legend(names: Sequence[str], colours: np.ndarray, width: int) -> np.ndarray:
    """A white strip ``width`` pixels wide of labelled colour swatches (PIL's default font), wrapped onto as many
    rows as the names need: what each colour of an overlay stands for.

    Returns:
        ``(h, width, 3)`` uint8.
    """
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    if len(colours) < len(names):
        raise ValueError(f"legend: {len(names)} names but {len(colours)} colours")
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = max(_SWATCH, *(measure.textbbox((0, 0), name, font=font)[3] for name in names)) + _GAP
    places, x, y = [], _GAP, _GAP
    for name in names:
        item = _SWATCH + 4 + int(measure.textlength(name, font=font))
        if x > _GAP and x + item > width - _GAP:  # wrap; an item wider than the strip gets a row of its own
            x, y = _GAP, y + line
        places.append((x, y))
        x += item + 2 * _GAP
    strip = Image.new("RGB", (width, y + line), "white")
    draw = ImageDraw.Draw(strip)
    for (x, y), name, colour in zip(places, names, colours):
        draw.rectangle((x, y, x + _SWATCH - 1, y + _SWATCH - 1), fill=tuple(int(c) for c in colour), outline="black")
        draw.text((x + _SWATCH + 4, y), name, fill="black", font=font)
    return np.asarray(strip)


def overlay_labels(image_rgb: np.ndarray, masks: np.ndarray, colours: np.ndarray, alpha: float = 0.5,
                   names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Blend label colours over an image where the labels are present (binary and multi-label masks).

    Args:
        image_rgb: ``(H, W, 3)`` uint8.
        masks: ``(L, H, W)`` 0 / 1 (or ``(H, W)`` for one label).
        colours: ``(L, 3)`` one RGB colour per label.
        alpha: Weight of the colour where a label is present; where several are, their mean colour.
        names: The labels' names: a ``legend`` strip of them is added below the overlay (a pixel with several
            labels has their mean colour, so the swatches name the pure colours).

    Returns:
        ``(H, W, 3)`` uint8 (``(H + legend height, W, 3)`` with ``names``); pixels with no label are the image's own.
    """
    image_rgb = np.asarray(image_rgb)
    masks = np.asarray(masks)
    masks = masks[None] if masks.ndim == 2 else masks
    colours = np.asarray(colours, dtype=np.float32).reshape(-1, 3)
    if masks.ndim != 3 or masks.shape[1:] != image_rgb.shape[:2] or len(colours) < masks.shape[0]:
        raise ValueError(f"expected (L, H, W) masks at the image's size {image_rgb.shape[:2]} and L colours, got "
                         f"masks {masks.shape} and {len(colours)} colours")
    present = (masks != 0).astype(np.float32)
    count = present.sum(0)
    mean_colour = np.einsum("lhw,lc->hwc", present, colours[:masks.shape[0]]) / np.maximum(count, 1)[..., None]
    blended = (1.0 - alpha) * image_rgb.astype(np.float32) + alpha * mean_colour
    out = np.where(count[..., None] > 0, blended, image_rgb.astype(np.float32))
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if names is None:
        return out
    if len(names) != masks.shape[0]:
        raise ValueError(f"names has {len(names)} entries for {masks.shape[0]} labels")
    return np.concatenate([out, legend(names, colours, out.shape[1])])
