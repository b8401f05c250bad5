"""Datasets for training and evaluating segmentation models: Pascal VOC, Cityscapes, ADE20K, image folders, and
mmsegmentation's layouts of Pascal Context, COCO-Stuff, LoveDA, Potsdam, Vaihingen and iSAID.

Every dataset yields ``(image, mask)``: a normalised ``(3, H, W)`` float32 tensor and an ``(H, W)`` int64 tensor
of training ids, 255 = ignore. Masks are read, mapped to training ids and checked on every access, so a bad file
fails with its name rather than as a CUDA assert deep in the loss.

    ds = create_dataset("voc", root="/data", split="train_aug")   # or set SEGZOO_DATA
"""
from .ade20k import ADE20KSegmentation
from .base import SegmentationDataset, data_root
from .cityscapes import CityscapesSegmentation
from .coco_stuff import COCOStuff10kSegmentation, COCOStuff164kSegmentation
from .factory import DATASET_DEFAULTS, create_dataset, default_transform, list_datasets
from .folder import FolderDataset
from .masks import read_mask
from .multilabel import MultiLabelFolderDataset
from .pascal_context import PascalContext59Segmentation, PascalContextSegmentation
from .remote_sensing import ISAIDSegmentation, LoveDASegmentation, PotsdamSegmentation, VaihingenSegmentation
from .transforms import EvalTransform, TrainTransform
from .voc import VOCSegmentation

__all__ = [
    "DATASET_DEFAULTS",
    "ADE20KSegmentation",
    "COCOStuff10kSegmentation",
    "COCOStuff164kSegmentation",
    "CityscapesSegmentation",
    "EvalTransform",
    "FolderDataset",
    "ISAIDSegmentation",
    "LoveDASegmentation",
    "MultiLabelFolderDataset",
    "PascalContext59Segmentation",
    "PascalContextSegmentation",
    "PotsdamSegmentation",
    "SegmentationDataset",
    "TrainTransform",
    "VOCSegmentation",
    "VaihingenSegmentation",
    "create_dataset",
    "data_root",
    "default_transform",
    "list_datasets",
    "read_mask",
]
