"""Aerial-image datasets in mmsegmentation's layout: LoveDA, ISPRS Potsdam and Vaihingen, iSAID.

All four are ``img_dir/{train,val}`` + ``ann_dir/{train,val}`` as written by mmseg's converters
(``tools/dataset_converters/{loveda,potsdam,vaihingen,isaid}.py``); Potsdam, Vaihingen and iSAID are cut into
patches by them, so the masks here are those patches, not the original tiles.
"""
from __future__ import annotations

from ..zoo.datasets import DATASETS
from .coco_stuff import PairedFolderSegmentation

__all__ = ["ISAIDSegmentation", "LoveDASegmentation", "PotsdamSegmentation", "VaihingenSegmentation"]


def _layout(folder: str, masks: str, labels: str, converter: str) -> str:
    return (f"expected layout (under <root>/{folder} or <root> itself):\n"
            f"    {folder}/\n"
            f"        img_dir/{{train,val}}/<name>.png\n"
            f"        ann_dir/{{train,val}}/{masks}   ({labels})\n"
            f"            made by mmsegmentation's tools/dataset_converters/{converter}.py")


class LoveDASegmentation(PairedFolderSegmentation):
    """LoveDA (mmseg's ``LoveDADataset``): 7 classes; labels 1..7 as stored -> 0..6, 0 (no data) -> 255, ignored.

    Splits ``"train"`` and ``"val"`` (the test split has no masks). Arguments as
    :class:`~segzoo.data.coco_stuff.PairedFolderSegmentation`.
    """

    name = "loveda"
    class_names = DATASETS["mmseg_loveda"].class_names
    num_classes = len(class_names)
    title, subdirs = "LoveDA", ("loveDA", "LoveDA", "loveda")
    layout = _layout("loveDA", "<name>.png", "labels 1..7, 0 = no data (ignored)", "loveda")
    splits = {"train": "train", "val": "val"}
    reduce_zero_label = True


class PotsdamSegmentation(PairedFolderSegmentation):
    """ISPRS Potsdam (mmseg's ``PotsdamDataset``), 512x512 patches: 6 classes; labels 1..6 as stored -> 0..5,
    0 (unlabelled) -> 255, ignored.

    Splits ``"train"`` and ``"val"`` (mmseg's val holds the ISPRS test tiles). Arguments as
    :class:`~segzoo.data.coco_stuff.PairedFolderSegmentation`.
    """

    name = "potsdam"
    class_names = DATASETS["mmseg_potsdam"].class_names
    num_classes = len(class_names)
    title, subdirs = "Potsdam", ("potsdam", "Potsdam")
    layout = _layout("potsdam", "<name>.png", "labels 1..6, 0 = unlabelled (ignored)", "potsdam")
    splits = {"train": "train", "val": "val"}
    reduce_zero_label = True


class VaihingenSegmentation(PotsdamSegmentation):
    """ISPRS Vaihingen (mmseg's ``ISPRSDataset``), 512x512 patches: Potsdam's 6 classes and label mapping."""

    name = "vaihingen"
    class_names = DATASETS["mmseg_vaihingen"].class_names
    num_classes = len(class_names)
    title, subdirs = "Vaihingen", ("vaihingen", "Vaihingen")
    layout = _layout("vaihingen", "<name>.png", "labels 1..6, 0 = unlabelled (ignored)", "vaihingen")


class ISAIDSegmentation(PairedFolderSegmentation):
    """iSAID (mmseg's ``iSAIDDataset``), 896x896 patches: 16 classes, labels 0..15 as stored (0 = background),
    255 = ignore (the converter's padding).

    The masks keep the original files' ``_instance_color_RGB`` suffix but hold class indices: the original colour
    masks must go through mmseg's converter first. Splits ``"train"`` and ``"val"``. Arguments as
    :class:`~segzoo.data.coco_stuff.PairedFolderSegmentation`.
    """

    name = "isaid"
    class_names = DATASETS["mmseg_isaid"].class_names
    num_classes = len(class_names)
    title, subdirs = "iSAID", ("iSAID", "isaid")
    layout = _layout("iSAID", "<name>_instance_color_RGB.png", "class indices 0..15, 255 = ignore", "isaid")
    splits = {"train": "train", "val": "val"}
    mask_suffix = "_instance_color_RGB.png"
