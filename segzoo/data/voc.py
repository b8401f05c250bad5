"""Pascal VOC 2012 segmentation, with the SBD-augmented ``train_aug`` split."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import DatasetError, read_utf8
from ..zoo import VOC_CLASSES
from .base import SegmentationDataset, data_root, find_missing

__all__ = ["VOC_LAYOUT", "VOCSegmentation"]

VOC_LAYOUT = """expected layout (VOC2012 under <root>/VOCdevkit/VOC2012, <root>/VOC2012 or <root> itself):
    VOC2012/
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png          palette masks (train, val, trainval)
        SegmentationClassAug/<id>.png       SBD-augmented masks (train_aug)
        ImageSets/Segmentation/train.txt, val.txt, trainval.txt, train_aug.txt   one id per line"""

# split -> the folder of its masks
_SPLITS = {"train": "SegmentationClass", "val": "SegmentationClass", "trainval": "SegmentationClass",
           "train_aug": "SegmentationClassAug"}


def _locate(root: Path) -> Path:
    for candidate in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DatasetError(f"no Pascal VOC 2012 found: expected {root / 'VOCdevkit' / 'VOC2012' / 'JPEGImages'} "
                       f"(or {root / 'VOC2012' / 'JPEGImages'}, or {root / 'JPEGImages'})\n{VOC_LAYOUT}")


def _read_ids(path: Path) -> list[str]:
    ids = []
    for line in read_utf8(path, DatasetError, "one image id per line").splitlines():
        line = line.strip()
        if line:
            # DeepLab-style lists ("/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png") give the id too.
            ids.append(Path(line.split()[0]).stem)
    return ids


class VOCSegmentation(SegmentationDataset):
    """Pascal VOC 2012: 21 classes (background + 20), 255 = object boundaries, ignored.

    Args:
        root: The data root (``None``: ``$SEGZOO_DATA``); VOC2012 is looked for at ``<root>/VOCdevkit/VOC2012``,
            ``<root>/VOC2012`` or ``<root>`` itself.
        split: ``"train"`` (1464), ``"val"`` (1449), ``"trainval"`` or ``"train_aug"`` (10582, masks from
            ``SegmentationClassAug``).
        transform: See :class:`SegmentationDataset`.

    Raises:
        DatasetError: The root, the split's id list, or a listed image / mask is missing, or the split is unknown.
    """

    name = "voc"
    num_classes = len(VOC_CLASSES)
    class_names = VOC_CLASSES

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 transform: Callable | None = None) -> None:
        if split not in _SPLITS:
            raise DatasetError(f"unknown VOC split {split!r}; valid splits: {', '.join(_SPLITS)}")
        self.root = _locate(data_root(root))
        list_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            hint = (" (train_aug.txt and SegmentationClassAug come from the SBD augmentation, not VOC itself)"
                    if split == "train_aug" else "")
            raise DatasetError(f"VOC split file {list_file} not found{hint}\n{VOC_LAYOUT}")
        ids = _read_ids(list_file)
        if not ids:
            raise DatasetError(f"VOC split file {list_file} lists no images")
        masks = self.root / _SPLITS[split]
        files = [(self.root / "JPEGImages" / f"{i}.jpg", masks / f"{i}.png") for i in ids]
        find_missing(files, f"VOC split {split} ({list_file})")
        super().__init__(files, split, transform)
