"""COCO-Stuff (164k and 10k) in mmsegmentation's layout, and the folder-pair layout it shares with other mmseg data.

mmseg's converters (``tools/dataset_converters/coco_stuff164k.py`` / ``coco_stuff10k.py``) write one
``<stem>_labelTrainIds.png`` per image next to the original annotations; those are the masks read here.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..errors import DatasetError
from ..zoo.datasets import DATASETS
from .base import SegmentationDataset, data_root, find_missing
from .pascal_context import reduce_zero_label

__all__ = ["COCO_STUFF10K_LAYOUT", "COCO_STUFF164K_LAYOUT", "COCOStuff10kSegmentation", "COCOStuff164kSegmentation",
           "PairedFolderSegmentation"]

COCO_STUFF164K_LAYOUT = """expected layout (under <root>/coco_stuff164k or <root> itself):
    coco_stuff164k/
        images/train2017/<id>.jpg                        images/val2017/<id>.jpg
        annotations/train2017/<id>_labelTrainIds.png     annotations/val2017/<id>_labelTrainIds.png
            (labels 0..170, 255 = ignore; made by mmsegmentation's tools/dataset_converters/coco_stuff164k.py)"""

COCO_STUFF10K_LAYOUT = """expected layout (under <root>/coco_stuff10k or <root> itself):
    coco_stuff10k/
        images/train2014/<id>.jpg                        images/test2014/<id>.jpg
        annotations/train2014/<id>_labelTrainIds.png     annotations/test2014/<id>_labelTrainIds.png
            (labels 1..171, 0 = ignore; made by mmsegmentation's tools/dataset_converters/coco_stuff10k.py
             from imageLists/{train,test}.txt and the .mat annotations)"""


class PairedFolderSegmentation(SegmentationDataset):
    """mmsegmentation's folder layout: ``<images>/<folder>/*<image suffix>`` paired by stem with
    ``<masks>/<folder>/<stem><mask suffix>``, under ``<root>/<one of subdirs>`` or ``<root>`` itself.

    Subclasses set the class attributes below (and ``name``, ``class_names``, ``num_classes``).

    Args:
        root: The data root (``None``: ``$SEGZOO_DATA``).
        split: A key of :attr:`splits`.
        transform: See :class:`SegmentationDataset`.

    Raises:
        DatasetError: The root or the split's image folder is missing or empty, an image has no mask, or the
            split is unknown. Messages end with :attr:`layout`.
    """

    title = "dataset"          # for messages ("COCO-Stuff 164k")
    layout = ""                # the expected layout, appended to errors
    subdirs: tuple[str, ...] = ()  # folders under the root that may hold the data (mmseg's data_root names)
    image_dir, mask_dir = "img_dir", "ann_dir"
    splits: dict[str, str] = {}    # split -> its folder under image_dir / mask_dir
    image_suffix = mask_suffix = ".png"
    reduce_zero_label = False  # mmseg's reduce_zero_label: 0 -> 255 (ignore), the others shifted down by one

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 transform: Callable | None = None) -> None:
        if split not in self.splits:
            raise DatasetError(f"unknown {self.title} split {split!r}; valid splits: {', '.join(self.splits)}")
        base = data_root(root)
        self.root = next((base / d for d in self.subdirs if (base / d / self.image_dir).is_dir()), base)
        folder = self.splits[split]
        image_dir = self.root / self.image_dir / folder
        if not image_dir.is_dir():
            raise DatasetError(f"{self.title} images {image_dir} not found\n{self.layout}")
        images = sorted(image_dir.glob(f"*{self.image_suffix}"))
        if not images:
            raise DatasetError(f"no *{self.image_suffix} images in {image_dir}\n{self.layout}")
        mask_dir = self.root / self.mask_dir / folder
        files = [(p, mask_dir / (p.name[:-len(self.image_suffix)] + self.mask_suffix)) for p in images]
        find_missing(files, f"{self.title} split {split} (masks *{self.mask_suffix} expected in {mask_dir})")
        super().__init__(files, split, transform)

    def map_labels(self, raw: np.ndarray) -> np.ndarray:
        """Training ids as stored, or shifted by :func:`reduce_zero_label` when :attr:`reduce_zero_label` is set."""
        return reduce_zero_label(raw, self.num_classes) if self.reduce_zero_label else raw


class COCOStuff164kSegmentation(PairedFolderSegmentation):
    """COCO-Stuff 164k (mmseg's ``COCOStuffDataset``): 171 classes, trainIds 0..170 as stored, 255 = ignore.

    Splits: ``"train"`` (118k images, ``train2017/``) and ``"val"`` (5000, ``val2017/``). Arguments as
    :class:`PairedFolderSegmentation`.
    """

    name = "coco_stuff164k"
    class_names = DATASETS["mmseg_coco_stuff164k"].class_names
    num_classes = len(class_names)
    title, layout, subdirs = "COCO-Stuff 164k", COCO_STUFF164K_LAYOUT, ("coco_stuff164k",)
    image_dir, mask_dir = "images", "annotations"
    splits = {"train": "train2017", "val": "val2017"}
    image_suffix, mask_suffix = ".jpg", "_labelTrainIds.png"


class COCOStuff10kSegmentation(COCOStuff164kSegmentation):
    """COCO-Stuff 10k (mmseg's ``COCOStuffDataset`` with ``reduce_zero_label=True``): 171 classes; labels
    1..171 as stored -> 0..170, and 0 (unlabelled) -> 255, ignored.

    Splits: ``"train"`` (9000 images, ``train2014/``) and ``"test"`` (1000, ``test2014/``); ``"val"`` is the test
    split too, as mmseg validates on it. Arguments as :class:`PairedFolderSegmentation`.
    """

    name = "coco_stuff10k"
    class_names = DATASETS["mmseg_coco_stuff10k"].class_names
    num_classes = len(class_names)
    title, layout, subdirs = "COCO-Stuff 10k", COCO_STUFF10K_LAYOUT, ("coco_stuff10k",)
    splits = {"train": "train2014", "test": "test2014", "val": "test2014"}
    reduce_zero_label = True
