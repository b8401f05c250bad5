"""Downloading an upstream checkpoint file: over HTTP(S) from a base URL per host (mirrors are set by environment
variables, read at call time), or from Google Drive through gdown; streamed to a temporary file beside the
destination, its sha256 checked, then renamed into place. Nothing half-written ever has the final name.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import CheckpointError, WeightsUnavailableError
from ..upstream import UpstreamFile
from .checkpoint import public_modes

__all__ = ["HOSTS", "UpstreamHost", "file_url", "download"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class UpstreamHost:
    """Where an upstream keeps its files.

    Attributes:
        key: The ``UpstreamFile.host`` value.
        env: The environment variable that sets another base URL (a mirror), read at call time.
        default: The upstream's own base URL; None for Google Drive (its files need gdown).
    """

    key: str
    env: str
    default: Optional[str]


HOSTS = {host.key: host for host in (
    UpstreamHost("torchvision", "SEGZOO_TORCHVISION_URL", "https://download.pytorch.org/models/"),
    # The reference zoo's files are on Google Drive; a mirror serves them as <base>/<Drive file id>.
    UpstreamHost("gdrive", "SEGZOO_GDRIVE_URL", None),
    # mmsegmentation's model zoo; paths keep its folders (v0.5/pspnet/<config>/<file>.pth)
    UpstreamHost("openmmlab", "SEGZOO_OPENMMLAB_URL", "https://download.openmmlab.com/mmsegmentation/"),
)}


def file_url(file: UpstreamFile) -> Optional[str]:
    """The URL ``file`` is downloaded from now (a mirror set in the environment wins), or None for a Drive file
    without a mirror."""
    host = HOSTS[file.host]
    base = os.environ.get(host.env) or host.default
    if base is None:
        return None
    return base.rstrip("/") + "/" + file.path


def _progress(total: Optional[int], name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr,
                disable=None if enabled else True, leave=False)


def _http_download(url: str, target: Path, name: str, progress: bool) -> str:
    """Stream ``url`` into ``target``; return the sha256. Errors: WeightsUnavailableError (cannot reach, not found),
    CheckpointError (cut short)."""
    digest = hashlib.sha256()
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "segzoo"}), timeout=60)
    except urllib.error.HTTPError as err:
        raise WeightsUnavailableError(f"{name}: {url} answered HTTP {err.code} ({err.reason})") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise WeightsUnavailableError(f"{name}: cannot reach {url} ({reason})") from None
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with open(target, "wb") as out, _progress(total, name, progress) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (http.client.IncompleteRead, OSError) as err:
                    raise CheckpointError(f"{name}: the download from {url} broke off after {received} bytes "
                                          f"({type(err).__name__}); try again") from None
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise CheckpointError(f"{name}: the download from {url} ended after {received} of {total} bytes; try again")
    return digest.hexdigest()


def _gdrive_download(file: UpstreamFile, target: Path, name: str, progress: bool) -> str:
    try:
        import gdown
    except ImportError:
        raise WeightsUnavailableError(
            f"{name} is a Google Drive file ({file.path}): install gdown (pip install 'segzoo[gdrive]'), or set "
            f"{HOSTS[file.host].env} to a mirror, or download it yourself and run `segzoo convert`") from None
    try:
        written = gdown.download(id=file.path, output=str(target), quiet=not progress)
    except Exception as err:  # gdown raises its own errors for missing files, quota, HTML pages
        written = None
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
    else:
        reason = "gdown returned nothing"
    if not written or not target.is_file():
        raise WeightsUnavailableError(
            f"{name}: Google Drive file {file.path} could not be downloaded ({reason}); it may be gone. Download "
            f"it from the upstream's page yourself and run `segzoo convert`") from None
    return hashlib.sha256(target.read_bytes()).hexdigest()


def download(file: UpstreamFile, destination: Path, *, name: str, progress: bool = True) -> str:
    """Download ``file`` to ``destination`` (atomically) and check its sha256 (the full hash or the prefix the
    upstream publishes, as ``torch.hub`` checks it). Returns the full sha256.

    Raises:
        WeightsUnavailableError: The host cannot be reached, the file is not there, or gdown is needed.
        CheckpointError: The download broke off or its hash is not the published one.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial")
    os.close(fd)
    temporary = Path(temporary)
    try:
        url = file_url(file)
        if url is None:
            sha256 = _gdrive_download(file, temporary, name, progress)
        else:
            sha256 = _http_download(url, temporary, name, progress)
        if file.sha256 and not sha256.startswith(file.sha256):
            raise CheckpointError(f"{name}: the downloaded {file.path} has sha256 {sha256}, not the published "
                                  f"{file.sha256}: it is corrupt or another file; nothing was kept")
        public_modes(temporary)  # mkstemp's 0600 would keep a shared cache's other users out
        os.replace(temporary, destination)
        return sha256
    finally:
        temporary.unlink(missing_ok=True)
