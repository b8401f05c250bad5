"""Class names of the zoo's datasets: kept here for old imports; they live with the upstreams' datasets
(``segzoo.upstreams.class_names``)."""
from ..upstreams.class_names import ADE20K_CLASSES, CITYSCAPES_CLASSES, DATASET_CLASSES, VOC_CLASSES

__all__ = ["VOC_CLASSES", "CITYSCAPES_CLASSES", "ADE20K_CLASSES", "DATASET_CLASSES"]
