"""ADE20K (the SceneParsing150 challenge data, ADEChallengeData2016)."""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..errors import DatasetError
from ..zoo import ADE20K_CLASSES
from .base import SegmentationDataset, data_root, find_missing

__all__ = ["ADE20K_LAYOUT", "ADE20KSegmentation"]

ADE20K_LAYOUT = """expected layout (under <root>/ADEChallengeData2016 or <root> itself):
    ADEChallengeData2016/
        images/training/*.jpg          images/validation/*.jpg
        annotations/training/*.png     annotations/validation/*.png   (same stems, labels 0..150)"""

_SPLITS = {"train": "training", "val": "validation"}


class ADE20KSegmentation(SegmentationDataset):
    """ADE20K: 150 classes; labels 1..150 on disk -> 0..149, and 0 ("other") -> 255, ignored.

    Args:
        root: The data root (``None``: ``$SEGZOO_DATA``); the data is looked for at
            ``<root>/ADEChallengeData2016`` or ``<root>`` itself.
        split: ``"train"`` (20210 images, ``training/``) or ``"val"`` (2000, ``validation/``).
        transform: See :class:`SegmentationDataset`.

    Raises:
        DatasetError: The root or the split's folders are missing or empty, an image has no mask, or the split
            is unknown.
    """

    name = "ade"
    num_classes = len(ADE20K_CLASSES)
    class_names = ADE20K_CLASSES

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 transform: Callable | None = None) -> None:
        if split not in _SPLITS:
            raise DatasetError(f"unknown ADE20K split {split!r}; valid splits: {', '.join(_SPLITS)}")
        base = data_root(root)
        nested = base / "ADEChallengeData2016"
        self.root = nested if (nested / "images").is_dir() else base
        folder = _SPLITS[split]
        image_dir = self.root / "images" / folder
        if not image_dir.is_dir():
            raise DatasetError(f"ADE20K images {image_dir} not found\n{ADE20K_LAYOUT}")
        images = sorted(image_dir.glob("*.jpg"))
        if not images:
            raise DatasetError(f"no .jpg images in {image_dir}\n{ADE20K_LAYOUT}")
        mask_dir = self.root / "annotations" / folder
        files = [(p, mask_dir / f"{p.stem}.png") for p in images]
        find_missing(files, f"ADE20K split {split} (masks expected in {mask_dir})")
        super().__init__(files, split, transform)

    def map_labels(self, raw: np.ndarray) -> np.ndarray:
        """Shift labels down by one, 0 becoming 255 (ignore).

        Args:
            raw: ``(H, W)`` labels as stored (0 = other, 1..150 = classes).

        Returns:
            ``(H, W)`` int64 training ids.
        """
        # Values above 150 become -1 rather than raw - 1, so that e.g. 256 cannot pass as 255 (ignore) and the
        # check in load() reports it.
        return np.where(raw == 0, 255, np.where(raw > self.num_classes, -1, raw - 1))
