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

The endpoints are implemented in ``routes.py`` (a mixin), the repository model in ``state.py``.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
import traceback
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .routes import HubRoutes
from .state import HubError, _Commit, _File, _Repo, _Response, _Store, git_blob_sha1, lfs_pointer


class HubServer(HubRoutes):
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
