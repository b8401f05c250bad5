"""What ``predict``'s ``auto`` measured, remembered: the inference path chosen for one model's weights on one CPU
at one input size, so that the next run of the same model on the same machine does not measure again.

The memory is one JSON file in segzoo's cache (``<cache>/inference-paths.json``, see ``segzoo.weights.cache``),
written atomically (a temporary file in the same folder, then renamed). A missing, unreadable or corrupt file is
an empty memory, and a cache that cannot be written leaves the choice unremembered: the memory saves time, it
never stops a prediction. It keeps the ``MAX_ENTRIES`` most recent choices. ``SEGZOO_REMEASURE=1`` (or
``predict(remeasure=True)``, ``segzoo predict --remeasure``) measures again and replaces the remembered choice.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..weights.cache import cache_dir

__all__ = ["MEMORY_NAME", "REMEASURE_ENV", "MAX_ENTRIES", "memory_path", "weights_fingerprint", "decision_key",
           "recall", "remember", "remeasure_requested"]

MEMORY_NAME = "inference-paths.json"
REMEASURE_ENV = "SEGZOO_REMEASURE"
MAX_ENTRIES = 256


def memory_path() -> Path:
    """The memory's file (in the cache folder, read at call time)."""
    return cache_dir() / MEMORY_NAME


def remeasure_requested() -> bool:
    """Whether ``SEGZOO_REMEASURE`` asks for a new measurement (any value but empty or ``0``)."""
    return os.environ.get(REMEASURE_ENV, "").strip() not in ("", "0")


def weights_fingerprint(model: nn.Module) -> str:
    """The sha256 of ``model``'s state (every tensor's name, dtype, shape and bytes): the same weights give the
    same fingerprint whichever file or Hub repo they came from, and a fine-tuned or re-initialised model another."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")  # the buffer itself: no copy
    return digest.hexdigest()


def decision_key(fingerprint: str, cpu: str, input_shape: Sequence[int], paths: Sequence[tuple[str, str]],
                 recipe: Any) -> str:
    """The key of one choice: the weights, the CPU (``precision.cpu_signature``), the batch's shape, the paths
    that were candidates and what each image goes through (scales, flip, windows, resize)."""
    parts = {"weights": fingerprint, "cpu": cpu, "shape": list(input_shape), "paths": [list(p) for p in paths],
             "recipe": repr(recipe)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _read() -> dict[str, dict]:
    try:
        entries = json.loads(memory_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def recall(key: str) -> Optional[dict]:
    """The remembered choice for ``key``: ``{"precision", "runtime", "agreement", "speedup", "measured"}``, or
    None."""
    entry = _read().get(key)
    if not isinstance(entry, dict) or not {"precision", "runtime"} <= entry.keys():
        return None
    return entry


def remember(key: str, choice: dict) -> bool:
    """Store ``choice`` under ``key`` (with the time it was measured); False when the cache cannot be written."""
    entries = _read()
    entries.pop(key, None)
    entries[key] = {**choice, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    kept = dict(list(entries.items())[-MAX_ENTRIES:])  # dicts keep insertion order: the newest last
    path = memory_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{MEMORY_NAME}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(kept, file, indent=1)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        return False
    return True
