"""The ONNX Runtime inference path: the model exported to ONNX (``segzoo.inference.export``), run by ONNX Runtime's
CPU provider in float32, or in int8 after post-training static quantization calibrated on the caller's images.

Why ONNX Runtime for int8 and not PyTorch's own x86 flow: since torch 2.10 the PT2E quantizer lives in torchao (no
longer in ``torch.ao.quantization``), a large dependency segzoo does not take, and issue 19 measured that flow
failing on ``onednn.qconv_prepack`` for DeepLabV3 and OCNet. ONNX Runtime's static quantization works on the
file ``segzoo export`` already writes and checks.

The int8 recipe: ``quant_pre_process`` (shape inference and graph optimisation, so that quantization sees fused
Conv nodes), then ``quantize_static`` in the QDQ format, weights signed int8 per output channel, activations
unsigned int8 per tensor, ranges from MinMax calibration on the given images. Only the weighted operators (Conv,
MatMul, Gemm) and the ones between them are quantized; resampling, softmax and the output stay float32.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError, SegzooError
from ..model import model_device
from .decode import main_output
from .export import INPUT_NAME, OUTPUT_NAME, export, missing_modules

__all__ = ["OnnxRuntimeModel", "onnx_runtime_model", "onnx_runtime_available", "ONNX_RUNTIME_PRECISIONS"]

ONNX_RUNTIME_PRECISIONS = ("fp32", "int8")
_NEEDED = ("onnx", "onnxscript", "onnxruntime")


def onnx_runtime_available() -> bool:
    """Whether this path can run here: onnx and onnxscript (to export) and onnxruntime (to run) are installed."""
    return not missing_modules(*_NEEDED)


def _check_installed() -> None:
    missing = missing_modules(*_NEEDED)
    if missing:
        raise SegzooError(f"the onnxruntime path needs {', '.join(missing)}: pip install 'segzoo[onnx]'")


class OnnxRuntimeModel(nn.Module):
    """An ONNX Runtime session behind the model interface: float32 images ``(N, C, H, W)`` in, float32 logits out
    (a CPU tensor; given a tensor on another device, the logits go back to it). Inference only: it has no
    parameters to train or save. ``config`` is the exported model's; ``path`` the ``.onnx`` file it runs (None
    when it was a temporary file, read and removed)."""

    inference_only = True
    runtime = "onnxruntime"

    def __init__(self, path: Path, precision: str, config=None, threads: Optional[int] = None,
                 keep_path: bool = True):
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        # as many threads as torch uses: the same share of the machine as the eager paths it is compared with
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = Path(path) if keep_path else None
        self.precision = precision
        if config is not None:
            self.config = config

    def forward(self, images: Tensor) -> Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        logits = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0]
        return torch.from_numpy(logits).to(images.device)

    def extra_repr(self) -> str:
        return f"path={str(self.path) if self.path else None!r}, precision={self.precision!r}"


class _MainOutput(nn.Module):
    """A peer's model whose forward returns a dict (torchvision's ``{"out": ...}``) or a tuple, exported as its main
    output only, so that the ONNX file has one output as segzoo's models do."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return main_output(self.model(images))


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol: one ``{input: batch}`` per call, None at the end."""

    def __init__(self, batches: Sequence[Tensor]):
        self._batches = iter([batch.detach().to("cpu", torch.float32).contiguous().numpy() for batch in batches])

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


@contextlib.contextmanager
def _quiet_quantizer():
    """onnxruntime's quantization tools log every step at INFO / WARNING on the root logger; keep them to errors."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _working_directory(folder: Path):
    """The process's working directory is ``folder`` while inside (process-wide: not for concurrent threads)."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _quantize(source: Path, target: Path, calibration: Sequence[Tensor]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_Calibration, CalibrationDataReader):
        pass

    source, target = source.resolve(), target.resolve()  # the working directory changes below
    prepared = target.with_name(target.stem + ".prepared.onnx")
    # onnxruntime's tools write scratch files into the working directory (symbolic shape inference saves its
    # model there, with 200+ MB of external weights, when it gives up): work in our folder. Symbolic shape
    # inference is skipped (onnx's own runs): it gives up on the dynamic-size exports anyway.
    with _quiet_quantizer(), _working_directory(target.parent):
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except Exception as err:  # noqa: BLE001 - only an optimisation: quantize the export as it is
            logging.getLogger(__name__).info("quant_pre_process failed (%s); quantizing the export as it is", err)
            prepared = source
        quantize_static(str(prepared), str(target), Reader(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def onnx_runtime_model(model: nn.Module, precision: str = "fp32", *,
                       calibration_images: Optional[Sequence[Tensor]] = None, work_dir: Optional[str] = None,
                       example_size: tuple[int, int] = (64, 64)) -> OnnxRuntimeModel:
    """``model`` exported to ONNX (dynamic batch, height and width; checked against eager PyTorch) and run by ONNX
    Runtime, in ``"fp32"`` or ``"int8"`` (static quantization, calibrated on ``calibration_images``: a list of
    normalised ``(N, C, H, W)`` float32 batches, at the sizes the model will see).

    Args:
        model: A model on the CPU (segzoo's, or any module ``segzoo.export`` can export).
        precision: ``"fp32"`` or ``"int8"``.
        calibration_images: Required for int8: the images whose activation ranges set the quantization scales
            (a few images like the ones to segment; more images, steadier ranges).
        work_dir: Where to write and keep the ``.onnx`` files (``model.onnx``, ``model.int8.onnx``); default a
            temporary folder, removed once the session has read the graph (``path`` is then None).
        example_size: (H, W) at which the export is checked against the eager model.
    """
    if precision not in ONNX_RUNTIME_PRECISIONS:
        raise ConfigError(f"the onnxruntime path computes in {' or '.join(ONNX_RUNTIME_PRECISIONS)}, "
                          f"not {precision!r}")
    if precision == "int8" and not calibration_images:
        raise ConfigError("precision int8 needs calibration images (calibration_images= / --calibration DIR): "
                          "the quantization scales are measured on them")
    device = model_device(model).type
    if device != "cpu":
        raise ConfigError(f"the onnxruntime path runs on the CPU; the model is on {device}")
    _check_installed()
    if work_dir is None:  # the session holds the graph once made: the temporary files go right after
        with tempfile.TemporaryDirectory(prefix="segzoo-onnx-") as folder:
            return _session_model(model, precision, calibration_images, Path(folder), example_size, keep=False)
    folder = Path(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return _session_model(model, precision, calibration_images, folder, example_size, keep=True)


def _session_model(model, precision, calibration_images, folder: Path, example_size, keep: bool) -> OnnxRuntimeModel:
    exported = model if hasattr(model, "set_channels_last") else _MainOutput(model)  # segzoo's: one tensor already
    fp32_path = export(exported, folder / "model.onnx", size=tuple(example_size), check=True)
    path = fp32_path
    if precision == "int8":
        path = folder / "model.int8.onnx"
        _quantize(fp32_path, path, list(calibration_images))
    return OnnxRuntimeModel(path, precision, config=getattr(model, "config", None), keep_path=keep)

