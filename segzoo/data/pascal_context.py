"""Pascal Context (VOC2010 with full-scene labels) in mmsegmentation's layout: 60 classes, or 59 without background."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DatasetError, read_utf8
from ..zoo.datasets import DATASETS
from .base import SegmentationDataset, data_root, find_missing

__all__ = ["CONTEXT_LAYOUT", "PascalContext59Segmentation", "PascalContextSegmentation", "reduce_zero_label"]

CONTEXT_LAYOUT = """expected layout (VOC2010 under <root>/VOCdevkit/VOC2010, <root>/VOC2010 or <root> itself):
    VOC2010/
        JPEGImages/<id>.jpg
        SegmentationClassContext/<id>.png     labels 0..59 (0 = background), as written by mmsegmentation's
                                              tools/dataset_converters/pascal_context.py
        ImageSets/SegmentationContext/train.txt, val.txt   one id per line"""

_SPLITS = ("train", "val")


def reduce_zero_label(raw: np.ndarray, num_classes: int) -> np.ndarray:
    """mmsegmentation's ``reduce_zero_label``: 0 -> 255 (ignore), 1..num_classes -> 0..num_classes - 1.

    255 stays 255, as in mmseg. Any other value above ``num_classes`` becomes -1 rather than ``raw - 1``, so that
    e.g. 256 cannot pass as 255 and :meth:`SegmentationDataset.load` reports it as stored.

    Args:
        raw: ``(H, W)`` labels as stored (0 = unlabelled, 1..num_classes = classes).
        num_classes: The number of classes after the shift.

    Returns:
        ``(H, W)`` int64 training ids.
    """
    return np.where((raw == 0) | (raw == 255), 255, np.where(raw > num_classes, -1, raw - 1))


def _locate(root: Path) -> Path:
    for candidate in (root / "VOCdevkit" / "VOC2010", root / "VOC2010", root):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DatasetError(f"no Pascal Context found: expected {root / 'VOCdevkit' / 'VOC2010' / 'JPEGImages'} "
                       f"(or {root / 'VOC2010' / 'JPEGImages'}, or {root / 'JPEGImages'})\n{CONTEXT_LAYOUT}")


class PascalContextSegmentation(SegmentationDataset):
    """Pascal Context, 60 classes (mmseg's ``PascalContextDataset``): labels 0..59 as stored, 0 = background.

    Args:
        root: The data root (``None``: ``$SEGZOO_DATA``); VOC2010 is looked for at ``<root>/VOCdevkit/VOC2010``,
            ``<root>/VOC2010`` or ``<root>`` itself.
        split: ``"train"`` (4996 images) or ``"val"`` (5104), the ids of ``ImageSets/SegmentationContext``.
        transform: See :class:`SegmentationDataset`.

    Raises:
        DatasetError: The root, the split's id list, or a listed image / mask is missing, or the split is unknown.
    """

    name = "context"
    class_names = DATASETS["mmseg_context"].class_names
    num_classes = len(class_names)

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 transform: Callable | None = None) -> None:
        if split not in _SPLITS:
            raise DatasetError(f"unknown Pascal Context split {split!r}; valid splits: {', '.join(_SPLITS)}")
        self.root = _locate(data_root(root))
        list_file = self.root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        if not list_file.is_file():
            raise DatasetError(f"Pascal Context split file {list_file} not found\n{CONTEXT_LAYOUT}")
        text = read_utf8(list_file, DatasetError, "one image id per line")  # not the locale's encoding
        ids = [line.strip() for line in text.splitlines() if line.strip()]
        if not ids:
            raise DatasetError(f"Pascal Context split file {list_file} lists no images")
        masks = self.root / "SegmentationClassContext"
        files = [(self.root / "JPEGImages" / f"{i}.jpg", masks / f"{i}.png") for i in ids]
        find_missing(files, f"Pascal Context split {split} ({list_file})")
        super().__init__(files, split, transform)


class PascalContext59Segmentation(PascalContextSegmentation):
    """Pascal Context, 59 classes (mmseg's ``PascalContextDataset59``): the same files, background ignored.

    ``reduce_zero_label``: 0 (background) -> 255, ignored; 1..59 -> 0..58. Arguments as
    :class:`PascalContextSegmentation`.
    """

    name = "context59"
    class_names = DATASETS["mmseg_context59"].class_names
    num_classes = len(class_names)

    def map_labels(self, raw: np.ndarray) -> np.ndarray:
        """Shift labels down by one, 0 (background) becoming 255 (ignore); see :func:`reduce_zero_label`."""
        return reduce_zero_label(raw, self.num_classes)
