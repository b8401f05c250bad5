"""segzoo's own cache of converted upstream checkpoints: ``<cache>/models/<zoo name>/`` holds ``model.safetensors``
+ ``config.json`` (as ``save_pretrained`` writes them) and ``source.json`` (where the weights came from, the
upstream file's sha256 and the sha256 of ``model.safetensors``).

The cache is ``SEGZOO_CACHE``, else ``$XDG_CACHE_HOME/segzoo``, else ``~/.cache/segzoo``, read at call time. An
entry is written in a temporary folder that is renamed into place, and read only when all three files are there
and ``model.safetensors`` has the recorded sha256: a partial or corrupt entry is never used (``valid_entry``
says None and the caller rebuilds it).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, save_pretrained

__all__ = ["CACHE_ENV", "SOURCE_RECORD", "cache_dir", "entry_dir", "valid_entry", "write_entry", "file_sha256"]

CACHE_ENV = "SEGZOO_CACHE"
SOURCE_RECORD = "source.json"


def cache_dir() -> Path:
    """The cache folder (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "segzoo"


def entry_dir(name: str) -> Path:
    """Where zoo model ``name``'s converted weights are (or would be) cached."""
    return cache_dir() / "models" / name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_record(directory: Path) -> Optional[dict[str, Any]]:
    try:
        return json.loads((directory / SOURCE_RECORD).read_text())
    except (OSError, ValueError):
        return None


def valid_entry(name: str) -> Optional[Path]:
    """The cached entry of ``name`` when it is complete and intact, else None."""
    directory = entry_dir(name)
    record = read_record(directory)
    if record is None or not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
        return None
    return directory if file_sha256(directory / WEIGHTS_NAME) == record.get("weights_sha256") else None


def write_entry(name: str, model: torch.nn.Module, record: dict[str, Any]) -> Path:
    """Save ``model`` as the cache entry of ``name`` with ``record`` (plus the weights' sha256), atomically:
    written in a temporary folder beside it, then renamed into place over any old entry."""
    final = entry_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{name}.", suffix=".tmp"))
    try:
        save_pretrained(model, staging)
        record = {**record, "weights_sha256": file_sha256(staging / WEIGHTS_NAME)}
        (staging / SOURCE_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.chmod(staging, 0o755 & ~_umask())
        if final.exists():  # an old, partial or corrupt entry
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
