"""Streaming a file over HTTP(S): the transfer most upstreams use (``UpstreamPlugin.transfer``'s default)."""
from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from ..errors import CheckpointError, WeightsUnavailableError

__all__ = ["http_download"]

_CHUNK = 1 << 20


def _progress(total: Optional[int], name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr,
                disable=None if enabled else True, leave=False)


def http_download(url: str, target: Path, name: str, progress: bool, *, elsewhere: Optional[str] = None) -> str:
    """Stream ``url`` into ``target``; return the sha256.

    One attempt, no retry: a host that cannot be resolved or reached (no network) fails at once, and the error
    says how to get the file another way.

    Args:
        url: The file.
        target: Where to write it (a temporary file the caller renames into place).
        name: What is downloaded (the zoo name), for messages.
        progress: Show a progress bar (on a terminal).
        elsewhere: How to get the file without this machine's network, for the message when the host cannot be
            reached (default: download it elsewhere and ``segzoo convert`` it).

    Raises:
        WeightsUnavailableError: The host cannot be reached, or the file is not there.
        CheckpointError: The download was cut short.
    """
    digest = hashlib.sha256()
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "segzoo"}), timeout=60)
    except urllib.error.HTTPError as err:
        raise WeightsUnavailableError(f"{name}: {url} answered HTTP {err.code} ({err.reason})") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        how = elsewhere or ("download the file on a machine that can reach it, run `segzoo convert FILE DIR` and "
                            "load local-dir:DIR")
        raise WeightsUnavailableError(f"{name}: cannot reach {url} ({reason}); to get the weights without it, "
                                      f"{how}") from None
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
