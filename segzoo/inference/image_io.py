"""Reading images into the arrays the models take (RGB uint8 for the usual 3-channel model, greyscale or N bands
for others), whatever the file's mode, and normalising them."""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import ImageReadError

__all__ = ["load_image", "to_tensor", "display_rgb", "image_shape", "reading_image_file", "IMAGE_EXTENSIONS",
           "ARRAY_EXTENSIONS"]

# What a folder scan picks up (files named explicitly are read whatever their extension).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
                    ".pnm", ".jfif")
# NumPy arrays (H, W) or (H, W, N): the way to give N-band data Pillow cannot read (16-bit RGB, > 4 bands).
ARRAY_EXTENSIONS = (".npy",)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_GREY_MODES = ("1", "L", "I", "F")  # and I;16, I;16B, ... (mode.startswith("I;16"))
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, what Pillow's convert("L") uses
_EXIF_ORIENTATION, _TRANSPOSING_ORIENTATIONS = 0x0112, (5, 6, 7, 8)


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


def _is_grey(mode: str) -> bool:
    return mode in _GREY_MODES or mode.startswith("I;16")


def _grey_to_float(values: np.ndarray, mode: str) -> np.ndarray:
    """One band of 16-bit, 32-bit integer or float samples as float32 in [0, 1] (``load_image`` for in_chans != 3):
    ``I;16*`` divided by 65535; ``I`` likewise when every value lies in 0..65535, else stretched min..max to 0..1;
    ``F`` as it is (non-finite values become 0)."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if mode == "F":
        return values.astype(np.float32)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16") or (low >= 0 and high <= 65535):
        return (values / 65535.0).astype(np.float32)
    return ((values - low) / (high - low) if high > low else np.zeros_like(values)).astype(np.float32)


def _band_error(name: str, bands: int, what: str, in_chans: int, hint: str = "") -> ImageReadError:
    return ImageReadError(f"cannot read image {name} for a model of in_chans={in_chans}: it has {bands} band(s) "
                          f"({what}){hint}")


def _to_grey(image: Image.Image) -> np.ndarray:
    """One band, ``(H, W, 1)``: uint8 for 1 / L, float32 in [0, 1] for 16-bit, 32-bit and float images; colour
    (after compositing transparency over white, as for RGB) to luminance by Pillow's ``L`` (ITU-R 601-2)."""
    mode = image.mode
    if _is_grey(mode) and "transparency" not in image.info:
        if mode in ("1", "L"):
            return np.asarray(image.convert("L"), dtype=np.uint8)[..., None]
        return _grey_to_float(np.asarray(image), mode)[..., None]
    return np.asarray(Image.fromarray(_to_rgb(image)).convert("L"), dtype=np.uint8)[..., None]


def _to_bands(image: Image.Image, in_chans: int, name: str) -> np.ndarray:
    """``in_chans`` (not 1 or 3) bands of an 8-bit image that has exactly that many, as stored (an RGBA or CMYK
    file gives its four bands; alpha is a band, not transparency): ``(H, W, in_chans)`` uint8."""
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
    bands = len(image.getbands())
    if bands != in_chans:
        raise _band_error(name, bands, f"mode {image.mode}", in_chans)
    array = np.asarray(image, dtype=np.uint8)
    return array.reshape(*array.shape[:2], bands)


def _tiff_pages(image: Image.Image, in_chans: int) -> list[Image.Image] | None:
    """The pages of a multi-page TIFF that holds one band per page (all of one size and mode, exactly
    ``in_chans`` >= 2 of them), else None."""
    if in_chans < 2 or image.format != "TIFF" or getattr(image, "n_frames", 1) != in_chans:
        return None
    pages = []
    for index in range(in_chans):
        image.seek(index)
        image.load()
        if len(image.getbands()) != 1 or (pages and (image.mode, image.size) != (pages[0].mode, pages[0].size)):
            image.seek(0)
            return None
        pages.append(image.copy())
    image.seek(0)
    return pages


def _tiff_loss(image: Image.Image) -> str | None:
    """What Pillow drops of a multi-band TIFF it reads (it reads more than 4 bands as RGB(A), dropping the rest, and
    16-bit RGB(A) as 8-bit), said in a few words; None when it reads every band whole."""
    tags = getattr(image, "tag_v2", None)
    if image.format != "TIFF" or tags is None:
        return None
    samples = int(tags.get(277, 1))  # SamplesPerPixel
    bits = tags.get(258, (8,))  # BitsPerSample
    bits = tuple(bits) if isinstance(bits, (tuple, list)) else (bits,)
    bands = len(image.getbands())
    if samples > 1 and (samples != bands or max(bits) > 8):
        return (f"it has {samples} band(s) of {max(bits)} bits, which Pillow reads as {bands} 8-bit band(s) "
                f"(mode {image.mode}); save the bands as .npy, (H, W, bands), or as a multi-page TIFF of one band "
                f"per page")
    return None


def _stack_pages(pages: list[Image.Image]) -> np.ndarray:
    if pages[0].mode in ("1", "L"):
        return np.stack([np.asarray(page.convert("L"), dtype=np.uint8) for page in pages], axis=-1)
    return np.stack([_grey_to_float(np.asarray(page), page.mode) for page in pages], axis=-1)


def _array_to_image(array: np.ndarray, name: str, in_chans: int) -> np.ndarray:
    """An ``.npy`` array as ``load_image`` returns images: ``(H, W, in_chans)``, uint8 kept as it is (scaled by
    1/255 later), uint16 divided by 65535, float as it is (float32, non-finite values 0)."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ImageReadError(f"cannot read image {name}: a .npy image must be (H, W) or (H, W, bands), got shape "
                             f"{array.shape}")
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = (array.astype(np.float32) / 65535.0).astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    else:
        raise ImageReadError(f"cannot read image {name}: a .npy image must be uint8 (scaled by 1/255), uint16 "
                             f"(1/65535) or float (used as it is), got {array.dtype}")
    bands = array.shape[2]
    if bands == in_chans:
        return array
    if bands == 1 and in_chans == 3:
        return np.repeat(array, 3, axis=2)
    if bands == 3 and in_chans == 1:
        if array.dtype == np.uint8:  # Pillow's own conversion, as for a PNG
            return np.asarray(Image.fromarray(np.ascontiguousarray(array)).convert("L"), dtype=np.uint8)[..., None]
        return (array @ _LUMA.astype(np.float32))[..., None].astype(np.float32)
    hint = ""
    if array.shape[0] == in_chans and array.shape[0] < min(array.shape[1:]):
        hint = "; it looks channels-first (bands, H, W): save np.moveaxis(array, 0, -1), (H, W, bands)"
    raise _band_error(name, bands, f"shape {array.shape}", in_chans, hint)


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


def load_image(path: str | os.PathLike, in_chans: int = 3) -> np.ndarray:
    """Read an image file as an ``(H, W, in_chans)`` array, the way it is meant to be seen.

    With ``in_chans=3`` (RGB, the default) the result is uint8 RGB:

    - EXIF orientation is applied (a portrait photo stored sideways comes out upright; H and W are those of
      the upright image).
    - Greyscale (``1``, ``L``) is repeated over the three channels; palette (``P``) images are expanded to
      their colours; ``CMYK`` and ``YCbCr`` are converted by Pillow.
    - Transparency (``RGBA``, ``LA``, ``PA``, or a ``P`` / ``L`` / ``RGB`` image with a transparent colour) is
      composited over a white background, so fully transparent pixels become white rather than whatever
      colour happens to be stored under them.
    - 16-bit images (``I;16``, ``I``) are scaled by their bit depth, ``round(v * 255 / 65535)``, not clipped;
      32-bit float (``F``) images in [0, 1] are multiplied by 255 (other ranges: stretched min..max).
    - Multi-frame files (GIF, TIFF) give their first frame, except a TIFF of three single-band pages (below).

    With ``in_chans=1`` (greyscale): ``1`` / ``L`` as uint8; ``I;16`` divided by 65535 and ``I`` likewise
    (other ranges stretched min..max), ``F`` as it is, as float32; colour images (after the compositing above)
    to luminance by Pillow's ``L`` conversion (ITU-R 601-2: ``0.299 R + 0.587 G + 0.114 B``), uint8.

    With another ``in_chans`` N: an 8-bit image of exactly N bands, as stored (an ``RGBA`` or ``CMYK`` file
    for N = 4: alpha is a band, nothing is composited), uint8.

    For any N >= 2 a multi-page TIFF of exactly N single-band pages of one size and mode is read as N bands,
    a page each (uint8 for 8-bit pages, float32 as for ``in_chans=1`` otherwise).

    ``.npy`` files (``np.save`` of an ``(H, W)`` or ``(H, W, N)`` array: the way to give data Pillow cannot
    read, 16-bit RGB or more than 4 bands): uint8 kept (scaled by 1/255 in ``to_tensor``), uint16 divided by
    65535, float used as it is (float32; NaN / inf become 0); no other dtype. One band for a 3-band model is
    repeated, three bands for a 1-band model become their luminance.

    Pillow reads a TIFF of more than 4 bands as RGB(A), dropping the rest, and 16-bit RGB(A) as 8-bit: for
    ``in_chans`` other than 3 such a file is an ``ImageReadError`` that says so (save it as ``.npy``).

    Any other band count than the model's is an ``ImageReadError`` naming the file, its bands and ``in_chans``.
    The result is uint8 or float32 (already in the model's 0..1 scale); ``to_tensor`` takes either.

    Raises:
        ImageReadError: The file is missing, not an image, corrupt or truncated, too large for Pillow's
            decompression-bomb limit, or has bands the model cannot take; the message names the file.
    """
    name = os.fspath(path)
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be an integer >= 1, got {in_chans!r}")
    if name.lower().endswith(ARRAY_EXTENSIONS):
        with reading_image_file(name, "image", ImageReadError):
            array = np.load(name, allow_pickle=False)
        return np.array(_array_to_image(np.asarray(array), name, in_chans), order="C")
    with reading_image_file(name, "image", ImageReadError), Image.open(name) as image:
        image.load()  # decode now: truncated or corrupt data fails here, not later
        pages = _tiff_pages(image, in_chans)
        if pages is not None:
            return np.array(_stack_pages(pages), order="C")
        loss = _tiff_loss(image) if in_chans != 3 else None  # RGB models read such files as Pillow does
        if loss:
            raise ImageReadError(f"cannot read image {name} for a model of in_chans={in_chans}: {loss}")
        try:
            oriented = ImageOps.exif_transpose(image)
        except Exception as err:  # a malformed EXIF block should not make the picture unreadable
            warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({err})", stacklevel=2)
            oriented = image
        oriented = oriented if oriented is not None else image
        if in_chans == 3:
            array = _to_rgb(oriented)
        elif in_chans == 1:
            array = _to_grey(oriented)
        else:
            array = _to_bands(oriented, in_chans, name)
    return np.array(array, order="C")  # a writable copy (Pillow's buffers are read-only)


def image_shape(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image as ``load_image`` gives it (EXIF orientation applied), from its header only
    (``.npy``: its array header)."""
    name = os.fspath(path)
    with reading_image_file(name, "image", ImageReadError):
        if name.lower().endswith(ARRAY_EXTENSIONS):
            shape = np.load(name, mmap_mode="r", allow_pickle=False).shape
            if len(shape) not in (2, 3):
                raise ImageReadError(f"cannot read image {name}: a .npy image must be (H, W) or (H, W, bands), got "
                                     f"shape {shape}")
            return int(shape[0]), int(shape[1])
        with Image.open(name) as image:
            width, height = image.size
            if image.getexif().get(_EXIF_ORIENTATION, 1) in _TRANSPOSING_ORIENTATIONS:
                width, height = height, width
    return height, width


def to_tensor(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """An ``(H, W, C)`` image -> a normalised ``(1, C, H, W)`` float32 tensor, ``(x - mean) / std`` per channel,
    where ``x`` is ``image / 255`` for uint8 and the image as it is for float (``load_image``'s two kinds).
    ``C`` is ``len(mean)`` (the model's ``in_chans``); an ``(H, W)`` array is one channel."""
    image = np.asarray(image)
    mean, std = tuple(mean), tuple(std)
    if image.ndim == 2:
        image = image[..., None]
    if len(mean) != len(std) or image.ndim != 3 or image.shape[2] != len(mean) or not (
            image.dtype == np.uint8 or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"expected an (H, W, {len(mean)}) image, uint8 or float in [0, 1] ({len(mean)} = len(mean), "
                         f"len(std) = {len(std)}), got {image.shape} {image.dtype}")
    if image.dtype == np.uint8:
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8, order="C")).permute(2, 0, 1).float().div_(255.0)
    else:
        tensor = torch.from_numpy(np.array(image, dtype=np.float32, order="C")).permute(2, 0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return ((tensor - mean_t) / std_t)[None]


def display_rgb(image: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 picture of a ``load_image`` result, for overlays: RGB as it is, one band repeated
    (two bands: the first), more than three bands their first three; float images (0..1) times 255, clipped."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] < 1:
        raise ValueError(f"expected an (H, W, C) image, got {image.shape}")
    picture = image[..., :3] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)
    if picture.dtype != np.uint8:
        picture = np.clip(np.round(picture.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(picture)
