"""A small Hugging Face Hub-compatible HTTP server for tests (standard library only).

It speaks the subset of the Hub wire protocol that the real, unmodified ``huggingface_hub`` 2.x client uses for
model repos: repo creation/deletion, model info, tree / paths-info listings, refs, commit history, branches, tags,
pull-request refs (``create_pr=True``), preupload, ndjson commits, the basic Git LFS upload flow and
``/resolve`` downloads with byte ranges. Xet is not spoken: clients must run with ``HF_HUB_DISABLE_XET=1``
(or ``huggingface_hub.constants.HF_HUB_DISABLE_XET = True``), otherwise LFS uploads go to a Xet endpoint.

Usage::

    with HubServer(tokens={"hf_test_alice": "alice"}) as server:
        api = HfApi(endpoint=server.endpoint, token="hf_test_alice")
        api.create_repo("alice/demo")

State (repos, commits, refs) lives on the ``HubServer`` object, so ``stop()`` then ``start()`` serves the same
repos again on the same port. With ``storage_dir`` the file contents are kept on disk and the metadata in
``state.json`` there, so a new ``HubServer`` on the same directory sees the same repos.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import re
import socket
import threading
import traceback
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

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


class HubServer:
    """Hub-compatible server on ``127.0.0.1`` in a background thread.

    Args:
        tokens: token -> user name; requests carry ``Authorization: Bearer <token>``.
        storage_dir: where file contents (and ``state.json``) go; in memory when None.
        orgs: organisation -> member user names (members may write to the organisation's repos).
        port: fixed port; 0 picks a free one (kept across ``stop()`` / ``start()``).
        gitattributes: whether new repos start, like on the Hub, with an initial commit holding ``.gitattributes``.

    Test hooks: ``request_log`` (list of ``(method, path)``), ``errors`` (server-side tracebacks, should stay
    empty), ``tamper()`` / ``untamper()`` and ``seed()``.
    """

    def __init__(self, tokens: dict[str, str], storage_dir: str | Path | None = None,
                 orgs: dict[str, list[str]] | None = None, port: int = 0, gitattributes: bool = True):
        self.tokens, self.orgs, self.gitattributes = dict(tokens), dict(orgs or {}), gitattributes
        self.storage_dir = Path(storage_dir) if storage_dir is not None else None
        self.request_log: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._port, self._httpd, self._thread = port, None, None
        self._lock = threading.RLock()
        self._conns: set[socket.socket] = set()
        self._repos: dict[str, _Repo] = {}
        self._counter = 0
        self._pending_lfs: dict[tuple[str, str], int] = {}  # (repo_id, sha256) -> size announced in the batch
        self._tampered: dict[tuple[str, str], bytes] = {}  # (repo_id, content key) -> bytes served instead
        self._store = _Store(self.storage_dir / "objects" if self.storage_dir else None)
        if self.storage_dir is not None and (self.storage_dir / "state.json").exists():
            self._load_state()

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> HubServer:
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"hub-server-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        # Kept-alive client connections would otherwise still be answered by their handler threads.
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ test hooks
    def tamper(self, repo_id: str, path: str, data: bytes | None = None, truncate_to: int | None = None,
               revision: str = "main") -> None:
        """Serve other bytes for a file while every reported metadata (ETag, sizes, tree) stays the original.

        ``data`` replaces the bytes, ``truncate_to`` cuts them, neither flips one byte (same length). It applies to
        that content wherever it is served in the repo (every revision holding the same blob).
        """
        with self._lock:
            repo = self._repos[repo_id]
            f = repo.commits[self._resolve(repo, revision)].files[path]
            original = self._store.get(f.key)
        if data is None and truncate_to is not None:
            data = original[:truncate_to]
        elif data is None:
            i = len(original) // 2
            data = original[:i] + bytes([original[i] ^ 0xFF]) + original[i + 1:]
        with self._lock:
            self._tampered[(repo_id, f.key)] = data

    def file_bytes(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        """The committed bytes of a file (what the metadata describes, ignoring any tampering)."""
        with self._lock:
            repo = self._repos[repo_id]
            return self._store.get(repo.commits[self._resolve(repo, revision)].files[path].key)

    def head(self, repo_id: str, revision: str = "main") -> str:
        """Commit sha a revision points at."""
        with self._lock:
            return self._resolve(self._repos[repo_id], revision)

    def untamper(self) -> None:
        with self._lock:
            self._tampered.clear()

    def seed(self, repo_id: str, files: dict[str, bytes], *, private: bool = False, branch: str = "main",
             message: str = "seed", lfs: bool | None = None) -> str:
        """Create the repo if needed and commit ``files`` server-side (no client round trip); returns the sha.

        ``lfs`` forces every file to LFS (True) or regular (False); by default the preupload rule decides.
        """
        with self._lock:
            if repo_id not in self._repos:
                self._create_repo(repo_id, private, repo_id.split("/")[0])
            repo = self._repos[repo_id]
            head = repo.commits[repo.branches.get(branch, repo.branches["main"])]
            tree = dict(head.files)
            for path, data in files.items():
                if lfs if lfs is not None else self._wants_lfs(path, len(data)):
                    sha = hashlib.sha256(data).hexdigest()
                    self._store.put(sha, data)
                    repo.lfs_oids.add(sha)
                    tree[path] = _File(len(data), git_blob_sha1(lfs_pointer(sha, len(data))), sha)
                else:
                    tree[path] = self._put_regular(data)
            oid = self._new_commit(repo, head.oid, message, "", repo.namespace, tree)
            repo.branches[branch] = oid
            self._save_state()
            return oid

    # ------------------------------------------------------------------ state helpers
    def _save_state(self) -> None:
        if self.storage_dir is None:
            return
        state = {"counter": self._counter, "repos": [
            {**asdict(r), "lfs_oids": sorted(r.lfs_oids)} for r in self._repos.values()]}
        tmp = self.storage_dir / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(self.storage_dir / "state.json")

    def _load_state(self) -> None:
        state = json.loads((self.storage_dir / "state.json").read_text())
        self._counter = state["counter"]
        for r in state["repos"]:
            commits = {oid: _Commit(**{**c, "files": {p: _File(**f) for p, f in c["files"].items()}})
                       for oid, c in r.pop("commits").items()}
            self._repos[r["repo_id"]] = _Repo(**{**r, "commits": commits, "lfs_oids": set(r["lfs_oids"])})

    def _can_write(self, user: str | None, namespace: str) -> bool:
        return user is not None and (user == namespace or user in self.orgs.get(namespace, ()))

    def _user(self, headers) -> str | None:
        auth = headers.get("Authorization")
        if not auth:
            return None
        token = auth[7:] if auth.lower().startswith("bearer ") else auth
        if token not in self.tokens:
            # Exact message: the client then does not turn this 401 into RepositoryNotFoundError.
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def _repo_for_read(self, repo_id: str, user: str | None) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None or (repo.private and not self._can_write(user, repo.namespace)):
            # Like the Hub: 401 when anonymous, 404 with a token; never reveal that a private repo exists.
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def _repo_for_write(self, repo_id: str, user: str | None) -> _Repo:
        repo = self._repo_for_read(repo_id, user)
        if user is None:
            raise HubError(401, f"Authentication required to write to {repo_id}: pass a token")
        if not self._can_write(user, repo.namespace):
            raise HubError(403, f"You don't have the rights to write to {repo_id} (user '{user}')")
        return repo

    def _resolve(self, repo: _Repo, rev: str) -> str:
        """Branch, tag, ``refs/heads|tags/...``, ``refs/pr/N`` or full commit sha -> commit sha."""
        for prefix, refs in (("refs/heads/", repo.branches), ("refs/tags/", repo.tags)):
            if rev.startswith(prefix) and rev[len(prefix):] in refs:
                return refs[rev[len(prefix):]]
        if rev in repo.branches:
            return repo.branches[rev]
        if rev in repo.tags:
            return repo.tags[rev]
        m = re.fullmatch(r"refs/pr/(\d+)", rev)
        if m and 0 < int(m.group(1)) <= len(repo.prs):
            return repo.prs[int(m.group(1)) - 1]
        if rev in repo.commits:
            return rev
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _wants_lfs(self, path: str, size: int) -> bool:
        return path.lower().endswith(LFS_SUFFIXES) or size >= LFS_THRESHOLD

    def _put_regular(self, data: bytes) -> _File:
        oid = git_blob_sha1(data)
        self._store.put(oid, data)
        return _File(len(data), oid)

    def _new_commit(self, repo: _Repo, parent: str | None, title: str, message: str, author: str,
                    files: dict[str, _File]) -> str:
        self._counter += 1
        listing = "".join(f"{p}\0{f.git_oid}\n" for p, f in sorted(files.items()))
        oid = hashlib.sha1(f"{parent}\n{title}\n{message}\n{author}\n{self._counter}\n{listing}".encode()).hexdigest()
        repo.commits[oid] = _Commit(oid, parent, title, message, author, _now(), files)
        return oid

    def _create_repo(self, repo_id: str, private: bool, author: str) -> _Repo:
        repo = _Repo(repo_id, private, _now())
        files = {".gitattributes": self._put_regular(GITATTRIBUTES)} if self.gitattributes else {}
        repo.branches["main"] = self._new_commit(repo, None, "initial commit", "", author, files)
        self._repos[repo_id] = repo
        return repo

    def _tree(self, commit: _Commit, prefix: str, recursive: bool) -> list[dict]:
        """Entries under ``prefix`` (folders first met are listed before their files, like the Hub)."""
        prefix = prefix.strip("/")
        out, seen_dirs = [], set()
        for path, f in sorted(commit.files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            parts = path[len(prefix) + 1 if prefix else 0:].split("/")
            base = prefix + "/" if prefix else ""
            for i in range(1, len(parts) if recursive else min(2, len(parts))):
                d = base + "/".join(parts[:i])
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    out.append(self._dir_entry(commit, d))
            if recursive or len(parts) == 1:
                out.append(f.entry(path))
        if prefix and not out:
            raise HubError(404, f"{prefix} does not exist on this revision", "EntryNotFound")
        return out

    @staticmethod
    def _dir_entry(commit: _Commit, d: str) -> dict:
        listing = "".join(f"{p}\0{f.git_oid}\n" for p, f in sorted(commit.files.items()) if p.startswith(d + "/"))
        return {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "size": 0, "path": d}

    # ------------------------------------------------------------------ routing
    def _dispatch(self, method: str, raw_path: str, query: dict, headers, body: bytes) -> _Response:
        p = raw_path.split("/")[1:]
        user = self._user(headers)
        if p[:1] == ["api"]:
            if p[1:] == ["whoami-v2"]:
                return self._whoami(user)
            if p[1:] == ["validate-yaml"] and method == "POST":
                return _Response(body={"errors": [], "warnings": []})
            if p[1:] == ["repos", "create"] and method == "POST":
                return self._api_create(user, json.loads(body or b"{}"))
            if p[1:] == ["repos", "delete"] and method == "DELETE":
                return self._api_delete(user, json.loads(body or b"{}"))
            if len(p) >= 4 and p[1] in ("models", "datasets", "spaces"):
                if p[1] != "models":
                    raise HubError(404, "Only model repos are served here", "RepoNotFound")
                return self._api_repo(method, f"{unquote(p[2])}/{unquote(p[3])}", p[4:], query, user, body)
        elif len(p) == 4 and p[0] in ("lfs-upload", "lfs-verify"):
            return self._lfs_transfer(p[0], f"{unquote(p[1])}/{unquote(p[2])}", unquote(p[3]), body)
        elif len(p) == 6 and p[1].endswith(".git") and p[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(f"{unquote(p[0])}/{unquote(p[1])[:-4]}", user, json.loads(body or b"{}"))
        elif len(p) >= 5 and p[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve_file(method, f"{unquote(p[0])}/{unquote(p[1])}", unquote(p[3]),
                                      unquote("/".join(p[4:])), headers, user)
        raise HubError(404, f"Not found: {method} {raw_path}")

    def _api_repo(self, method: str, repo_id: str, rest: list[str], query: dict, user, body: bytes) -> _Response:
        r = [unquote(s) for s in rest]
        if not r or (len(r) == 2 and r[0] == "revision"):
            if method in ("GET", "HEAD"):
                return self._model_info(repo_id, r[1] if r else "main", user, query.get("blobs") == ["true"])
        elif r[0] == "tree" and len(r) >= 2 and method == "GET":
            repo = self._repo_for_read(repo_id, user)
            commit = repo.commits[self._resolve(repo, r[1])]
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return _Response(body=self._tree(commit, "/".join(r[2:]), recursive))
        elif r[0] == "paths-info" and len(r) == 2 and method == "POST":
            repo = self._repo_for_read(repo_id, user)
            commit = repo.commits[self._resolve(repo, r[1])]
            form = parse_qs(body.decode()) if body[:1] != b"{" else json.loads(body)
            out = []
            for path in form.get("paths", []):
                path = path.strip("/")
                if path in commit.files:
                    out.append(commit.files[path].entry(path))
                elif any(p.startswith(path + "/") for p in commit.files):
                    out.append(self._dir_entry(commit, path))
            return _Response(body=out)
        elif r == ["refs"] and method == "GET":
            return self._refs(self._repo_for_read(repo_id, user))
        elif r[0] == "commits" and len(r) == 2 and method == "GET":
            repo = self._repo_for_read(repo_id, user)
            oid, out = self._resolve(repo, r[1]), []
            while oid is not None:
                c = repo.commits[oid]
                out.append({"id": c.oid, "title": c.title, "message": c.message, "date": c.date,
                            "authors": [{"user": c.author}]})
                oid = c.parent
            return _Response(body=out)
        elif r[0] == "branch" and len(r) == 2 and method in ("POST", "DELETE"):
            return self._branch(method, self._repo_for_write(repo_id, user), r[1], json.loads(body or b"{}"))
        elif r[0] == "tag" and len(r) == 2 and method in ("POST", "DELETE"):
            return self._tag(method, self._repo_for_write(repo_id, user), r[1], json.loads(body or b"{}"))
        elif r[0] == "preupload" and len(r) == 2 and method == "POST":
            return self._preupload(self._repo_for_write(repo_id, user), r[1], json.loads(body))
        elif r[0] == "commit" and len(r) == 2 and method == "POST":
            return self._commit(self._repo_for_write(repo_id, user), r[1], query, user, body)
        elif r == ["settings"] and method == "PUT":
            repo = self._repo_for_write(repo_id, user)
            settings = json.loads(body or b"{}")
            if "visibility" in settings or "private" in settings:
                repo.private = settings.get("visibility") == "private" or settings.get("private") is True
                self._save_state()
            return _Response(body={})
        raise HubError(404, f"Not found: {method} /api/models/{repo_id}/{'/'.join(rest)}")

    # ------------------------------------------------------------------ api endpoints
    def _whoami(self, user) -> _Response:
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": o} for o, members in self.orgs.items() if user in members]
        return _Response(body={"type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user,
                               "fullname": user, "email": f"{user}@example.invalid", "emailVerified": True,
                               "isPro": False, "orgs": orgs,
                               "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})

    def _api_create(self, user, payload: dict) -> _Response:
        if user is None:
            raise HubError(401, "You must be authenticated to create a repo: pass a token")
        name, namespace = payload.get("name") or "", payload.get("organization") or user
        if payload.get("type", "model") not in (None, "model"):
            raise HubError(400, "Only model repos are supported by this test server")
        if not (_NAME_RE.match(name) and _NAME_RE.match(namespace)):
            raise HubError(400, f"Invalid repo name {namespace}/{name}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.endpoint}/{repo_id}"
        if not self._can_write(user, namespace):
            raise HubError(403, f"You don't have the rights to create a model under the namespace '{namespace}'")
        if repo_id in self._repos:
            # The client's exist_ok path reads `url` from the 409 body.
            raise HubError(409, "You already created this model repo", extra={"url": url})
        private = payload.get("visibility") == "private" or payload.get("private") is True
        self._create_repo(repo_id, private, user)
        self._save_state()
        return _Response(body={"url": url, "name": repo_id, "id": repo_id})

    def _api_delete(self, user, payload: dict) -> _Response:
        repo_id = f"{payload.get('organization') or user}/{payload.get('name')}"
        self._repo_for_write(repo_id, user)
        del self._repos[repo_id]
        self._save_state()
        return _Response(body={})

    def _model_info(self, repo_id: str, rev: str, user, blobs: bool) -> _Response:
        repo = self._repo_for_read(repo_id, user)
        commit = repo.commits[self._resolve(repo, rev)]
        siblings = []
        for path, f in sorted(commit.files.items()):
            s = {"rfilename": path}
            if blobs:
                s.update(size=f.size, blobId=f.git_oid)
                if f.sha256:
                    s["lfs"] = {"size": f.size, "sha256": f.sha256,
                                "pointerSize": len(lfs_pointer(f.sha256, f.size))}
            siblings.append(s)
        return _Response(body={
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": repo.namespace, "sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created_at,
            "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "siblings": siblings, "usedStorage": sum(f.size for f in commit.files.values())})

    def _refs(self, repo: _Repo) -> _Response:
        def ref(name, full, oid):
            return {"name": name, "ref": full, "targetCommit": oid}
        return _Response(body={
            "branches": [ref(b, f"refs/heads/{b}", o) for b, o in sorted(repo.branches.items())],
            "tags": [ref(t, f"refs/tags/{t}", o) for t, o in sorted(repo.tags.items())],
            "converts": [],
            "pullRequests": [ref(f"refs/pr/{i}", f"refs/pr/{i}", o) for i, o in enumerate(repo.prs, 1)]})

    def _branch(self, method: str, repo: _Repo, branch: str, payload: dict) -> _Response:
        branch = branch.removeprefix("refs/heads/")
        if method == "DELETE":
            if branch not in repo.branches:
                raise HubError(404, f"Branch {branch} does not exist", "RevisionNotFound")
            if branch == "main":
                raise HubError(403, "Cannot delete the default branch")
            del repo.branches[branch]
        else:
            if branch in repo.branches:
                raise HubError(409, f"Reference refs/heads/{branch} already exists")
            if not _NAME_RE.match(branch.replace("/", "-")):
                raise HubError(400, f"Invalid branch name {branch}")
            repo.branches[branch] = self._resolve(repo, payload.get("startingPoint") or "main")
        self._save_state()
        return _Response(body={})

    def _tag(self, method: str, repo: _Repo, rev_or_tag: str, payload: dict) -> _Response:
        if method == "DELETE":
            tag = rev_or_tag.removeprefix("refs/tags/")
            if tag not in repo.tags:
                raise HubError(404, f"Tag {tag} does not exist", "RevisionNotFound")
            del repo.tags[tag]
        else:
            tag = payload.get("tag") or ""
            if not _NAME_RE.match(tag.replace("/", "-")):
                raise HubError(400, f"Invalid tag name {tag!r}")
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = self._resolve(repo, rev_or_tag)
        self._save_state()
        return _Response(body={})

    def _preupload(self, repo: _Repo, rev: str, payload: dict) -> _Response:
        commit = repo.commits[self._resolve(repo, rev)]
        out = []
        for item in payload.get("files", []):
            path, size = item["path"], int(item["size"])
            mode = "lfs" if self._wants_lfs(path, size) else "regular"
            entry = {"path": path, "uploadMode": mode, "shouldIgnore": False}
            old = commit.files.get(path)
            if old is not None:
                # The client skips a file when this oid equals its own: sha256 for "lfs", git blob sha1 for
                # "regular" (whatever way the stored copy was committed).
                if mode == "lfs":
                    entry["oid"] = old.sha256 or hashlib.sha256(self._store.get(old.key)).hexdigest()
                else:
                    entry["oid"] = git_blob_sha1(self._store.get(old.key)) if old.sha256 else old.git_oid
            out.append(entry)
        return _Response(body={"files": out, "commitOid": commit.oid})

    def _commit(self, repo: _Repo, rev: str, query: dict, user: str, body: bytes) -> _Response:
        items = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((i["value"] for i in items if i.get("key") == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "The commit needs a header line with a summary")
        create_pr = query.get("create_pr") == ["1"]
        branch = rev.removeprefix("refs/heads/")
        pr = re.fullmatch(r"refs/pr/(\d+)", rev)
        if create_pr or pr:
            base = self._resolve(repo, rev)
        elif branch in repo.branches:
            base = repo.branches[branch]
        else:
            self._resolve(repo, rev)  # RevisionNotFound when it is nothing
            raise HubError(400, f"Invalid rev id: {rev} is not a branch")
        if header.get("parentCommit") and header["parentCommit"] != base:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        tree = dict(repo.commits[base].files)
        for item in items:
            key, v = item.get("key"), item.get("value", {})
            path = str(v.get("path", "")).strip()
            if key == "header":
                continue
            if not path or path.startswith("/") or ".." in path.split("/"):
                raise HubError(400, f"Invalid path {path!r}")
            if key == "file":
                data = base64.b64decode(v["content"]) if v.get("encoding") == "base64" else v["content"].encode()
                if len(data) >= LFS_THRESHOLD:
                    raise HubError(400, f"{path}: files of {LFS_THRESHOLD} bytes and more must go through LFS")
                tree[path] = self._put_regular(data)
            elif key == "lfsFile":
                sha, size = v.get("oid", ""), v.get("size")
                if sha not in repo.lfs_oids or not self._store.has(sha):
                    raise HubError(400, f"{path}: LFS object {sha} was never uploaded to {repo.repo_id}")
                real_size = len(self._store.get(sha))
                if size is not None and int(size) != real_size:
                    raise HubError(400, f"{path}: LFS object {sha} has size {real_size}, not {size}")
                tree[path] = _File(real_size, git_blob_sha1(lfs_pointer(sha, real_size)), sha)
            elif key == "deletedFile":
                if path not in tree:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del tree[path]
            elif key == "deletedFolder":
                doomed = [p for p in tree if p.startswith(path.rstrip("/") + "/")]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in doomed:
                    del tree[p]
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        oid = self._new_commit(repo, base, header["summary"], header.get("description") or "", user, tree)
        pr_url = None
        if create_pr:
            repo.prs.append(oid)
            pr_url = f"{self.endpoint}/{repo.repo_id}/discussions/{len(repo.prs)}"
        elif pr:
            repo.prs[int(pr.group(1)) - 1] = oid
        else:
            repo.branches[branch] = oid
        self._save_state()
        return _Response(body={"success": True, "commitOid": oid, "pullRequestUrl": pr_url,
                               "commitUrl": f"{self.endpoint}/{repo.repo_id}/commit/{oid}"})

    # ------------------------------------------------------------------ LFS
    def _lfs_batch(self, repo_id: str, user, payload: dict) -> _Response:
        if payload.get("operation") != "upload":
            raise HubError(400, "Only the LFS upload operation is supported; download through /resolve")
        repo = self._repo_for_write(repo_id, user)
        objects = []
        for obj in payload.get("objects", []):
            sha, size = str(obj.get("oid", "")), obj.get("size")
            if not _HEX64.match(sha) or not isinstance(size, int) or size < 0:
                objects.append({"oid": sha, "size": size if isinstance(size, int) else -1,
                                "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            out = {"oid": sha, "size": size, "authenticated": True}
            if self._store.has(sha) and len(self._store.get(sha)) == size:
                repo.lfs_oids.add(sha)  # already stored: no actions, the client skips the upload
            else:
                self._pending_lfs[(repo_id, sha)] = size
                url = f"{self.endpoint}/{{}}/{repo_id}/{sha}"
                out["actions"] = {"upload": {"href": url.format("lfs-upload")},
                                  "verify": {"href": url.format("lfs-verify")}}
            objects.append(out)
        self._save_state()
        return _Response(body={"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                         headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_transfer(self, action: str, repo_id: str, sha: str, body: bytes) -> _Response:
        if action == "lfs-upload":
            size = self._pending_lfs.get((repo_id, sha))
            if size is None:
                raise HubError(404, f"No pending LFS upload of {sha} for {repo_id}")
            got = hashlib.sha256(body).hexdigest()
            if len(body) != size or got != sha:
                raise HubError(400, f"LFS upload mismatch: expected sha256 {sha} and {size} bytes, "
                                    f"got {got} and {len(body)} bytes")
            self._store.put(sha, body)
            self._repos[repo_id].lfs_oids.add(sha)
            del self._pending_lfs[(repo_id, sha)]
            self._save_state()
            return _Response(headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        # verify
        info = json.loads(body or b"{}")
        if repo_id not in self._repos or sha not in self._repos[repo_id].lfs_oids or \
                len(self._store.get(sha)) != info.get("size"):
            raise HubError(404, f"LFS object {sha} not found in {repo_id}")
        return _Response(body={"success": True})

    # ------------------------------------------------------------------ downloads
    def _resolve_file(self, method: str, repo_id: str, rev: str, path: str, headers, user) -> _Response:
        repo = self._repo_for_read(repo_id, user)
        oid = self._resolve(repo, rev)
        f = repo.commits[oid].files.get(path)
        if f is None:
            # The commit header lets the client cache the non-existence (.no_exist) for this commit.
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": oid})
        meta = {"X-Repo-Commit": oid, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
                "ETag": f'"{f.sha256 or f.git_oid}"'}
        if f.sha256:
            meta.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size)})
        if method == "HEAD":
            # Metadata only: always the committed size, even for tampered content.
            return _Response(headers={**meta, "Content-Length": str(f.size)})
        data = self._tampered.get((repo_id, f.key))
        if data is None:
            data = self._store.get(f.key)
        rng = headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if m and (m.group(1) or m.group(2)):
            n = len(data)
            start, end = (int(m.group(1)), int(m.group(2) or n - 1)) if m.group(1) else \
                (max(0, n - int(m.group(2))), n - 1)
            if start >= n or end < start:
                raise HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{n}"})
            end = min(end, n - 1)
            return _Response(206, data[start:end + 1], {**meta, "Content-Range": f"bytes {start}-{end}/{n}"})
        return _Response(200, data, meta)


class _Handler(BaseHTTPRequestHandler):
    """Reads the whole request (Content-Length or chunked), asks the hub, answers with a Content-Length."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the Hub
    server_hub: HubServer
    timeout = 60  # idle kept-alive connections end eventually

    def setup(self):
        super().setup()
        with self.server_hub._lock:
            self.server_hub._conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server_hub._lock:
                self.server_hub._conns.discard(self.connection)

    def log_message(self, format, *args):
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        hub = self.server_hub
        try:
            body = self._read_body()  # always, even for errors: an unread body would poison the next request
        except ValueError:  # malformed chunked framing: the connection cannot be trusted any more
            self.close_connection = True
            self.send_error(400, "Malformed chunked body")
            return
        url = urlsplit(self.path)
        with hub._lock:
            hub.request_log.append((self.command, url.path))
        try:
            with hub._lock:
                resp = hub._dispatch(self.command, url.path, parse_qs(url.query), self.headers, body)
        except HubError as e:
            hdrs = {**e.headers, "X-Error-Message": e.message.replace("\n", " ")}
            if e.code:
                hdrs["X-Error-Code"] = e.code
            resp = _Response(e.status, {"error": e.message, **e.extra}, hdrs)
        except json.JSONDecodeError as e:
            resp = _Response(400, {"error": f"Malformed JSON body: {e}"})
        except Exception:  # a bug in this server: report it loudly to the test
            hub.errors.append(traceback.format_exc())
            resp = _Response(500, {"error": "internal test-server error"})
        try:
            self.send_response(resp.status)
            for k, v in resp.headers.items():
                self.send_header(k, v)
            if "Content-Length" not in resp.headers:
                self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if self.command != "HEAD" and resp.body:
                self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle
