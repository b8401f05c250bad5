"""Necks: modules between the backbone and the head. Each is a plug-in declared in the ``segzoo.necks``
entry-point group (see pyproject.toml); importing this package does not register anything."""
from .base import SegmentationNeck

__all__ = ["SegmentationNeck"]
