"""The Hub API routes of the test Hub server (a mixin of ``HubServer``, which holds the state)."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qs, unquote

from .state import (
    _HEX64,
    _NAME_RE,
    GITATTRIBUTES,
    LFS_SUFFIXES,
    LFS_THRESHOLD,
    HubError,
    _Commit,
    _File,
    _now,
    _Repo,
    _Response,
    git_blob_sha1,
    lfs_pointer,
)


class HubRoutes:
    """Request handling: ``_dispatch`` routes to one method per endpoint."""

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
                               "auth": {"type": "access_token",
                                        "accessToken": {"displayName": "test", "role": "write"}}})

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
