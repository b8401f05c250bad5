"""The publishing manifest: which zoo models are mirrored on the Hub, at which commit, with which sha256.

``maintainers/publish_model.py`` writes it when a maintainer publishes a model; ``segzoo/zoo/published.json`` ships with
the package, and ``SEGZOO_MANIFEST`` points at another file (a fork's own mirror, or a test's).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

__all__ = ["MANIFEST_ENV", "DEFAULT_MANIFEST", "read_manifest", "write_manifest_record"]

MANIFEST_ENV = "SEGZOO_MANIFEST"
DEFAULT_MANIFEST = Path(__file__).with_name("published.json")


def read_manifest(path: Optional[str | os.PathLike] = None) -> dict[str, dict[str, Any]]:
    """The manifest (``path``, else ``SEGZOO_MANIFEST``, else the packaged one): zoo name -> ``{repo_id,
    revision, sha256, metrics, source}``; {} if the file does not exist."""
    path = Path(path or os.environ.get(MANIFEST_ENV) or DEFAULT_MANIFEST)
    return json.loads(path.read_text()) if path.is_file() else {}


def write_manifest_record(name: str, record: dict[str, Any], path: str | os.PathLike = DEFAULT_MANIFEST) -> None:
    """Add or replace the record of zoo model ``name`` in the manifest at ``path`` (sorted by name)."""
    records = read_manifest(path)
    records[name] = record
    Path(path).write_text(json.dumps(dict(sorted(records.items())), indent=2) + "\n")
