"""Reading label masks: single-channel PNGs whose pixel values are class indices."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ..errors import DatasetError
from ..inference.image_io import reading_image_file

__all__ = ["read_mask"]

# Modes whose raw pixel values are the labels. "P" is here on purpose: a VOC mask's labels are its palette
# indices, and converting it to RGB (as load_image would) would turn labels into colours.
_VALUE_MODES = ("P", "L", "I", "1")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a label mask as an ``(H, W)`` int64 array of the values stored in the file.

    Palette (``P``) masks give their palette *indices*, not their colours; greyscale (``L``), 32-bit (``I``)
    and 16-bit (``I;16*``) masks give their values; 1-bit (``1``) masks give 0 / 1. Multi-frame files give
    their first frame.

    Args:
        path: The mask file.

    Returns:
        The labels as a writable ``(H, W)`` int64 array, unmapped (dataset-specific mapping is done by
        :meth:`SegmentationDataset.map_labels`).

    Raises:
        DatasetError: The file is missing or corrupt, or it is a colour (RGB / RGBA / ...) image rather than a
            single-channel label-index image. The message names the file.
    """
    name = os.fspath(path)
    with reading_image_file(name, "mask", DatasetError), Image.open(name) as image:
        image.load()  # decode now: a truncated file fails here, inside the error mapping
        mode = image.mode
        if not (mode in _VALUE_MODES or mode.startswith("I;16")):
            raise DatasetError(
                f"mask {name} is a {mode} image: masks must be single-channel label-index PNGs (palette "
                f"'P' or greyscale 'L' / 16-bit), where each pixel value is a class index, not a colour. "
                f"Convert colour-coded masks to class indices first.")
        values = np.asarray(image)
    # astype copies, so the result is writable and independent of Pillow's buffer; bool ("1") becomes 0/1.
    return values.astype(np.int64)
