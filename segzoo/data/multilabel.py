"""``MultiLabelFolderDataset``: images with one binary mask per label (a pixel may have several labels, or none)."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DatasetError, SegzooError, read_utf8
from ..inference.image_io import ARRAY_EXTENSIONS, IMAGE_EXTENSIONS, load_image
from .base import SegmentationDataset, _image_shape, _mask_values, _ScanCache, _size_error
from .masks import read_mask

__all__ = ["MULTILABEL_LAYOUT", "MultiLabelFolderDataset"]

_READABLE = IMAGE_EXTENSIONS + ARRAY_EXTENSIONS  # images, and .npy arrays of N bands

MULTILABEL_LAYOUT = """expected layout (the split level is present only when split= is given):
    <root>/
        classes.txt                          one label name per line (default: the sub-folders of <mask_dir>)
        <image_dir>/[<split>/]<name>.jpg|.png|...
        <mask_dir>/[<split>/]<label>/<name>.png   one binary mask per label: 0 absent, 1 or 255 present
      or
        <mask_dir>/[<split>/]<name>.npy           an (H, W, labels) array of 0 / 1"""

_MAX_LISTED = 5


class MultiLabelFolderDataset(SegmentationDataset):
    """Multi-label segmentation data in a folder: every image has one binary mask per label.

    Masks are read as image tools write them: 0 is "label absent", any other value (1, or 255 in 0/255 masks)
    "present", except ``ignore_value`` (if given), which marks pixels whose label is unknown. Items are
    ``(image, mask)`` with an ``(L, H, W)`` int64 mask of 0 / 1 / ``ignore_index`` (``load`` gives ``(H, W, L)``).

    Args:
        root: The dataset folder.
        split: A sub-folder of ``image_dir`` and ``mask_dir`` (None: the files lie directly in them).
        image_dir: The images' folder, relative to ``root``.
        mask_dir: The masks' folder, relative to ``root``.
        class_names: The label names in channel order; else ``<root>/classes.txt``; else the sub-folders of the
            mask folder, sorted (per-label PNG layout only).
        ignore_value: The stored mask value of pixels to ignore (None: every non-zero value is "present").
        ignore_index: The training ids' ignore value.
        transform: See :class:`SegmentationDataset`.
        num_classes: The number of labels, checked against the names when given.
        in_chans: The bands images are read with (the model's ``in_chans``), see :class:`SegmentationDataset`.

    Raises:
        DatasetError: The folders are missing, an image lacks a mask of some label, an array has another number
            of labels, or no label names can be found.
    """

    name = "folder"
    task = "multilabel"

    def __init__(self, root: str | os.PathLike, split: str | None = None, image_dir: str = "images",
                 mask_dir: str = "masks", class_names: Sequence[str] | None = None, ignore_value: int | None = None,
                 ignore_index: int = 255, transform: Callable | None = None, num_classes: int | None = None,
                 in_chans: int = 3) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"folder dataset root {self.root} does not exist or is not a directory\n"
                               f"{MULTILABEL_LAYOUT}")
        images_at = self.root / image_dir / split if split else self.root / image_dir
        self.masks_at = self.root / mask_dir / split if split else self.root / mask_dir
        if not images_at.is_dir() or not self.masks_at.is_dir():
            raise DatasetError(f"image folder {images_at} or mask folder {self.masks_at} not found\n"
                               f"{MULTILABEL_LAYOUT}")
        images = sorted(p for p in images_at.iterdir() if p.is_file() and p.suffix.lower() in _READABLE)
        if not images:
            raise DatasetError(f"no images ({', '.join(_READABLE)}) in {images_at}\n{MULTILABEL_LAYOUT}")
        self.arrays = any(p.suffix == ".npy" for p in self.masks_at.iterdir())
        self.class_names = self._label_names(class_names)
        if num_classes is not None and num_classes != len(self.class_names):
            raise DatasetError(f"num_classes={num_classes} but {len(self.class_names)} labels were given / found")
        self.num_classes = len(self.class_names)
        self.ignore_value, self.ignore_index = ignore_value, int(ignore_index)
        # the "mask path" of an item: its .npy, or <mask_dir>/<name> whose per-label files are <label>/<name>.png
        files = [(p, self.masks_at / (f"{p.stem}.npy" if self.arrays else p.stem)) for p in images]
        missing = [str(path) for _, mask in files for path in self._mask_files(mask) if not path.is_file()]
        if missing:
            shown = "\n    ".join(missing[:_MAX_LISTED])
            more = f"\n    ... and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
            raise DatasetError(f"{len(missing)} mask file(s) missing for the images in {images_at}:\n    "
                               f"{shown}{more}\n{MULTILABEL_LAYOUT}")
        super().__init__(files, split or "all", transform, in_chans=in_chans)

    def _label_names(self, class_names: Sequence[str] | None) -> tuple[str, ...]:
        if class_names is not None:
            names = tuple(str(name) for name in class_names)
        elif (self.root / "classes.txt").is_file():
            text = read_utf8(self.root / "classes.txt", DatasetError, "one label name per line")
            names = tuple(line.strip() for line in text.splitlines() if line.strip())
        elif not self.arrays:
            names = tuple(sorted(p.name for p in self.masks_at.iterdir() if p.is_dir()))
        else:
            names = ()
        if not names:
            raise DatasetError(f"no labels for the multi-label dataset {self.root}: write classes.txt (one label "
                               f"per line) or pass class_names=[...]\n{MULTILABEL_LAYOUT}")
        return names

    def _mask_files(self, mask: Path) -> list[Path]:
        return [mask] if self.arrays else [self.masks_at / label / f"{mask.name}.png" for label in self.class_names]

    def _read_stored(self, mask: Path) -> np.ndarray:
        """The stored values, ``(H, W, L)`` int64."""
        if not self.arrays:
            return np.stack([read_mask(path) for path in self._mask_files(mask)], axis=-1)
        try:
            values = np.load(mask, allow_pickle=False)  # never unpickle: a plain numeric array only
        except (OSError, ValueError) as err:
            raise DatasetError(f"mask {mask} cannot be read as a numpy array: {err}") from None
        if values.ndim != 3 or values.shape[-1] != self.num_classes or not np.issubdtype(values.dtype, np.number):
            raise DatasetError(f"mask {mask} is a {values.dtype} array of shape {values.shape}; expected (H, W, "
                               f"{self.num_classes}) numbers, one channel per label ({', '.join(self.class_names)})")
        return values.astype(np.int64)

    def map_labels(self, raw: np.ndarray) -> np.ndarray:
        """0 absent, other values present (1), ``ignore_value`` ignored."""
        labels = (raw != 0).astype(np.int64)
        if self.ignore_value is not None:
            labels[raw == self.ignore_value] = self.ignore_index
        return labels

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image (H, W, in_chans), labels (H, W, L) int64 of 0 / 1 / ignore_index)`` of item ``index``; the
        transforms turn the labels into ``(L, H, W)``."""
        image_path, mask = self.files[index]
        image = load_image(image_path, in_chans=self.in_chans)
        raw = self._read_stored(mask)
        if image.shape[:2] != raw.shape[:2]:
            raise _size_error(image_path, image.shape, mask, raw.shape)
        return image, self.map_labels(raw)

    def _check_pair(self, image_path: Path, mask: Path, cache: _ScanCache) -> str | None:
        """Sizes only: every stored value is a valid mask value (0 / other / ignore_value)."""
        try:
            image_shape = cache.get(image_path, _image_shape)
            if self.arrays:  # cached like the PNGs: a second scan reads only the arrays that changed
                shapes = [cache.get(mask, lambda path: list(self._read_stored(path).shape))]
            else:
                shapes = [cache.get(path, _mask_values)["shape"] for path in self._mask_files(mask)]
        except SegzooError as err:
            return str(err)
        for shape in shapes:
            if list(image_shape) != list(shape[:2]):
                return str(_size_error(image_path, image_shape, mask, shape))
        return None

