"""Whether a module runs for real or is being traced into a graph that must serve every input size."""
from __future__ import annotations

import torch

__all__ = ["is_exporting"]

_torch_is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)  # torch >= 2.4


def is_exporting() -> bool:
    """True while ``torch.export`` (also ``torch.onnx.export``'s default exporter) or the TorchScript tracer
    (``torch.onnx.export(dynamo=False)``) records the model. Such graphs are traced at one example size and
    then run at others, so shape-dependent Python control flow must not decide anything; ``torch.compile``
    guards and recompiles instead, and takes the eager code."""
    return _torch_is_exporting() or torch.jit.is_tracing()
