"""``predict``: segment image files with a model and write masks, overlays and class-map arrays."""
from __future__ import annotations

import contextlib
import glob
import math
import numbers
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..distributed import resolve_device
from ..errors import ConfigError, ImageReadError, OutputError, SegzooError
from ..factory import create_model
from ..files import lock_folder, output_error
from ..weights.checkpoint import atomic_write
from ..zoo import generic_palette, is_pretrained_name, palette_for
from .decode import decode_logits
from .image_io import ARRAY_EXTENSIONS, IMAGE_EXTENSIONS, display_rgb, load_image, to_tensor
from .path_choice import PathChooser
from .paths import candidate_paths, default_runtime, usable_paths
from .tta import predict_logits, recipe_options
from .visualize import colorize, overlay, overlay_labels

__all__ = ["predict", "PredictResult", "collect_inputs", "load_calibration_images"]

_READABLE = IMAGE_EXTENSIONS + ARRAY_EXTENSIONS  # images, and .npy arrays of N bands

PathLike = Union[str, os.PathLike]
_GLOB_CHARS = set("*?[")
# Images read ahead while waiting for a full batch of their size, per batch slot.
_PENDING_PER_SLOT = 4


@dataclass
class PredictResult:
    """The outcome for one input.

    Attributes:
        path: The input file (or the pattern / path that matched nothing).
        mask: The ``(H, W)`` class map at the image's size (after EXIF orientation): uint8 for up to 256
            classes, int16 above; binary models: the ``(H, W)`` uint8 0 / 1 foreground mask; multi-label
            models: ``(L, H, W)`` uint8 0 / 1, one mask per label. None when the input was skipped, or with
            ``keep_masks=False``.
        error: Why the input was skipped; None when it was processed.
        files: The files written for it (with ``done``: the ones found).
        done: Its outputs were all in ``out_dir`` already (``existing="skip"``): it was not run again.
    """

    path: Path
    mask: Optional[np.ndarray] = None
    error: Optional[str] = None
    files: tuple[Path, ...] = ()
    done: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Item:
    index: int
    path: Path
    out_stem: Optional[Path] = None  # output name without suffix, relative to out_dir
    error: Optional[str] = None


def _is_within(path: Path, folder: Optional[Path]) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def collect_inputs(inputs: Union[PathLike, Iterable[PathLike]], exclude: Optional[PathLike] = None) -> list[_Item]:
    """Expand files, folders and glob patterns into the list of images to segment, in a stable order.

    A file named explicitly is read whatever its extension. A folder is searched recursively for files
    with an image extension (``IMAGE_EXTENSIONS``, any case), in sorted order, skipping anything under
    ``exclude`` (the output folder); its images keep their sub-folders in the output names. A pattern
    (``*``, ``?``, ``[``; ``**`` recurses) gives the files it matches. A path or pattern that gives nothing
    is an item with an error. A file reached twice is listed once.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    excluded = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, Path, Optional[str]]] = []  # (path, out stem, error)
    for entry in inputs:
        text = os.fspath(entry)
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in _READABLE
                           and not _is_within(p, excluded))
            if not files:
                found.append((path, Path(path.name), f"no image files ({', '.join(_READABLE)}) in folder"))
            found += [(p, p.relative_to(path).with_suffix(""), None) for p in files]
        elif path.is_file():
            found.append((path, Path(path.stem), None))
        elif _GLOB_CHARS & set(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if os.path.isfile(m))
            if not matches:
                found.append((path, Path(path.name), "no file matches this pattern"))
            found += [(m, Path(m.stem), None) for m in matches]
        else:
            found.append((path, Path(path.name), "no such file or folder"))

    items: list[_Item] = []
    seen_files: set[Path] = set()
    used_stems: set[str] = set()
    for path, stem, error in found:
        if error is None:
            key = path.resolve()
            if key in seen_files:
                continue
            seen_files.add(key)
            # Two inputs with one output name (a.jpg and a.png): the later one gets its extension in the name.
            candidate, extension, n = stem, path.suffix.lstrip(".").lower(), 1
            while str(candidate).lower() in used_stems:
                candidate = stem.with_name(f"{stem.name}_{extension}" + (f"{n}" if n > 1 else ""))
                n += 1
            used_stems.add(str(candidate).lower())
            stem = candidate
        items.append(_Item(len(items), path, stem if error is None else None, error))
    return items


def _is_positive_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _check_arguments(inputs: Union[PathLike, Iterable[PathLike]], out_dir: Optional[PathLike],
                     max_size: Optional[int], scales: Sequence[float], batch_size: int, switches: dict) -> None:
    """``ConfigError`` naming the first bad argument, before any model is built."""
    for name, value in switches.items():  # flip="no" is truthy: a switch must be a bool
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False, got {value!r}")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError(f"out_dir {os.fspath(out_dir)!r} is a file, not a folder: give a new or existing folder "
                          f"for the masks")
    if out_dir is not None and Path(out_dir).is_dir():
        # The output folder's files are never read as inputs: an input folder inside it would give nothing.
        folders = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs if isinstance(
            inputs, (list, tuple)) else []  # an iterator is left whole for collect_inputs
        for folder in folders:
            if isinstance(folder, (str, os.PathLike)) and Path(folder).is_dir() \
                    and _is_within(Path(folder), Path(out_dir).resolve()):
                raise ConfigError(f"out_dir {os.fspath(out_dir)!r} is the input folder {os.fspath(folder)!r} or "
                                  f"holds it: the masks would be written among the images; give another out_dir")
    if not _is_positive_int(batch_size):
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if max_size is not None and not _is_positive_int(max_size):
        raise ConfigError(f"max_size must be an integer >= 1 or None, got {max_size!r}")
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or not scales or not all(
            isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s) and s > 0 for s in scales):
        raise ConfigError(f"scales must be a non-empty sequence of numbers > 0 (e.g. (0.75, 1.0, 1.25)), "
                          f"got {scales!r}")


def _resolve_model(model: Union[nn.Module, str], num_classes: Optional[int]) -> nn.Module:
    if isinstance(model, str):  # a zoo name runs with its trained weights: predicting with random ones is no use
        return create_model(model, num_classes=num_classes, pretrained=is_pretrained_name(model))
    if not hasattr(model, "config"):
        raise TypeError("predict needs a SegmentationModel (or a model name): it reads the model's config")
    if num_classes is not None and num_classes != model.config.num_classes:
        raise ValueError(f"num_classes={num_classes} applies to model names only; this model has "
                         f"{model.config.num_classes} classes")
    return model




def _mask_dtype(num_classes: int) -> np.dtype:
    if num_classes <= 256:
        return np.dtype(np.uint8)
    if num_classes <= 32768:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def _save_image(image: Image.Image, path: Path) -> None:
    """A PNG written through a temporary name: an interrupted run leaves only whole files."""
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def _save_array(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as file:  # a file object: np.save would append .npy to the temporary name
        np.save(file, array)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(folder, err) from None


def _output_paths(stem: Path, out_dir: Path, multiclass: bool, label_names: list[str], binary: bool,
                  save_npy: bool, with_overlay: bool) -> list[Path]:
    """Every file predict writes for the image of ``stem``: all of them exist once the image is done."""
    target = out_dir / stem
    if multiclass or binary:
        names = ["_mask.png"]
    else:
        names = [f"_{name}_mask.png" for name in label_names]
    names += ["_overlay.png"] * with_overlay + [".npy"] * save_npy
    return [target.with_name(target.name + name) for name in names]


def _write_outputs(mask: np.ndarray, rgb: np.ndarray, stem: Path, out_dir: Path, palette: np.ndarray,
                   save_npy: bool, with_overlay: bool) -> tuple[Path, ...]:
    target = out_dir / stem
    _make_folder(target.parent)
    written = []
    mask_path = target.with_name(f"{target.name}_mask.png")
    if mask.dtype == np.uint8:
        _save_image(colorize(mask, palette), mask_path)
    else:  # more than 256 classes: no palette can hold them; a 16-bit greyscale PNG of the indices
        _save_image(Image.fromarray(mask.astype(np.uint16)), mask_path)
    written.append(mask_path)
    picture = overlay(rgb, mask, palette) if with_overlay else None
    return _write_overlay_and_array(target, written, picture, mask if save_npy else None)


def _write_overlay_and_array(target: Path, written: list[Path], picture: Optional[np.ndarray],
                             array: Optional[np.ndarray]) -> tuple[Path, ...]:
    """After the masks: ``<target>_overlay.png`` of ``picture`` and ``<target>.npy`` of ``array`` (each only when
    given). Returns every file written for the image."""
    if picture is not None:
        overlay_path = target.with_name(f"{target.name}_overlay.png")
        _save_image(Image.fromarray(picture), overlay_path)
        written.append(overlay_path)
    if array is not None:
        npy_path = target.with_name(f"{target.name}.npy")
        atomic_write(npy_path, lambda tmp: _save_array(tmp, array))
        written.append(npy_path)
    return tuple(written)


def label_colours(config) -> np.ndarray:
    """One colour per label of a binary / multi-label model: its config's palette, else generic colours (black,
    the background's colour in generic palettes, skipped)."""
    if getattr(config, "palette", None) is not None:
        return np.asarray(config.palette, dtype=np.uint8)
    return generic_palette(config.num_classes + 1)[1:]


def _label_file_names(config) -> list[str]:
    names = config.class_names or [f"label{i}" for i in range(config.num_classes)]
    # a label name becomes part of a file name: keep it to safe characters
    return ["".join(c if c.isalnum() or c in "-_." else "_" for c in name) or f"label{i}"
            for i, name in enumerate(names)]


def _write_label_outputs(masks: np.ndarray, rgb: np.ndarray, stem: Path, out_dir: Path, colours: np.ndarray,
                         label_names: list[str], save_npy: bool, with_overlay: bool) -> tuple[Path, ...]:
    """Binary: ``<stem>_mask.png``; multi-label: ``<stem>_<label>_mask.png`` per label. Each a palette PNG whose
    values are 0 / 1 (black / the label's colour), so it reads back as a binary mask."""
    target = out_dir / stem
    _make_folder(target.parent)
    stack = masks[None] if masks.ndim == 2 else masks
    written = []
    for index, mask in enumerate(stack):
        suffix = "_mask.png" if masks.ndim == 2 else f"_{label_names[index]}_mask.png"
        path = target.with_name(target.name + suffix)
        _save_image(colorize(mask, np.stack([np.zeros(3, np.uint8), colours[index]])), path)
        written.append(path)
    # several labels: which colour is which is not obvious, so the overlay gets a legend strip below it
    names = label_names if masks.ndim == 3 else None
    picture = overlay_labels(rgb, stack, colours, names=names) if with_overlay else None
    return _write_overlay_and_array(target, written, picture, masks if save_npy else None)


def _leave_done_items(items: list[_Item], results: list, existing: str, outputs, out_dir: Path) -> list[_Item]:
    """The items still to run: ``"skip"`` records the done ones (every output there) in ``results``; ``"error"``
    refuses outputs that exist."""
    todo, found = [], []
    for item in items:
        paths = outputs(item) if item.error is None else []
        there = [path for path in paths if path.exists()]
        if existing == "skip" and paths and len(there) == len(paths):
            results[item.index] = PredictResult(item.path, files=tuple(paths), done=True)
            continue
        found += there
        todo.append(item)
    if existing == "error" and found:
        names = ", ".join(str(path.relative_to(out_dir)) for path in found[:3]) + (
            f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise OutputError(f"{out_dir} holds outputs of these images already ({names}): keep the complete ones and do "
                          f"the rest with --skip-existing (existing='skip'), or replace them with --overwrite "
                          f"(existing='overwrite')")
    return todo


def _calibration_items(inputs) -> list[_Item]:
    items = collect_inputs(inputs)
    unreadable = [item for item in items if item.error is not None]
    if unreadable or not items:
        found = f"{unreadable[0].path}: {unreadable[0].error}" if unreadable else "no images found"
        raise SegzooError(f"calibration: {found} (give image files, folders or patterns)")
    return items


def _read_calibration(items: Optional[list[_Item]], config, device) -> Optional[list[torch.Tensor]]:
    if items is None:
        return None
    return [to_tensor(load_image(item.path, in_chans=config.in_chans), config.mean, config.std).to(device)
            for item in items]


def load_calibration_images(inputs: Union[PathLike, Iterable[PathLike]], config,
                            device: Union[str, torch.device] = "cpu") -> list[torch.Tensor]:
    """The images of ``inputs`` (files, folders, patterns as ``collect_inputs`` takes them) read with the model's
    bands and normalised with its mean and std (``config``): one ``(1, C, H, W)`` batch per image, each at its
    own size, for ``segzoo.optimize(..., calibration_images=)``. ``SegzooError`` when an input gives no image;
    ``ImageReadError`` for an unreadable one."""
    return _read_calibration(_calibration_items(inputs), config, device)


def predict(
    inputs: Union[PathLike, Iterable[PathLike]],
    model: Union[nn.Module, str],
    *,
    out_dir: Optional[PathLike] = None,
    save_npy: bool = False,
    overlay: bool = True,
    max_size: Optional[int] = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    batch_size: int = 1,
    device: Union[str, torch.device] = "auto",
    half: bool = False,
    progress: bool = True,
    num_classes: Optional[int] = None,
    keep_masks: bool = True,
    recipe: bool = True,
    precision: Optional[str] = None,
    runtime: Optional[str] = None,
    calibration: Optional[Union[PathLike, Iterable[PathLike]]] = None,
    remeasure: bool = False,
    quiet: bool = False,
    lock_out: Optional[str] = None,
    existing: str = "overwrite",
) -> list[PredictResult]:
    """Segment image files and write, for each ``<stem>`` image, into ``out_dir``:

    - ``<stem>_mask.png``: the class map as a palette (``P``) PNG in the dataset's colours
      (``segzoo.zoo.palette_for``), at the image's size after EXIF orientation; its pixel values are the
      class indices (a 16-bit greyscale PNG of the indices above 256 classes);
    - ``<stem>_overlay.png``: the class colours blended over the image (alpha 0.5), unless ``overlay=False``;
    - ``<stem>.npy`` with ``save_npy=True``: the class map (uint8 up to 256 classes, int16 above).

    Binary models (``config.mode``) write ``<stem>_mask.png``, the foreground (sigmoid > ``config.threshold``)
    as a palette PNG of 0 / 1; multi-label models one ``<stem>_<label>_mask.png`` per label, the same way; their
    overlays colour each pixel with the mean colour of its labels (``label_colours``), and ``.npy`` holds the
    ``(H, W)`` or ``(L, H, W)`` 0 / 1 masks.

    Args:
        inputs: Files, folders (searched recursively; sub-folders are mirrored in ``out_dir``) and glob
            patterns, see ``collect_inputs``.
        model: A ``SegmentationModel``, or any name ``create_model`` accepts (``fcn_resnet18``,
            ``hf-hub:org/name``, ``local-dir:DIR``); a zoo name (``deeplabv3_resnet101.tv_coco_voc``) runs with
            its trained weights (``pretrained=True``). A model passed in is moved to ``device`` and put in
            eval mode (its train / eval mode is restored afterwards) and run as it is unless ``precision`` is
            given; a model made here from a name is also run through ``segzoo.optimize`` in ``precision``
            (default ``"auto"``: ``optimize_for_inference``, the same outputs faster, or bfloat16 on a CPU
            with native bfloat16; pass ``segzoo.optimize(model)`` yourself for the same with a model of your
            own).
        out_dir: Output folder (created); None writes nothing, the class maps are only returned.
        save_npy: Also write the raw class map as ``.npy``.
        overlay: Write the colour overlay.
        max_size: Images whose long side exceeds this many pixels are run by sliding window, with windows
            of the model's ``config.input_size``; None runs every image as the model's recipe says.
        scales: Test-time scales, averaged (see ``segzoo.inference.tta.predict_logits``).
        flip: Also average the left-right mirrored prediction.
        batch_size: Images of the same size (after orientation) are run together in batches of up to this
            many; images are never padded to share a batch. Images of a size seen rarely wait for a batch
            only while few images are pending.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        half: Run under float16 autocast (CUDA only; on the CPU this is an error).
        progress: Show a progress bar on stderr (only when stderr is a terminal and there are 2+ inputs).
        num_classes: With a model name: the number of classes to build it with.
        keep_masks: Keep each class map in the returned results (set False for large folders).
        recipe: Run as the model's upstream evaluated it (``config.inference``: mmseg's entries rescale the image to
            their test size and some run by sliding window), unless ``max_size`` is given; False runs each image
            whole at its own size.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"int8"`` (``segzoo.optimize``: bf16 and int8 are CPU
            paths; bf16 is emulated and slow on a CPU without native bfloat16; int8 runs on ONNX Runtime and needs
            ``calibration``). None: ``"auto"`` for a model made here from a name (or when ``runtime`` is given),
            the model as it is for a model passed in. Given, a model passed in is converted on a copy (it is not
            modified). When ``"auto"`` leaves more than one path (bf16 on a CPU with native bfloat16, ONNX Runtime
            with ``runtime="auto"``, int8 with ``calibration``), the choice is measured on the images themselves
            and remembered (``segzoo.inference.path_choice``): the first batch's float32 outputs are its
            predictions, a reduced precision is kept only if it decodes at least 99.5% of that batch's pixels as
            float32 does, the next batches time the candidates in turn, and the fastest is kept for the rest and
            for later runs of the same weights on this CPU at this input size. Runs of too few images to finish a
            measurement take the remembered path, else float32. The path is said in one line on stderr
            (``inference: bf16 eager (agreement 99.81%, 1.93x fp32 eager)``) unless ``quiet``.
        runtime: ``"eager"``, ``"compile"``, ``"onnxruntime"`` or ``"auto"`` (eager or ONNX Runtime, measured
            on the first batch), see ``segzoo.optimize``; None: eager, or onnxruntime for int8.
        calibration: Image files / folders / patterns (as ``inputs``) on which int8 is calibrated; a handful like
            the images to segment.
        remeasure: Measure ``auto``'s choice again even where one is remembered (also ``SEGZOO_REMEASURE=1``).
        quiet: Say nothing on stderr but the skipped inputs (no inference line, no progress bar).
        lock_out: Lock ``out_dir`` for the rest of the process once the arguments are checked
            (``segzoo.files.lock_folder``: a second run into it is refused at once); the value names the folder's
            option in that message (``"--out"``). None: no lock.
        existing: What to do about an image whose outputs are in ``out_dir`` already: ``"overwrite"`` them,
            ``"skip"`` the image when all of them are there (resuming an interrupted run: each file is written
            through a temporary name, so a file that exists is whole), or ``"error"`` (an ``OutputError`` naming
            them, before any work).

    Returns:
        One ``PredictResult`` per input, in input order. An unreadable, corrupt or missing file is
        reported on stderr and in its result's ``error``, and skipped; the others are still processed.
    """
    _check_arguments(inputs, out_dir, max_size, scales, batch_size, switches={
        "save_npy": save_npy, "overlay": overlay, "flip": flip, "half": half, "progress": progress,
        "keep_masks": keep_masks, "recipe": recipe, "remeasure": remeasure, "quiet": quiet})
    if existing not in ("overwrite", "skip", "error"):
        raise ConfigError(f"existing must be 'overwrite', 'skip' or 'error', got {existing!r}")
    resolved_device = resolve_device(device)
    if half and resolved_device.type != "cuda":
        raise SegzooError(f"half precision runs on a CUDA GPU only; the device is {resolved_device.type} "
                          f"(drop --half / half=True, or use --device cuda)")
    built_here = isinstance(model, str)
    wanted = precision or ("auto" if built_here or runtime is not None else None)
    runtime = default_runtime(wanted, runtime)
    if wanted is not None:
        if half and (wanted not in ("auto", "fp32") or runtime != "eager"):
            raise SegzooError("half=True / --half is float16 autocast on eager PyTorch: leave precision and runtime "
                              "unset (or fp32 / eager) with it")
        paths = candidate_paths(wanted, runtime, resolved_device, calibration=calibration is not None)
        if wanted == "int8" and calibration is None:
            raise SegzooError("precision int8 needs calibration images: calibration=[files or folders] / "
                              "--calibration DIR")
    if calibration is not None and (wanted is None or not any(p == "int8" for p, _ in paths)):
        raise SegzooError("calibration images serve precision int8 only (or auto with runtime onnxruntime / auto)")
    calibration_items = _calibration_items(calibration) if calibration is not None else None
    if lock_out is not None and out_dir is not None:  # every argument checked: now the folder is taken
        lock_folder(out_dir, lock_out)
    model = _resolve_model(model, num_classes)
    config = model.config
    multiclass = config.mode == "multiclass"
    palette = palette_for(config) if multiclass else label_colours(config)
    label_names = _label_file_names(config)
    dtype = _mask_dtype(config.num_classes) if multiclass else np.dtype(np.uint8)
    out_path = Path(out_dir) if out_dir is not None else None
    items = collect_inputs(inputs, exclude=out_path)
    results: list[Optional[PredictResult]] = [None] * len(items)
    if out_path is not None and existing != "overwrite":
        items = _leave_done_items(items, results, existing, lambda item: _output_paths(
            item.out_stem, out_path, multiclass, label_names, config.mode == "binary", save_npy, overlay), out_path)

    from tqdm import tqdm

    bar = tqdm(total=len(items), unit="img", file=sys.stderr, dynamic_ncols=True,
               disable=True if (quiet or not progress or len(items) < 2) else None)

    def skip(item: _Item, reason: str) -> None:
        results[item.index] = PredictResult(item.path, error=reason)
        tqdm.write(f"warning: {reason}; skipped", file=sys.stderr)
        bar.update(1)

    def infer(network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        if max_size is not None:
            options = {"window": tuple(config.input_size)} if max(height, width) > max_size else {}
        else:
            options = recipe_options(config) if recipe else {}
        autocast = (torch.autocast("cuda", dtype=torch.float16) if half else contextlib.nullcontext())
        with autocast:
            return predict_logits(network, images, scales=scales, flip=flip, **options)

    def run_batch(batch: list[tuple[_Item, np.ndarray]]) -> None:
        images = torch.cat([to_tensor(rgb, config.mean, config.std) for _, rgb in batch]).to(resolved_device)
        logits = chooser(images) if chooser is not None else infer(model, images)
        masks = decode_logits(logits, config.mode, config.threshold).cpu().numpy().astype(dtype)
        for (item, rgb), mask in zip(batch, masks):
            files = ()
            picture = display_rgb(rgb) if out_path is not None and overlay else None  # N bands: shown as RGB
            if out_path is not None and multiclass:
                files = _write_outputs(mask, picture, item.out_stem, out_path, palette, save_npy, overlay)
            elif out_path is not None:
                files = _write_label_outputs(mask, picture, item.out_stem, out_path, palette, label_names, save_npy,
                                             overlay)
            results[item.index] = PredictResult(item.path, mask if keep_masks else None, files=files)
            bar.update(1)

    was_training, original = model.training, model
    model.eval().to(resolved_device)
    chooser = None
    if wanted is not None:  # a model made here is converted in place: nobody else holds it
        readable = sum(item.error is None for item in items)
        chooser = PathChooser(
            model, usable_paths(model, paths, runtime), infer, expected_batches=math.ceil(readable / batch_size),
            mode=config.mode, threshold=config.threshold, asked=wanted, remeasure=remeasure, inplace=built_here,
            recipe=(tuple(scales), flip, max_size, recipe, batch_size),
            build_options={"calibration": _read_calibration(calibration_items, config, resolved_device)})
        if not quiet:
            chooser.line_when_fixed(lambda line: tqdm.write(line, file=sys.stderr))
    pending: dict[tuple[int, int], list[tuple[_Item, np.ndarray]]] = {}
    try:
        for item in items:
            if item.error is not None:
                skip(item, f"{item.path}: {item.error}")
                continue
            try:
                rgb = load_image(item.path, in_chans=config.in_chans)
            except ImageReadError as err:
                skip(item, str(err))
                continue
            group = pending.setdefault(rgb.shape[:2], [])
            group.append((item, rgb))
            if len(group) >= batch_size:
                run_batch(pending.pop(rgb.shape[:2]))
            elif sum(len(g) for g in pending.values()) > _PENDING_PER_SLOT * batch_size:
                run_batch(pending.pop(max(pending, key=lambda size: len(pending[size]))))
        for size in list(pending):
            run_batch(pending.pop(size))
        if chooser is not None:
            chooser.finish()
    finally:
        bar.close()
        original.train(was_training)
    return results
