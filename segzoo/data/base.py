"""``SegmentationDataset``: the base of every dataset, with the checks every sample goes through."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch.utils.data

from ..errors import DatasetError
from ..inference.image_io import load_image
from .masks import read_mask
from .transforms import EvalTransform

__all__ = ["SegmentationDataset", "data_root", "find_missing"]

ENV_DATA_ROOT = "SEGZOO_DATA"
_MAX_BAD_VALUES = 10


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The directory that holds the datasets.

    Args:
        root: An explicit directory; when ``None``, the ``SEGZOO_DATA`` environment variable is used.

    Returns:
        The directory as a :class:`pathlib.Path` (``~`` expanded).

    Raises:
        DatasetError: Neither ``root`` nor ``SEGZOO_DATA`` is given, or the directory does not exist.
    """
    source = "root"
    if root is None:
        root = os.environ.get(ENV_DATA_ROOT) or None  # an empty variable counts as unset
        source = f"${ENV_DATA_ROOT}"
        if root is None:
            raise DatasetError(f"no data root: pass root=... or set {ENV_DATA_ROOT}")
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise DatasetError(f"data root {path} (from {source}) {what}")
    return path


def find_missing(files: list[tuple[Path, Path]], what: str, limit: int = 5) -> None:
    """Raise a DatasetError naming up to ``limit`` missing files of ``(image, mask)`` pairs.

    Args:
        files: The pairs to check.
        what: Where the pairs come from, for the message (e.g. ``"voc split train"``).
        limit: How many missing paths the message names.

    Raises:
        DatasetError: At least one image or mask file does not exist.
    """
    missing = [p for pair in files for p in pair if not p.is_file()]
    if missing:
        shown = "\n    ".join(str(p) for p in missing[:limit])
        more = f"\n    ... and {len(missing) - limit} more" if len(missing) > limit else ""
        raise DatasetError(f"{what}: {len(missing)} listed file(s) missing:\n    {shown}{more}")


class SegmentationDataset(torch.utils.data.Dataset):
    """A list of (image, mask) file pairs, read, label-mapped, validated and transformed on access.

    Subclasses find the files and set ``name``, ``num_classes`` and ``class_names``; they override
    :meth:`map_labels` when the values on disk are not the training ids.

    Args:
        files: ``(image path, mask path)`` pairs; they are sorted so the order does not depend on the file system.
        split: The split's name.
        transform: ``callable(rgb uint8 (H, W, 3), mask int64 (H, W)) -> (image, mask)``. ``None`` gives an
            :class:`EvalTransform` in ``"testval"`` mode (the full image, ImageNet-normalised), so items are
            tensors either way; :func:`segzoo.data.create_dataset` picks the split's recipe instead.
    """

    name: str = "dataset"
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    ignore_index: int = 255

    def __init__(self, files: Sequence[tuple[Path, Path]], split: str,
                 transform: Callable | None = None) -> None:
        self.files: list[tuple[Path, Path]] = sorted((Path(i), Path(m)) for i, m in files)
        self.split = split
        self.transform = transform if transform is not None else EvalTransform(ignore_index=self.ignore_index)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        """The transformed ``(image, mask)`` of item ``index`` (tensors with the Train/Eval transforms)."""
        image, mask = self.load(index)
        return self.transform(image, mask)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, items={len(self)}, "
                f"num_classes={self.num_classes}, ignore_index={self.ignore_index})")

    def map_labels(self, raw: np.ndarray) -> np.ndarray:
        """Map the mask values stored on disk to training ids (``ignore_index`` for pixels to ignore).

        Args:
            raw: The ``(H, W)`` int64 values read from the mask file.

        Returns:
            The ``(H, W)`` int64 training ids. The base class stores training ids on disk: identity.
        """
        return raw

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Read item ``index`` without transforming it, with its labels mapped and checked.

        Args:
            index: The item's position in :attr:`files`.

        Returns:
            ``(rgb, mask)``: an ``(H, W, 3)`` uint8 array and an ``(H, W)`` int64 array of training ids.

        Raises:
            ImageReadError: The image cannot be read (the message names it).
            DatasetError: The mask cannot be read, its size differs from the image's, or it holds values that
                are neither a class (``0 .. num_classes - 1``) nor ``ignore_index``.
        """
        image_path, mask_path = self.files[index]
        rgb = load_image(image_path)
        raw = read_mask(mask_path)
        if rgb.shape[:2] != raw.shape:
            raise DatasetError(
                f"image {image_path} is {rgb.shape[0]}x{rgb.shape[1]} (height x width) but its mask "
                f"{mask_path} is {raw.shape[0]}x{raw.shape[1]}; they must be the same size")
        mask = np.asarray(self.map_labels(raw), dtype=np.int64)
        # Cheap vectorised test first; np.unique (a sort) only runs on the rare bad mask.
        bad = (mask < 0) | ((mask >= self.num_classes) & (mask != self.ignore_index))
        if bad.any():
            values = np.unique(raw[bad])  # the values as stored, which is what the user can look for
            shown = ", ".join(str(v) for v in values[:_MAX_BAD_VALUES])
            more = f" (and {len(values) - _MAX_BAD_VALUES} more)" if len(values) > _MAX_BAD_VALUES else ""
            raise DatasetError(
                f"mask {mask_path} holds values {shown}{more} that are not labels of {self.name}: after mapping, "
                f"labels must lie in 0..{self.num_classes - 1} or be {self.ignore_index} (ignore)")
        return rgb, mask
