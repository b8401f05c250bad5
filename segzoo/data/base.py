"""``SegmentationDataset``: the base of every dataset, with the checks every sample goes through."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch.utils.data

from ..config import default_mean_std
from ..errors import DatasetError, SegzooError
from ..inference.image_io import image_shape, load_image
from ..weights.cache import cache_dir
from ..weights.checkpoint import atomic_write
from .masks import read_mask
from .transforms import EvalTransform

__all__ = ["SegmentationDataset", "check_in_chans", "data_root", "find_missing"]

ENV_DATA_ROOT = "SEGZOO_DATA"
_MAX_BAD_VALUES = 10
_SCAN_FORMAT, _SCAN_VERSION = "segzoo-data-scan", 1


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


def _label_error(dataset_name: str, num_classes: int, ignore_index: int, mask_path: Path,
                 values: np.ndarray) -> DatasetError:
    """The error of a mask holding ``values`` (as stored) that are neither labels nor ``ignore_index``."""
    shown = ", ".join(str(v) for v in values[:_MAX_BAD_VALUES])
    more = f" (and {len(values) - _MAX_BAD_VALUES} more)" if len(values) > _MAX_BAD_VALUES else ""
    return DatasetError(
        f"mask {mask_path} holds values {shown}{more} that are not labels of {dataset_name}: after mapping, "
        f"labels must lie in 0..{num_classes - 1} or be {ignore_index} (ignore)")


def _size_error(image_path: Path, image_shape, mask_path: Path, mask_shape) -> DatasetError:
    return DatasetError(
        f"image {image_path} is {image_shape[0]}x{image_shape[1]} (height x width) but its mask "
        f"{mask_path} is {mask_shape[0]}x{mask_shape[1]}; they must be the same size")


def check_in_chans(in_chans) -> int:
    """``in_chans`` if it is an integer >= 1 (the bands images are read with), else a one-line DatasetError."""
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise DatasetError(f"in_chans must be an integer >= 1 (3 for RGB), got {in_chans!r}")
    return in_chans


def _stamp(path: Path) -> list[int]:
    """What tells a changed file from the scanned one: its size and modification time (ns)."""
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def _image_shape(path: Path) -> list[int]:
    """(height, width) of an image as ``load_image`` gives it (EXIF orientation applied), from its header only."""
    return list(image_shape(path))


def _mask_values(path: Path) -> dict:
    """The shape and the distinct values (as stored) of a mask: what ``load`` checks, in a few numbers."""
    raw = read_mask(path)
    flat = raw.ravel()
    if flat.size and 0 <= flat.min() and flat.max() < 1 << 16:  # a histogram is much cheaper than a sort
        values = np.flatnonzero(np.bincount(flat))
    else:
        values = np.unique(flat)
    return {"shape": list(raw.shape), "values": values.tolist()}


class _ScanCache:
    """What earlier scans found, per file, keyed by path and valid while the file's size and mtime are unchanged."""

    def __init__(self, files: Sequence[Path]):
        try:  # one cache file per dataset folder: its splits share it
            root = os.path.commonpath([str(path.resolve().parent) for path in files]) if files else ""
        except ValueError:  # files on several Windows drives
            root = ""
        key = hashlib.sha256(root.encode()).hexdigest()[:16]
        self.path = cache_dir() / "data-scan" / f"{key}.json"
        self.entries: dict[str, dict] = {}
        try:
            document = json.loads(self.path.read_text())
            if document.get("format") == _SCAN_FORMAT and document.get("version") == _SCAN_VERSION:
                self.entries = dict(document["files"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no cache yet, or a damaged one: scan afresh
        self.changed = False

    def get(self, path: Path, compute: Callable[[Path], object]):
        """The cached result for ``path``, or ``compute(path)`` (then remembered)."""
        try:
            key, stamp = str(path.resolve()), _stamp(path)
        except OSError as err:
            raise DatasetError(f"cannot read {path}: {err.strerror or err}") from None
        entry = self.entries.get(key)
        if isinstance(entry, dict) and entry.get("stamp") == stamp:
            return entry["result"]
        result = compute(path)
        self.entries[key] = {"stamp": stamp, "result": result}
        self.changed = True
        return result

    def save(self) -> None:
        if not self.changed:
            return
        document = {"format": _SCAN_FORMAT, "version": _SCAN_VERSION, "files": self.entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, lambda tmp: Path(tmp).write_text(json.dumps(document)))
        except OSError as err:  # a read-only cache must not stop training; the next run scans again
            warnings.warn(f"could not save the data scan to {self.path}: {err}", stacklevel=3)


class SegmentationDataset(torch.utils.data.Dataset):
    """A list of (image, mask) file pairs, read, label-mapped, validated and transformed on access.

    Subclasses find the files and set ``name``, ``num_classes`` and ``class_names``; they override
    :meth:`map_labels` when the values on disk are not the training ids.

    Args:
        files: ``(image path, mask path)`` pairs; they are sorted so the order does not depend on the file system.
        split: The split's name.
        transform: ``callable(image (H, W, in_chans), mask int64 (H, W)) -> (image, mask)``; the image is what
            :func:`~segzoo.inference.image_io.load_image` gives: RGB uint8 for ``in_chans=3``, else uint8 or
            float32 in [0, 1]. ``None`` gives an :class:`EvalTransform` in ``"testval"`` mode (the full image,
            normalised with ``default_mean_std(in_chans)``: ImageNet's for RGB), so items are tensors either way;
            :func:`segzoo.data.create_dataset` picks the split's recipe instead.
        in_chans: The bands images are read with (the model's ``in_chans``): 3 for RGB, 1 for greyscale, N for
            multispectral images (``load_image``: which files give which bands, and how they are scaled).
    """

    name: str = "dataset"
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    ignore_index: int = 255
    in_chans: int = 3

    def __init__(self, files: Sequence[tuple[Path, Path]], split: str,
                 transform: Callable | None = None, in_chans: int = 3) -> None:
        check_in_chans(in_chans)
        self.files: list[tuple[Path, Path]] = sorted((Path(i), Path(m)) for i, m in files)
        self.split = split
        self.in_chans = in_chans
        if transform is None:
            mean, std = default_mean_std(in_chans)
            transform = EvalTransform(mean=mean, std=std, ignore_index=self.ignore_index)
        self.transform = transform

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
            ``(image, mask)``: an ``(H, W, in_chans)`` array (RGB uint8 for ``in_chans=3``; see ``load_image``) and
            an ``(H, W)`` int64 array of training ids.

        Raises:
            ImageReadError: The image cannot be read, or has other bands than ``in_chans`` (the message names it).
            DatasetError: The mask cannot be read, its size differs from the image's, or it holds values that
                are neither a class (``0 .. num_classes - 1``) nor ``ignore_index``.
        """
        image_path, mask_path = self.files[index]
        image = load_image(image_path, in_chans=self.in_chans)
        raw = read_mask(mask_path)
        if image.shape[:2] != raw.shape:
            raise _size_error(image_path, image.shape, mask_path, raw.shape)
        mask = np.asarray(self.map_labels(raw), dtype=np.int64)
        # Cheap vectorised test first; np.unique (a sort) only runs on the rare bad mask.
        bad = self._bad(mask)
        if bad.any():
            # the values as stored, which is what the user can look for
            raise _label_error(self.name, self.num_classes, self.ignore_index, mask_path, np.unique(raw[bad]))
        return image, mask

    def _bad(self, labels: np.ndarray) -> np.ndarray:
        """Where mapped ``labels`` are neither a class nor ``ignore_index``."""
        return (labels < 0) | ((labels >= self.num_classes) & (labels != self.ignore_index))

    def check(self, workers: int | None = None) -> None:
        """Check every pair the way :meth:`load` does, before training rather than when a batch needs it.

        Each mask is decoded once to find its distinct values and its size, each image's size is read from
        its header; a bad value in the last validation mask then stops the run before the first iteration
        instead of after the last. What was found is cached in segzoo's cache folder (``SEGZOO_CACHE``) per
        file, keyed by path, size and modification time, so a second run reads only the files that changed.
        Image pixels are not decoded: a corrupt image body still surfaces when it is read.

        Args:
            workers: Threads reading files (default: up to 8); Pillow decodes without holding the GIL.

        Raises:
            DatasetError: The first bad pair, as :meth:`load` would report it, and how many others are bad.
        """
        cache = _ScanCache([path for pair in self.files for path in pair])
        workers = workers or min(8, os.cpu_count() or 1)
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                problems = [problem for problem in pool.map(lambda pair: self._check_pair(*pair, cache),
                                                            self.files) if problem is not None]
        finally:
            cache.save()  # what was scanned stays scanned, even when a file was bad
        if problems:
            more = f" ({len(problems) - 1} more of the {len(self)} pairs of split '{self.split}' are bad too)" \
                if len(problems) > 1 else ""
            raise DatasetError(f"{problems[0]}{more}")

    def _check_pair(self, image_path: Path, mask_path: Path, cache: _ScanCache) -> str | None:
        """What is wrong with one pair (one line), or None."""
        try:
            image_shape = cache.get(image_path, _image_shape)
            found = cache.get(mask_path, _mask_values)
        except SegzooError as err:  # unreadable, corrupt, a colour mask: the reader names the file
            return str(err)
        if list(image_shape) != list(found["shape"]):
            return str(_size_error(image_path, image_shape, mask_path, found["shape"]))
        values = np.asarray(found["values"], dtype=np.int64)
        bad = self._bad(np.asarray(self.map_labels(values[None, :]), dtype=np.int64)[0])
        if bad.any():
            return str(_label_error(self.name, self.num_classes, self.ignore_index, mask_path, values[bad]))
        return None
