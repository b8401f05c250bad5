"""The datasets the zoo's models were trained on: every upstream plug-in's (``segzoo.upstreams``), by key.

Each upstream declares its own (classes, palette, evaluation split and size, Hub id, training recipe);
``DATASETS`` reads them all on first use and again after the plug-ins are refreshed.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Optional

import numpy as np

from ..errors import UnknownModelError, did_you_mean
from ..registry import registry_generation
from ..upstreams import ZooDataset, zoo_datasets
from ..upstreams.palettes import generic_palette

__all__ = ["ZooDataset", "DATASETS", "get_dataset", "dataset_of_classes", "palette_for"]


class _Datasets(Mapping):
    """Every upstream's datasets by key, read when first used and whenever the plug-ins were refreshed."""

    _cache: tuple[int, dict[str, ZooDataset]] = (-1, {})

    def _all(self) -> dict[str, ZooDataset]:
        if self._cache[0] != registry_generation():
            self._cache = (registry_generation(), zoo_datasets())
        return self._cache[1]

    def __getitem__(self, key: str) -> ZooDataset:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


DATASETS: Mapping[str, ZooDataset] = _Datasets()


def get_dataset(key: str) -> ZooDataset:
    """The zoo dataset ``key``; ``UnknownModelError`` with the known keys otherwise."""
    if key not in DATASETS:
        raise UnknownModelError(f"Unknown zoo dataset {key!r}; known: {', '.join(DATASETS)}."
                                f"{did_you_mean(key, list(DATASETS))}")
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
