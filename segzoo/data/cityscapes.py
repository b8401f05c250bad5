"""Cityscapes fine annotations, labelIds mapped to the 19 evaluation trainIds."""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..errors import DatasetError
from ..zoo import CITYSCAPES_CLASSES
from .base import SegmentationDataset, data_root, find_missing

__all__ = ["CITYSCAPES_LAYOUT", "LABEL_TO_TRAIN_ID", "CityscapesSegmentation"]

CITYSCAPES_LAYOUT = """expected layout (under <root>/cityscapes or <root> itself):
    cityscapes/
        leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
        gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"""

_SPLITS = ("train", "val", "test")
_IMAGE_SUFFIX = "_leftImg8bit.png"
_MASK_SUFFIX = "_gtFine_labelIds.png"

# The official table (cityscapesscripts labels.py): the labelIds that are evaluated, in trainId order.
_EVAL_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
LABEL_TO_TRAIN_ID = np.full(256, 255, dtype=np.int64)
LABEL_TO_TRAIN_ID[list(_EVAL_LABEL_IDS)] = np.arange(len(_EVAL_LABEL_IDS))


class CityscapesSegmentation(SegmentationDataset):
    """Cityscapes (gtFine): 19 classes; every other labelId (void, license plate, ...) -> 255, ignored.

    Args:
        root: The data root (``None``: ``$SEGZOO_DATA``); Cityscapes is looked for at ``<root>/cityscapes`` or
            ``<root>`` itself.
        split: ``"train"`` (2975), ``"val"`` (500) or ``"test"`` (1525, masks without labels).
        transform: See :class:`SegmentationDataset`.

    Raises:
        DatasetError: The root or the split's folders are missing or empty, an image has no mask, or the split
            is unknown.
    """

    name = "citys"
    num_classes = len(CITYSCAPES_CLASSES)
    class_names = CITYSCAPES_CLASSES

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 transform: Callable | None = None) -> None:
        if split not in _SPLITS:
            raise DatasetError(f"unknown Cityscapes split {split!r}; valid splits: {', '.join(_SPLITS)}")
        base = data_root(root)
        self.root = base / "cityscapes" if (base / "cityscapes" / "leftImg8bit").is_dir() else base
        image_dir = self.root / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise DatasetError(f"Cityscapes images {image_dir} not found\n{CITYSCAPES_LAYOUT}")
        images = sorted(image_dir.glob(f"*/*{_IMAGE_SUFFIX}"))
        if not images:
            raise DatasetError(f"no *{_IMAGE_SUFFIX} images in {image_dir}/<city>/\n{CITYSCAPES_LAYOUT}")
        mask_dir = self.root / "gtFine" / split
        files = [(p, mask_dir / p.parent.name / (p.name[:-len(_IMAGE_SUFFIX)] + _MASK_SUFFIX)) for p in images]
        find_missing(files, f"Cityscapes split {split} (masks expected in {mask_dir})")
        super().__init__(files, split, transform)

    def map_labels(self, raw: np.ndarray) -> np.ndarray:
        """labelIds -> trainIds 0..18; every other value (including -1 and 255) -> 255.

        Args:
            raw: ``(H, W)`` labelIds as stored in ``*_gtFine_labelIds.png``.

        Returns:
            ``(H, W)`` int64 trainIds.
        """
        inside = (raw >= 0) & (raw < 256)
        return np.where(inside, LABEL_TO_TRAIN_ID[np.clip(raw, 0, 255)], 255)
