"""Datasets for training and evaluating segmentation models: Pascal VOC, Cityscapes, ADE20K, image folders.

Every dataset yields ``(image, mask)``: a normalised ``(3, H, W)`` float32 tensor and an ``(H, W)`` int64 tensor
of training ids, 255 = ignore. Masks are read, mapped to training ids and checked on every access, so a bad file
fails with its name rather than as a CUDA assert deep in the loss.

    ds = create_dataset("voc", root="/data", split="train_aug")   # or set SEGZOO_DATA
"""
from .ade20k import ADE20KSegmentation
from .base import SegmentationDataset, data_root
from .cityscapes import CityscapesSegmentation
from .factory import DATASET_DEFAULTS, create_dataset, default_transform, list_datasets
from .folder import FolderDataset
from .masks import read_mask
from .transforms import EvalTransform, TrainTransform
from .voc import VOCSegmentation

__all__ = [
    "DATASET_DEFAULTS",
    "ADE20KSegmentation",
    "CityscapesSegmentation",
    "EvalTransform",
    "FolderDataset",
    "SegmentationDataset",
    "TrainTransform",
    "VOCSegmentation",
    "create_dataset",
    "data_root",
    "default_transform",
    "list_datasets",
    "read_mask",
]
