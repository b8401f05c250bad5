"""The datasets the zoo's models were trained on: classes, palette, evaluation size, Hub id, training recipe."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import UnknownModelError, did_you_mean
from .class_names import ADE20K_CLASSES, CITYSCAPES_CLASSES, VOC_CLASSES
from .palettes import ade20k_palette, cityscapes_palette, generic_palette, voc_palette

__all__ = ["ZooDataset", "DATASETS", "get_dataset", "dataset_of_classes", "palette_for"]


@dataclass(frozen=True)
class ZooDataset:
    """A dataset of the zoo.

    Attributes:
        key: Short name used in zoo names and entries (``"voc"``).
        eval_split: The split the reported accuracy is measured on (``"Pascal VOC 2012 val"``).
        input_size: The (height, width) the models are evaluated at.
        class_names: Class names in label order.
        palette: Its colour palette (a function: built on first use).
        hub_id: Its dataset id on the Hugging Face Hub (model cards' metadata).
        recipe: The reference training recipe on it (model cards).
    """

    key: str
    eval_split: str
    input_size: tuple[int, int]
    class_names: tuple[str, ...]
    palette: Callable[[], np.ndarray]
    hub_id: str
    recipe: str


_REFERENCE_OPTIMISER = ("SGD momentum 0.9, weight decay 1e-4, lr {lr} x batch/8 x GPUs with 10x on head, neck and "
                        "aux; 200 warm-up iterations, then poly (power 0.9); aux loss weight 0.4.")

DATASETS: dict[str, ZooDataset] = {dataset.key: dataset for dataset in (
    ZooDataset("voc", "Pascal VOC 2012 val", (480, 480), VOC_CLASSES, voc_palette, "pascal-voc-2012",
               "Pascal VOC 2012 train_aug (10,582 images), 50 epochs; base size 540, crop 480; "
               + _REFERENCE_OPTIMISER.format(lr="0.001")),
    ZooDataset("citys", "Cityscapes val", (1024, 2048), CITYSCAPES_CLASSES, cityscapes_palette, "cityscapes",
               "Cityscapes fine train (2,975 images), 120 epochs; base size 1024, crop 768; "
               + _REFERENCE_OPTIMISER.format(lr="0.01")),
    ZooDataset("ade", "ADE20K val", (480, 480), ADE20K_CLASSES, ade20k_palette, "ade20k",
               "ADE20K train (20,210 images); base size 520, crop 480; the reference recipe (SGD, poly schedule)."),
    # torchvision's segmentation models: COCO images labelled with the 20 Pascal VOC categories (+ background)
    ZooDataset("coco_voc", "COCO val2017, the 20 Pascal VOC categories", (520, 520), VOC_CLASSES, voc_palette,
               "coco", "COCO train2017 with the 20 Pascal VOC categories, torchvision's segmentation reference "
               "recipe (SGD, poly schedule, aux loss weight 0.5; github.com/pytorch/vision, references/segmentation)."),
)}


# mmsegmentation's datasets: class names and palettes as mmseg's dataset classes define them (``mmseg_datasets.json``,
# read on first use), the split its model zoo reports, the size its models are evaluated at, the Hub dataset id.
_MMSEG_DATASETS = (  # (key, name in mmseg's model zoo, evaluation split, evaluation size, Hub id)
    ("mmseg_cityscapes", "Cityscapes", "Cityscapes val", (1024, 2048), "cityscapes"),
    ("mmseg_ade20k", "ADE20K", "ADE20K val (short side 512)", (512, 512), "ade20k"),
    ("mmseg_voc_aug", "Pascal VOC 2012 + Aug", "Pascal VOC 2012 val (short side 512)", (512, 512), "pascal-voc-2012"),
    ("mmseg_context", "Pascal Context", "Pascal Context val (60 classes)", (480, 480), "pascal-context"),
    ("mmseg_context59", "Pascal Context 59", "Pascal Context val (59 classes)", (480, 480), "pascal-context"),
    ("mmseg_coco_stuff164k", "COCO-Stuff 164k", "COCO-Stuff 164k val", (512, 512), "coco-stuff"),
    ("mmseg_coco_stuff10k", "COCO-Stuff 10k", "COCO-Stuff 10k test", (512, 512), "coco-stuff"),
    ("mmseg_loveda", "LoveDA", "LoveDA val", (1024, 1024), "loveda"),
    ("mmseg_potsdam", "Potsdam", "ISPRS Potsdam test", (512, 512), "isprs-potsdam"),
    ("mmseg_vaihingen", "Vaihingen", "ISPRS Vaihingen test", (512, 512), "isprs-vaihingen"),
    ("mmseg_isaid", "iSAID", "iSAID val", (896, 896), "isaid"),
)


def _mmseg_facts() -> dict:
    import json
    from importlib import resources

    return json.loads(resources.files("segzoo.zoo").joinpath("mmseg_datasets.json").read_text())


def _mmseg_datasets() -> dict[str, ZooDataset]:
    facts = _mmseg_facts()
    datasets = {}
    for key, name, split, size, hub_id in _MMSEG_DATASETS:
        palette = np.asarray(facts[name]["palette"], dtype=np.uint8)
        datasets[key] = ZooDataset(
            key, split, size, tuple(facts[name]["classes"]), lambda palette=palette: palette.copy(), hub_id,
            f"mmsegmentation's recipe for {name} (its config of the model: SGD, poly schedule, aux loss weight 0.4, "
            "SyncBN, random scale 0.5-2.0, crop, flip, photometric distortion).")
    return datasets


DATASETS.update(_mmseg_datasets())


def get_dataset(key: str) -> ZooDataset:
    """The zoo dataset ``key``; ``UnknownModelError`` with the known keys otherwise."""
    if key not in DATASETS:
        raise UnknownModelError(f"Unknown zoo dataset {key!r}; known: {', '.join(DATASETS)}."
                                f"{did_you_mean(key, DATASETS)}")
    return DATASETS[key]


def dataset_of_classes(class_names: Optional[tuple[str, ...]], num_classes: int) -> Optional[ZooDataset]:
    """The zoo dataset with exactly these class names (or, without names, with this many classes), if any."""
    for dataset in DATASETS.values():
        if class_names == dataset.class_names or (class_names is None and num_classes == len(dataset.class_names)):
            return dataset
    return None


def palette_for(config) -> np.ndarray:
    """The palette of a model: its config's ``palette`` when it has one (mmseg's zoo entries: their dataset's
    official palette), else its dataset's, from its ``class_names`` (or ``num_classes`` without names).

    VOC's 21 classes -> ``voc_palette()``, Cityscapes' 19 -> ``cityscapes_palette()``, ADE20K's 150 ->
    ``ade20k_palette()``; anything else (including other names for 21 / 19 / 150 classes) ->
    ``generic_palette(num_classes)``.
    """
    if getattr(config, "palette", None) is not None:
        return np.asarray(config.palette, dtype=np.uint8)
    names = tuple(config.class_names) if config.class_names is not None else None
    dataset = dataset_of_classes(names, config.num_classes)
    return dataset.palette() if dataset is not None else generic_palette(config.num_classes)
