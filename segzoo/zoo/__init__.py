"""The zoo: named, trained models (collected from the heads), their datasets' classes and palettes, and the
publishing manifest."""
from ..upstreams.class_names import ADE20K_CLASSES, CITYSCAPES_CLASSES, DATASET_CLASSES, VOC_CLASSES
from ..upstreams.palettes import ade20k_palette, cityscapes_palette, generic_palette, voc_palette
from .datasets import DATASETS, ZooDataset, get_dataset, palette_for
from .licences import OPEN_LICENSES, license_flag
from .manifest import MANIFEST_ENV, read_manifest
from .table import (
                    HUB_ORGANISATION,
                    PretrainedEntry,
                    canonical_zoo_name,
                    find_pretrained_entry,
                    get_pretrained,
                    is_pretrained_name,
                    list_pretrained,
                    zoo_names,
)

__all__ = [
    "ADE20K_CLASSES", "CITYSCAPES_CLASSES", "DATASET_CLASSES", "VOC_CLASSES",
    "DATASETS", "ZooDataset", "get_dataset", "palette_for",
    "MANIFEST_ENV", "read_manifest", "OPEN_LICENSES", "license_flag",
    "ade20k_palette", "cityscapes_palette", "generic_palette", "voc_palette",
    "HUB_ORGANISATION", "PretrainedEntry", "canonical_zoo_name", "find_pretrained_entry", "get_pretrained",
    "is_pretrained_name", "list_pretrained", "zoo_names",
]
