"""segzoo's own cache of converted upstream checkpoints: ``<cache>/models/<zoo name>/`` holds the converted tensors
(``model.safetensors``) and ``source.json``: the upstream file it came from (path, URL, sha256), the segzoo version
that converted it and the sha256 of ``model.safetensors``. No config is cached: a model's config always comes
from its zoo entry, so a corrected recipe (classes, palette, test resize) in a new segzoo release reaches a
filled cache.

The cache is ``SEGZOO_CACHE``, else ``$XDG_CACHE_HOME/segzoo``, else ``~/.cache/segzoo``, read at call time. An
entry is written in a temporary folder that is renamed into place, and read only when both files are there,
``model.safetensors`` has the recorded sha256 and the record names the entry's current upstream file: a partial,
corrupt or outdated entry is never used (``valid_entry`` says None and the caller rebuilds it).
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
from safetensors.torch import save_file

from ..upstream import UpstreamFile
from ..version import __version__
from .checkpoint import WEIGHTS_NAME, public_modes

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


def _is_of(record: dict[str, Any], file: UpstreamFile, backbone_file: Optional[UpstreamFile] = None) -> bool:
    """Whether a cache record was converted from ``file`` (its path, and its published hash where there is one), and
    from ``backbone_file`` where the backbone's weights are a file of their own."""
    if backbone_file is not None and record.get("backbone_file") != backbone_file.path:
        return False
    return record.get("file") == file.path and (not file.sha256
                                                or str(record.get("upstream_sha256", "")).startswith(file.sha256))


def valid_entry(name: str, file: UpstreamFile, backbone_file: Optional[UpstreamFile] = None) -> Optional[Path]:
    """The cached entry of ``name`` when it is complete, intact and converted from ``file`` (and ``backbone_file``),
    else None."""
    directory = entry_dir(name)
    record = read_record(directory)
    if record is None or not _is_of(record, file, backbone_file) or not (directory / WEIGHTS_NAME).is_file():
        return None
    return directory if file_sha256(directory / WEIGHTS_NAME) == record.get("weights_sha256") else None


def write_entry(name: str, state: dict[str, torch.Tensor], record: dict[str, Any]) -> Path:
    """Save converted tensors as the cache entry of ``name`` with ``record`` (plus segzoo's version and the
    weights' sha256), atomically: written in a temporary folder beside it, then renamed into place over any old
    entry."""
    final = entry_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{name}.", suffix=".tmp"))
    try:
        tensors = {key: value.detach().contiguous().cpu() for key, value in state.items()}
        save_file(tensors, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        record = {**record, "segzoo_version": __version__, "weights_sha256": file_sha256(staging / WEIGHTS_NAME)}
        (staging / SOURCE_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        public_modes(staging)  # mkdtemp's 0700 would keep a shared cache's other users out
        if final.exists():  # an old, partial, corrupt or outdated entry
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
