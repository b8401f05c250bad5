"""Reading images into the RGB uint8 arrays the models take, whatever the file's mode, and normalising them."""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import ImageReadError

__all__ = ["load_image", "to_tensor", "reading_image_file", "IMAGE_EXTENSIONS"]

# What a folder scan picks up (files named explicitly are read whatever their extension).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
                    ".pnm", ".jfif")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _grey_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Scale a greyscale array of 16-bit, 32-bit integer or float samples to 0..255 by its range, never clipping.

    - ``I;16*`` (16-bit): ``round(v * 255 / 65535)`` (= ``v / 257``), so 65535 -> 255 and 32768 -> 128.
    - ``I`` (32-bit integer; older Pillow reads 16-bit PNGs so): the 16-bit scaling when every value lies
      in 0..65535, otherwise the image's own min..max stretched to 0..255.
    - ``F`` (float): values in [0, 1] times 255; otherwise min..max stretched to 0..255.
    """
    values = values.astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(values)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA uint8 array over a white background (straight, not premultiplied, alpha)."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def _has_transparency(image: Image.Image) -> bool:
    if image.mode in _ALPHA_MODES:
        return True
    return "transparency" in image.info  # P, L and RGB images with a tRNS chunk / transparent index


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _grey_to_uint8(np.asarray(image), mode)
        return np.repeat(grey[..., None], 3, axis=2)
    if _has_transparency(image):
        return _over_white(np.asarray(image.convert("RGBA"), dtype=np.uint8))
    # 1, L, P, CMYK, YCbCr, RGBX, ... : Pillow's own conversions.
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


@contextmanager
def reading_image_file(name: str, what: str, error: type[Exception]) -> Iterator[None]:
    """Turn every way Pillow can fail to read ``name`` into ``error("cannot read <what> <name>: <why>")``.

    Errors of type ``error`` raised inside the block pass through unchanged.
    """
    try:
        yield
    except error:
        raise
    except FileNotFoundError:
        raise error(f"cannot read {what} {name}: no such file") from None
    except IsADirectoryError:
        raise error(f"cannot read {what} {name}: it is a directory") from None
    except Image.UnidentifiedImageError:
        raise error(f"cannot read {what} {name}: not an image file Pillow recognises") from None
    except Exception as err:  # decoders raise OSError, ValueError, SyntaxError, struct.error, ...
        raise error(f"cannot read {what} {name}: {type(err).__name__}: {err}") from err


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` RGB uint8 array, the way it is meant to be seen.

    - EXIF orientation is applied (a portrait photo stored sideways comes out upright; H and W are those of
      the upright image).
    - Greyscale (``1``, ``L``) is repeated over the three channels; palette (``P``) images are expanded to
      their colours; ``CMYK`` and ``YCbCr`` are converted by Pillow.
    - Transparency (``RGBA``, ``LA``, ``PA``, or a ``P`` / ``L`` / ``RGB`` image with a transparent colour) is
      composited over a white background, so fully transparent pixels become white rather than whatever
      colour happens to be stored under them.
    - 16-bit images (``I;16``, ``I``) are scaled by their bit depth, ``round(v * 255 / 65535)``, not clipped;
      32-bit float (``F``) images in [0, 1] are multiplied by 255 (other ranges: stretched min..max).
    - Multi-frame files (GIF, TIFF) give their first frame.

    Raises:
        ImageReadError: The file is missing, not an image, corrupt or truncated, or too large for Pillow's
            decompression-bomb limit; the message names the file.
    """
    name = os.fspath(path)
    with reading_image_file(name, "image", ImageReadError), Image.open(name) as image:
        image.load()  # decode now: truncated or corrupt data fails here, not later
        try:
            oriented = ImageOps.exif_transpose(image)
        except Exception as err:  # a malformed EXIF block should not make the picture unreadable
            warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({err})", stacklevel=2)
            oriented = image
        rgb = _to_rgb(oriented if oriented is not None else image)
    return np.array(rgb, dtype=np.uint8, order="C")  # a writable copy (Pillow's buffers are read-only)


def to_tensor(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """An ``(H, W, 3)`` RGB uint8 array -> a normalised ``(1, 3, H, W)`` float32 tensor:
    ``(rgb / 255 - mean) / std``."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    tensor = torch.from_numpy(np.array(rgb, dtype=np.uint8, order="C")).permute(2, 0, 1).float().div_(255.0)
    mean_t = torch.tensor(tuple(mean), dtype=torch.float32)[:, None, None]
    std_t = torch.tensor(tuple(std), dtype=torch.float32)[:, None, None]
    return ((tensor - mean_t) / std_t)[None]
