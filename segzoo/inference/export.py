"""Export models to ONNX or to a ``torch.export`` program (``.pt2``), with any input size, and check the file.

ONNX goes through ``torch.onnx.export(dynamo=True)``, torch's default exporter since 2.9: it records the model
with ``torch.export`` (symbolic sizes, so shape arithmetic is kept as arithmetic and shape-dependent Python
control flow is caught as a guard rather than silently frozen) and translates the graph with onnxscript.
Two layers have an export formulation because the eager one would be frozen at the example size
(``segzoo.layers.tracing.is_exporting``): PSPNet's adaptive pooling (as averaging matmuls) and the query-
chunked attention of DANet and OCNet (in one pass). Eager and ``torch.compile`` results are unchanged.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import numbers
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import OutputError, SegzooError
from ..factory import create_model
from ..files import output_error
from ..model import input_channels, model_device
from ..weights.checkpoint import public_modes

__all__ = ["export", "check_export", "check_arguments", "check_sizes", "ExportCheck", "ExportCheckError", "FORMATS",
           "DEFAULT_SUFFIXES"]

FORMATS = ("onnx", "torch.export")
DEFAULT_SUFFIXES = {"onnx": ".onnx", "torch.export": ".pt2"}
INPUT_NAME, OUTPUT_NAME = "images", "logits"
TOLERANCE = 1e-4  # max abs difference, relative to the output scale max(1, max |eager logits|)
_ONNX_SINGLE_FILE_LIMIT = 1 << 30  # weights larger than this go to "<file>.data" (protobuf's limit is 2 GiB)


class ExportCheckError(SegzooError):
    """The exported file gives other results than the eager model (or cannot be run)."""


@dataclass(frozen=True)
class ExportCheck:
    """One comparison of the exported file with the eager model."""

    shape: tuple[int, int, int, int]  # the input (N, in_chans, H, W)
    max_abs_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def __str__(self) -> str:
        n, _, h, w = self.shape
        return (f"batch {n} at {h}x{w}: max abs diff {self.max_abs_diff:.2e} "
                f"({'ok' if self.ok else 'FAILED'}, tolerance {self.tolerance:.1e})")


def _export_copy(model: nn.Module) -> nn.Module:
    """An eval-mode, contiguous-format copy: the caller's model (mode, memory format) stays as it is."""
    model = copy.deepcopy(model).eval()
    if hasattr(model, "set_channels_last"):  # memory formats are not part of an exported graph
        model.set_channels_last(False)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _example(size: tuple[int, int], batch: int, model: nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, input_channels(model), *size, generator=generator).to(model_device(model))


def _dynamic_shapes(dynamic: bool, onnx: bool):
    if not dynamic:
        return None
    # by position, not by the forward's argument name (segzoo's is "images"; nn.Sequential's is "input")
    if onnx:  # names become the ONNX graph's dim_params
        return ({0: "batch", 2: "height", 3: "width"},)
    dim = torch.export.Dim.DYNAMIC  # refuses to export if a size had to be specialised
    return ({0: dim, 2: dim, 3: dim},)


def check_sizes(size: tuple[int, int], dynamic: bool) -> list[tuple[int, int, int]]:
    """(batch, H, W) to check: the export size and, for dynamic exports, a second, smaller odd-shaped size at
    batch 2 (about half the pixels per image, so the two checks cost about the same)."""
    height, width = size
    checks = [(1, height, width)]
    if dynamic:
        checks.append((2, max(33, height * 3 // 4 + 1), max(33, width * 3 // 4 + 3)))
    return checks


def _check_onnx_installed() -> None:
    missing = missing_modules("onnx", "onnxscript")
    if missing:
        raise SegzooError(f"ONNX export needs {' and '.join(missing)}: pip install onnx onnxscript "
                          f"(or pip install 'segzoo[onnx]')")


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path, dynamic: bool, opset: Optional[int]) -> None:
    _check_onnx_installed()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    # Below its own opset the exporter converts the graph down; it logs that, and when the conversion fails it logs
    # the converter's traceback and writes its own opset instead, which the check below turns into one error.
    with _silenced("torch.onnx._internal.exporter._compat", "onnxscript.version_converter"):
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=_dynamic_shapes(dynamic, onnx=True), opset_version=opset, verbose=False,
        )
    program.save(str(path), external_data=weight_bytes > _ONNX_SINGLE_FILE_LIMIT)
    written = _onnx_opset(path)
    if opset is not None and written != opset:
        for file in (path, path.with_name(path.name + ".data")):
            file.unlink(missing_ok=True)
        raise SegzooError(f"torch's ONNX exporter could not convert this model to opset {opset} (it wrote opset "
                          f"{written}; nothing was kept): use opset {written} or later, or leave it unset")


@contextlib.contextmanager
def _silenced(*names: str) -> Iterator[None]:
    """Nothing below CRITICAL from these loggers while inside."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def check_arguments(path: Union[str, os.PathLike], format: str = "onnx", size: Optional[tuple[int, int]] = None,
                    opset: Optional[int] = None) -> None:
    """``SegzooError`` naming the first of ``export``'s arguments that cannot work (called before any model is
    built)."""
    if format not in FORMATS:
        raise SegzooError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if Path(path).is_dir():
        raise SegzooError(f"the output {os.fspath(path)!r} is a directory: give the file to write, e.g. "
                          f"{os.path.join(path, 'model' + DEFAULT_SUFFIXES[format])}")
    if size is not None and (isinstance(size, (str, bytes)) or len(size) != 2 or not all(
            isinstance(side, numbers.Integral) and not isinstance(side, bool) and side >= 1 for side in size)):
        raise SegzooError(f"size must be (H, W) with positive sizes, got {size!r}")
    if opset is None:
        return
    if format != "onnx":
        raise SegzooError("opset applies to ONNX exports only")
    _check_onnx_installed()
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not 1 <= opset <= newest:
        raise SegzooError(f"opset must be an ONNX opset from 1 to {newest} (the newest the installed onnx knows), "
                          f"got {opset!r}")


def _export_program(model: nn.Module, example: torch.Tensor, path: Path, dynamic: bool) -> None:
    program = torch.export.export(model, (example,), dynamic_shapes=_dynamic_shapes(dynamic, onnx=False))
    torch.export.save(program, str(path))


def missing_modules(*names: str) -> list[str]:
    """The modules among ``names`` that are not installed (looked up, not imported)."""
    import importlib.util

    return [name for name in names if importlib.util.find_spec(name) is None]


def _run_exported(path: Path, format: str):
    """A callable ``numpy/torch images -> torch logits`` running the exported file."""
    if format == "onnx":
        if missing_modules("onnxruntime"):
            raise ExportCheckError("checking an ONNX export needs onnxruntime: pip install onnxruntime "
                                   "(or pass check=False / --no-check)")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda images: torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: images.cpu().numpy()})[0])
    module = torch.export.load(str(path)).module()
    return lambda images: module(images).cpu()


def check_export(path: Union[str, os.PathLike], model: nn.Module, format: Optional[str] = None,
                 sizes: Sequence[tuple[int, int, int]] = ((2, 64, 64), (1, 97, 83)),
                 tolerance: float = TOLERANCE) -> list[ExportCheck]:
    """Run an exported file and the eager ``model`` (in eval mode, on a copy) on the same random images.

    Args:
        path: An ``.onnx`` file (run with onnxruntime's CPU provider) or a ``torch.export`` ``.pt2`` file.
        model: The model it was exported from.
        format: ``"onnx"`` or ``"torch.export"``; default from the suffix (``.onnx`` or else ``torch.export``).
        sizes: ``(batch, H, W)`` of each check.
        tolerance: Largest max abs difference allowed, relative to ``max(1, max |eager logits|)``.

    Returns:
        One ``ExportCheck`` per size (inspect ``.ok``); nothing is raised for a mismatch here.
    """
    path = Path(path)
    format = format or ("onnx" if path.suffix == ".onnx" else "torch.export")
    return _compare(path, format, _export_copy(model), sizes, tolerance)


def _compare(path: Path, format: str, reference: nn.Module, sizes, tolerance: float = TOLERANCE) -> list[ExportCheck]:
    run = _run_exported(path, format)
    results = []
    for batch, height, width in sizes:
        images = _example((height, width), batch, reference)
        with torch.no_grad():
            expected = reference(images).float().cpu()
        try:
            actual = run(images)
        except Exception as err:  # noqa: BLE001 - the runtime's own error, made readable
            raise ExportCheckError(f"the exported {path.name} failed to run on a {'x'.join(map(str, images.shape))} "
                                   f"input: {type(err).__name__}: {err}") from err
        if actual.shape != expected.shape:
            raise ExportCheckError(f"the exported {path.name} returned shape {tuple(actual.shape)} for a "
                                   f"{'x'.join(map(str, images.shape))} input; the model returns "
                                   f"{tuple(expected.shape)}")
        scale = max(1.0, expected.abs().max().item())
        diff = (actual.float() - expected).abs().max().item()
        results.append(ExportCheck(tuple(images.shape), diff if math.isfinite(diff) else math.inf,
                                   tolerance * scale))
    return results


@contextlib.contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """Yield ``path``'s name in a new folder beside it, to write and check the export there; when the block ends
    without an error, move what it wrote (an ONNX file's ``.data`` first, then the file) into place, each with
    one rename. Whatever happens, the folder is removed: a failed or interrupted export leaves nothing, and an
    existing ``path`` stays as it was until the new file is complete and checked."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    except OSError as err:
        raise output_error(path, err) from None
    staged = folder / path.name  # the final name: an ONNX file names its external data file after itself
    try:
        yield staged
        for file in sorted(folder.iterdir(), key=lambda item: item == staged):
            public_modes(file)  # the umask's mode, as a plain write gives
            os.replace(file, path.parent / file.name)
    except OutputError:
        raise
    except OSError as err:  # the user's path in the message, not the temporary one
        raise output_error(path, err) from err
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _one_line(err: BaseException) -> str:
    """An exporter's error in one line: its type and its message's first line (and the second, when the first
    only announces it, ending in a colon)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else "".join(lines[:1])
    return f"{type(err).__name__}: {text}"[:500]


def export(model_or_name: Union[str, nn.Module], path: Union[str, os.PathLike], format: str = "onnx", *,
           size: Optional[tuple[int, int]] = None, dynamic: bool = True, opset: Optional[int] = None,
           check: bool = True, report: Optional[Callable[[list[ExportCheck]], object]] = None,
           **create_model_kwargs: Any) -> Path:
    """Export a model to ONNX or to a ``torch.export`` program.

    Args:
        model_or_name: A model, or any name ``segzoo.create_model`` accepts (zoo name, ``<head>_<backbone>``,
            ``hf-hub:...``, ``local-dir:...``).
        path: The file to write (parent directories are created); by convention ``.onnx`` or ``.pt2``.
        format: ``"onnx"`` (``torch.onnx.export`` with the default, torch.export-based exporter) or
            ``"torch.export"`` (``torch.export.export``, saved with ``torch.export.save``).
        size: ``(H, W)`` of the example input; default the config's ``input_size``. With ``dynamic=True``
            only the checks run at it (a smaller size exports faster and checks just as well).
        dynamic: Make batch, height and width dynamic (any size works; the ``.pt2`` refuses sizes whose
            coarsest feature map is 1 pixel, and exporting at batch 2 lets batch 1 through). With
            ``False`` the file takes exactly ``(1, in_chans, H, W)`` (``in_chans`` the model's, 3 for RGB).
        opset: ONNX opset (default: the exporter's, 20 with torch 2.14). ONNX only. The exporter converts its graph
            to other opsets; a model it cannot convert is a ``SegzooError`` (it would write its own opset instead).
        check: Run the file (onnxruntime, CPU) at the export size and, when dynamic, at a second size and
            batch, compare with the eager model, and raise ``ExportCheckError`` when the max abs difference
            exceeds 1e-4 relative to the output scale (``check_export`` returns the numbers).
        report: Called with the check's results (one ``ExportCheck`` per size) before the file is put in place,
            passed or not (``segzoo export`` prints them).
        **create_model_kwargs: Passed to ``create_model`` with a name (``num_classes=...``, ``neck=...``).

    Returns:
        The written path.

    Raises:
        ExportCheckError: The check failed; nothing was written to ``path`` (an existing file there is
            unchanged).
        OutputError: ``path`` cannot be written (read-only, below a file, disk full), naming it and the cause.
        SegzooError: The exporter could not export the model, in one line.

    The arguments are checked (``check_arguments``) before a model is built. The model is exported from an
    eval-mode, contiguous-format copy; the caller's model is not changed. The file is written and checked
    under a temporary name beside ``path`` and renamed into place only then (with its ``.data`` file, if any):
    a failed check, a failed write or an interruption never leaves a file at ``path``, nor replaces one there.
    An existing ``path`` is replaced (``segzoo export`` refuses it without ``--overwrite``).
    """
    check_arguments(path, format, size, opset)
    if isinstance(model_or_name, str):
        model = create_model(model_or_name, **create_model_kwargs)
    elif create_model_kwargs:
        raise SegzooError(f"model arguments ({', '.join(create_model_kwargs)}) need a model name, not a model")
    else:
        model = model_or_name
    config = getattr(model, "config", None)
    size = tuple(size or (config.input_size if config is not None else (512, 512)))
    if len(size) != 2 or min(size) < 1:
        raise SegzooError(f"size must be (H, W) with positive sizes, got {size!r}")

    path = Path(path)
    exported = _export_copy(model)
    checks = check_sizes(size, dynamic)
    # Tracing runs on fake tensors, so the example costs nothing; its batch is 2 when dynamic because
    # torch.export specialises a traced size of 1.
    example = _example(size, 2 if dynamic else 1, exported)
    nothing = f"nothing was written to {path}"
    with _staged(path) as staged:
        try:
            if format == "onnx":
                _export_onnx(exported, example, staged, dynamic, opset)
            else:
                _export_program(exported, example, staged, dynamic)
        except (SegzooError, OSError):
            raise
        except Exception as err:  # noqa: BLE001 - the exporter's own error, in one line instead of a traceback
            exporter = "torch's ONNX exporter" if format == "onnx" else "torch.export"
            raise SegzooError(f"{exporter} could not export this model at {size[0]}x{size[1]} "
                              f"({_one_line(err)}); {nothing}") from err
        if check:
            try:
                results = _compare(staged, format, exported, checks)
            except ExportCheckError as err:
                raise ExportCheckError(f"{err}; {nothing}") from err
            if report is not None:
                report(results)
            failed = [result for result in results if not result.ok]
            if failed:
                raise ExportCheckError(f"the exported {path} does not match the eager model: "
                                       f"{'; '.join(map(str, failed))}; {nothing}")
    return path
