"""``FolderDataset``: any dataset laid out as a folder of images beside a folder of label-index PNG masks."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DatasetError, read_utf8
from ..inference.image_io import ARRAY_EXTENSIONS, IMAGE_EXTENSIONS
from .base import SegmentationDataset

__all__ = ["FOLDER_LAYOUT", "FolderDataset"]

_READABLE = IMAGE_EXTENSIONS + ARRAY_EXTENSIONS  # images, and .npy arrays of N bands

FOLDER_LAYOUT = """expected layout (the split level is present only when split= is given):
    <root>/
        classes.txt                      one class name per line (or pass class_names= / num_classes=)
        <image_dir>/[<split>/]<name>.jpg|.png|...
        <mask_dir>/[<split>/]<name>.png    single-channel label indices, same size as the image
                                           (task="binary": 0 background, 1 or 255 foreground)"""

_MAX_LISTED = 5


def _class_names(root: Path, class_names: Sequence[str] | None, num_classes: int | None) -> tuple[str, ...]:
    classes_file = root / "classes.txt"
    if class_names is not None:
        names = tuple(str(n) for n in class_names)
    elif classes_file.is_file():
        # Blank lines (a trailing newline, say) are not classes.
        text = read_utf8(classes_file, DatasetError, "one class name per line")
        names = tuple(line.strip() for line in text.splitlines() if line.strip())
        if not names:
            raise DatasetError(f"{classes_file} holds no class names (one name per line expected)")
    elif num_classes is not None:
        names = tuple(f"class_{i}" for i in range(int(num_classes)))
    else:
        raise DatasetError(f"no classes for the folder dataset {root}: pass class_names=[...] or num_classes=N, "
                           f"or write {classes_file} with one class name per line")
    if not names:
        raise DatasetError("the folder dataset needs at least one class")
    if num_classes is not None and int(num_classes) != len(names):
        raise DatasetError(f"num_classes={num_classes} but {len(names)} class names were given / found")
    return names


class FolderDataset(SegmentationDataset):
    """Images in ``<root>/<image_dir>[/<split>]`` paired by file stem with masks in ``<root>/<mask_dir>[/<split>]``.

    Masks hold the training ids directly (``0 .. num_classes - 1``, ``ignore_index`` to ignore). With
    ``task="binary"`` they are foreground masks as image tools write them: 0 is background and any other value
    (1, or 255 in 0/255 masks) is foreground, except ``ignore_value`` if given; the dataset has one class.

    Args:
        root: The dataset folder itself.
        split: A sub-folder of ``image_dir`` and ``mask_dir`` (``None``: the images lie directly in ``image_dir``).
        image_dir: The images' folder, relative to ``root``.
        mask_dir: The masks' folder, relative to ``root``.
        class_names: The class names in label order; else ``<root>/classes.txt``, else ``num_classes``.
        num_classes: The number of classes when no names are known (names ``class_0`` ...); checked against
            the names when both are known.
        ignore_index: The mask value of pixels to ignore (multiclass); the training ids' ignore value (all modes).
        task: ``"multiclass"`` (label-index masks) or ``"binary"`` (foreground masks, see above), as the model's
            ``config.mode``.
        in_chans: The bands images are read with (the model's ``in_chans``), see :class:`SegmentationDataset`.
        ignore_value: Binary masks: the stored value of pixels to ignore (None: every non-zero value is
            foreground).
        transform: See :class:`SegmentationDataset`.

    Raises:
        DatasetError: The folders are missing or hold no images, an image has no mask, two images share a
            stem, or no class names / count can be found.
    """

    name = "folder"

    def __init__(self, root: str | os.PathLike, split: str | None = None, image_dir: str = "images",
                 mask_dir: str = "masks", class_names: Sequence[str] | None = None,
                 num_classes: int | None = None, ignore_index: int = 255,
                 transform: Callable | None = None, task: str = "multiclass",
                 ignore_value: int | None = None, in_chans: int = 3) -> None:
        if task not in ("multiclass", "binary"):
            raise DatasetError(f"folder dataset task must be 'multiclass' or 'binary', got {task!r} (multi-label "
                               f"data: MultiLabelFolderDataset)")
        self.task, self.ignore_value = task, ignore_value
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"folder dataset root {self.root} does not exist or is not a directory\n"
                               f"{FOLDER_LAYOUT}")
        images_at = self.root / image_dir / split if split else self.root / image_dir
        masks_at = self.root / mask_dir / split if split else self.root / mask_dir
        if not images_at.is_dir():
            raise DatasetError(f"image folder {images_at} not found\n{FOLDER_LAYOUT}")
        images = sorted(p for p in images_at.iterdir() if p.is_file() and p.suffix.lower() in _READABLE)
        if not images:
            raise DatasetError(f"no images ({', '.join(_READABLE)}) in {images_at}\n{FOLDER_LAYOUT}")
        by_stem: dict[str, Path] = {}
        for path in images:
            if path.stem in by_stem:
                raise DatasetError(f"images {by_stem[path.stem]} and {path} share the stem {path.stem!r}, "
                                   f"so they would share the mask {masks_at / (path.stem + '.png')}")
            by_stem[path.stem] = path
        files = [(p, masks_at / f"{p.stem}.png") for p in images]
        missing = [m for _, m in files if not m.is_file()]
        if missing:
            shown = "\n    ".join(str(m) for m in missing[:_MAX_LISTED])
            more = f"\n    ... and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
            raise DatasetError(f"{len(missing)} of {len(files)} images in {images_at} have no mask:\n    "
                               f"{shown}{more}\n{FOLDER_LAYOUT}")
        # Instance attributes shadow the class defaults before the base class builds the default transform.
        if task == "binary" and class_names is None and not (self.root / "classes.txt").is_file():
            class_names = ("foreground",)  # one output channel; classes.txt may name it
        self.class_names = _class_names(self.root, class_names, num_classes)
        if task == "binary" and len(self.class_names) != 1:
            raise DatasetError(f"a binary folder dataset has one class (the foreground), got {len(self.class_names)}"
                               f" names: {', '.join(self.class_names)}")
        self.num_classes = len(self.class_names)
        self.ignore_index = int(ignore_index)
        super().__init__(files, split or "all", transform, in_chans=in_chans)

    def map_labels(self, raw: np.ndarray) -> np.ndarray:
        """Binary masks: 0 background, other values foreground (1), ``ignore_value`` ignored; else unchanged."""
        if self.task != "binary":
            return raw
        labels = (raw != 0).astype(np.int64)
        if self.ignore_value is not None:
            labels[raw == self.ignore_value] = self.ignore_index
        return labels

    def _bad(self, labels: np.ndarray) -> np.ndarray:
        if self.task != "binary":
            return super()._bad(labels)
        return (labels != 0) & (labels != 1) & (labels != self.ignore_index)  # one class: training ids 0 / 1
