"""Segmentation heads. Each head is a plug-in declared in the ``segzoo.heads`` entry-point group
(see pyproject.toml); importing this package does not register anything."""
from .base import SegmentationHead

__all__ = ["SegmentationHead"]
