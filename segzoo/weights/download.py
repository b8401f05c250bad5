"""Downloading an upstream checkpoint file into place: the upstream plug-in transfers it (its hosts, mirrors and
transport: HTTP, Google Drive) into a temporary file beside the destination and checks it (its integrity rule);
then it is renamed into place. Nothing half-written ever has the final name.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..upstream import UpstreamFile
from ..upstreams import UpstreamPlugin
from .checkpoint import public_modes

__all__ = ["download"]


def download(upstream: UpstreamPlugin, file: UpstreamFile, destination: Path, *, name: str,
             progress: bool = True) -> str:
    """Download ``file`` of ``upstream`` to ``destination`` (atomically), checked by the upstream's integrity
    rule. Returns the file's full sha256.

    Raises:
        WeightsUnavailableError: The host cannot be reached, the file is not there, or a tool is missing (gdown).
        CheckpointError: The download broke off or the file fails the integrity check.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial")
    os.close(fd)
    temporary = Path(temporary)
    try:
        sha256 = upstream.transfer(file, temporary, name=name, progress=progress)
        upstream.verify(file, sha256, name=name)
        public_modes(temporary)  # mkstemp's 0600 would keep a shared cache's other users out
        os.replace(temporary, destination)
        return sha256
    finally:
        temporary.unlink(missing_ok=True)
