"""Repository state of the test Hub server: files, commits, repos, the blob store, replies."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Files the server tells the client to send through LFS (mirrors the default .gitattributes written below).
LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".h5", ".onnx", ".msgpack", ".npz", ".npy",
                ".pkl", ".zip", ".gz", ".tar", ".tgz")
LFS_THRESHOLD = 10 * 1000 * 1000  # bytes; the Hub refuses regular (non-LFS) files of 10 MB and more
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob: what the Hub reports as ``oid`` / ``ETag`` for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _File:
    size: int
    git_oid: str  # blob sha1 of the content (regular) or of the pointer (LFS)
    sha256: str | None = None  # set for LFS files only

    @property
    def key(self) -> str:
        """Key of the content in the object store (sha1 for regular files, sha256 for LFS)."""
        return self.sha256 or self.git_oid

    def entry(self, path: str) -> dict:
        """Tree / paths-info entry as the Hub returns it."""
        out = {"type": "file", "oid": self.git_oid, "size": self.size, "path": path}
        if self.sha256:
            out["lfs"] = {"oid": self.sha256, "size": self.size,
                          "pointerSize": len(lfs_pointer(self.sha256, self.size))}
        return out


@dataclass
class _Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    date: str
    files: dict[str, _File]


@dataclass
class _Repo:
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: list[str] = field(default_factory=list)  # refs/pr/N -> prs[N - 1]
    commits: dict[str, _Commit] = field(default_factory=dict)
    lfs_oids: set[str] = field(default_factory=set)  # LFS objects uploaded to this repo

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]


class HubError(Exception):
    """An HTTP error answer; ``code`` becomes the ``X-Error-Code`` header the client maps to its exceptions."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = headers or {}, extra or {}


class _Response:
    def __init__(self, status: int = 200, body: bytes | dict | list = b"", headers: dict | None = None):
        self.headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            self.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        self.status, self.body = status, body


class _Store:
    """Content-addressed bytes: in memory, or one file per object under ``root``."""

    def __init__(self, root: Path | None):
        self.root, self._mem = root, {}
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, data: bytes) -> None:
        if self.root is None:
            self._mem[key] = data
        elif not (self.root / key).exists():
            tmp = self.root / f"{key}.tmp{threading.get_ident()}"
            tmp.write_bytes(data)
            tmp.replace(self.root / key)

    def get(self, key: str) -> bytes:
        return self._mem[key] if self.root is None else (self.root / key).read_bytes()

    def has(self, key: str) -> bool:
        return key in self._mem if self.root is None else (self.root / key).exists()
