"""``create_dataset``: datasets by name, with the reference recipe's transforms as defaults."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import IMAGENET_MEAN, IMAGENET_STD, default_mean_std
from ..errors import DatasetError, did_you_mean
from .ade20k import ADE20KSegmentation
from .base import SegmentationDataset, check_in_chans
from .cityscapes import CityscapesSegmentation
from .coco_stuff import COCOStuff10kSegmentation, COCOStuff164kSegmentation
from .folder import FolderDataset
from .multilabel import MultiLabelFolderDataset
from .pascal_context import PascalContext59Segmentation, PascalContextSegmentation
from .remote_sensing import ISAIDSegmentation, LoveDASegmentation, PotsdamSegmentation, VaihingenSegmentation
from .transforms import EvalTransform, TrainTransform
from .voc import VOCSegmentation

__all__ = ["DATASET_DEFAULTS", "TRAIN_SPLITS", "create_dataset", "default_transform", "list_datasets"]

# The reference recipe's sizes (VOC 540/480, Cityscapes 1024/768; ADE20K as in mmseg / PyTorch-Encoding).
# mmseg's datasets: crop = its configs' crop_size, base = the smaller side of their training Resize scale
# (Context (520, 520); COCO-Stuff and LoveDA (2048, 512); Potsdam / Vaihingen (512, 512); iSAID (896, 896)).
DATASET_DEFAULTS = {
    "voc": {"base_size": 540, "crop_size": 480},
    "citys": {"base_size": 1024, "crop_size": 768},
    "ade": {"base_size": 520, "crop_size": 480},
    "folder": {"base_size": 520, "crop_size": 480},
    "context": {"base_size": 520, "crop_size": 480},
    "context59": {"base_size": 520, "crop_size": 480},
    "coco_stuff164k": {"base_size": 512, "crop_size": 512},
    "coco_stuff10k": {"base_size": 512, "crop_size": 512},
    "loveda": {"base_size": 512, "crop_size": 512},
    "potsdam": {"base_size": 512, "crop_size": 512},
    "vaihingen": {"base_size": 512, "crop_size": 512},
    "isaid": {"base_size": 896, "crop_size": 896},
}
_CLASSES = {"voc": VOCSegmentation, "citys": CityscapesSegmentation, "ade": ADE20KSegmentation,
            "folder": FolderDataset, "context": PascalContextSegmentation, "context59": PascalContext59Segmentation,
            "coco_stuff164k": COCOStuff164kSegmentation, "coco_stuff10k": COCOStuff10kSegmentation,
            "loveda": LoveDASegmentation, "potsdam": PotsdamSegmentation, "vaihingen": VaihingenSegmentation,
            "isaid": ISAIDSegmentation}
# mmseg's config names (pascal_context_59, coco-stuff164k) are accepted too.
_ALIASES = {"cityscapes": "citys", "ade20k": "ade", "pascal_context": "context", "pascal_context59": "context59",
            "pascal_context_59": "context59", "coco-stuff164k": "coco_stuff164k", "coco-stuff10k": "coco_stuff10k"}
TRAIN_SPLITS = ("train", "train_aug", "trainval")
# Keyword arguments of create_dataset that shape the default transform rather than the dataset.
_TRANSFORM_KWARGS = ("mean", "std", "mode")


def list_datasets() -> list[str]:
    """The dataset names :func:`create_dataset` accepts (aliases left out).

    Returns:
        The sorted names.
    """
    return sorted(_CLASSES)


def _canonical(name: str) -> str:
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in _CLASSES:
        raise DatasetError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}."
                           + did_you_mean(str(name).lower(), [*_CLASSES, *_ALIASES]))
    return key


def default_transform(name: str, train: bool, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD, mode: str = "testval", *,
                      ignore_index: int = 255) -> TrainTransform | EvalTransform:
    """The reference recipe's transform for a dataset.

    Args:
        name: A dataset name or alias (sizes from :data:`DATASET_DEFAULTS`).
        train: ``True``: :class:`TrainTransform`; ``False``: :class:`EvalTransform` in ``mode``.
        mean: Per-channel mean of the 0..1 image.
        std: Per-channel standard deviation of the 0..1 image.
        mode: The eval mode, ``"testval"`` (full image) or ``"val"`` (short side and centre crop = crop size).
        ignore_index: The mask value of padded pixels.

    Returns:
        The transform.

    Raises:
        DatasetError: Unknown dataset name.
        ValueError: Unknown eval mode.
    """
    sizes = DATASET_DEFAULTS[_canonical(name)]
    if train:
        return TrainTransform(sizes["base_size"], sizes["crop_size"], mean=mean, std=std, ignore_index=ignore_index)
    return EvalTransform(mode, crop_size=sizes["crop_size"], mean=mean, std=std, ignore_index=ignore_index)


def _folder_split(root: Path, split: str | None, image_dir: str) -> str | None:
    # A flat folder (images directly in image_dir) has no splits: every split name then means all of it.
    images = root / image_dir
    if split and images.is_dir() and not any(p.is_dir() for p in images.iterdir()):
        return None
    return split


def create_dataset(name: str, root: str | os.PathLike | None = None, split: str = "train",
                   transform: Callable | None = None, **kwargs: Any) -> SegmentationDataset:
    """Build a dataset by name.

    Args:
        name: ``"voc"``, ``"citys"`` (alias ``"cityscapes"``), ``"ade"`` (alias ``"ade20k"``), ``"folder"``, or
            mmsegmentation's layouts: ``"context"`` / ``"context59"`` (aliases ``"pascal_context"`` /
            ``"pascal_context59"``), ``"coco_stuff164k"``, ``"coco_stuff10k"``, ``"loveda"``, ``"potsdam"``,
            ``"vaihingen"``, ``"isaid"``.
        root: The data root (``None``: ``$SEGZOO_DATA``); for ``"folder"``, the dataset folder itself. A flat
            folder (images directly in ``images/``) ignores ``split``; one with sub-folders reads
            ``images/<split>``.
        split: The split; ``train``, ``train_aug`` and ``trainval`` are training splits.
        transform: The transform; ``None``: :func:`default_transform` for the split (training recipe for a
            training split, else ``"testval"``), shaped by the ``mean``, ``std`` and ``mode`` keywords.
        **kwargs: ``mean`` / ``std`` / ``mode`` for the default transform; the rest go to the dataset class
            (for ``"folder"``: :class:`FolderDataset`'s ``image_dir``, ``class_names``, ``num_classes``, ``task``
            ...; ``task="multilabel"`` gives a :class:`MultiLabelFolderDataset`).

    Returns:
        The dataset.

    Raises:
        DatasetError: Unknown name, missing root or files (see the dataset classes).
    """
    key = _canonical(name)
    options = {k: kwargs.pop(k) for k in _TRANSFORM_KWARGS if k in kwargs}
    if options and transform is not None:
        raise ValueError(f"{', '.join(options)} shape the default transform; they cannot go with transform=")
    if key == "folder":
        if root is None:
            raise DatasetError("the folder dataset needs root=<the dataset folder>")
        folder = Path(root).expanduser()
        # task="multilabel": one binary mask per label, a dataset class of its own
        folder_class = FolderDataset
        if kwargs.get("task") == "multilabel":
            folder_class = MultiLabelFolderDataset
            del kwargs["task"]
        dataset = folder_class(folder, _folder_split(folder, split, kwargs.get("image_dir", "images")),
                               transform=transform, **kwargs)
    else:
        in_chans = check_in_chans(kwargs.pop("in_chans", 3))  # the named datasets find files; the base reads bands
        dataset = _CLASSES[key](root, split=split, transform=transform, **kwargs)
        dataset.in_chans = in_chans
    if transform is None:
        if "mean" not in options and "std" not in options:  # the statistics of the bands the images are read with
            options["mean"], options["std"] = default_mean_std(dataset.in_chans)
        dataset.transform = default_transform(key, train=split in TRAIN_SPLITS, ignore_index=dataset.ignore_index,
                                              **options)
    return dataset
