"""The local Hub test server against the real, unmodified huggingface_hub client (no mocks)."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hub_test_server import HubServer, git_blob_sha1

pytestmark = pytest.mark.usefixtures("hub_env")

ALICE, BOB = "hf_test_alice", "hf_test_bob"


@pytest.fixture
def folder(tmp_path):
    """A model folder: two small text files, a safetensors file (LFS by name), a >10 MB file (LFS by size)."""
    d = tmp_path / "upload"
    d.mkdir()
    (d / "README.md").write_text("---\nlicense: apache-2.0\n---\n# test model\n")
    (d / "config.json").write_text(json.dumps({"head": "fcn", "classes": 21}))
    (d / "model.safetensors").write_bytes(os.urandom(4096))
    (d / "weights.dat").write_bytes(os.urandom(10_500_000))
    return d


def download(server, repo_id, filename, token=ALICE, **kw) -> bytes:
    path = hf_hub_download(repo_id, filename, endpoint=server.endpoint, token=token, **kw)
    return Path(path).read_bytes()


def test_create_repo_and_permissions(hub_server):
    api = HfApi(endpoint=hub_server.endpoint, token=ALICE)
    assert api.whoami()["name"] == "alice"
    url = api.create_repo("alice/zoo")
    assert url == f"{hub_server.endpoint}/alice/zoo" and url.repo_id == "alice/zoo"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("alice/zoo")
    assert err.value.response.status_code == 409
    assert api.create_repo("alice/zoo", exist_ok=True) == url  # needs `url` in the 409 body
    assert api.repo_exists("alice/zoo") and not api.repo_exists("alice/nothing")
    # New repos hold an initial commit with .gitattributes, like on the Hub.
    assert api.list_repo_files("alice/zoo") == [".gitattributes"]

    bob = HfApi(endpoint=hub_server.endpoint, token=BOB)
    with pytest.raises(HfHubHTTPError) as err:
        bob.create_repo("alice/other")
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:  # bob may read alice's public repo, not write to it
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/zoo")
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:  # unknown token: a plain 401, not RepositoryNotFoundError
        HfApi(endpoint=hub_server.endpoint, token="hf_nobody").model_info("alice/zoo")
    assert err.value.response.status_code == 401 and not isinstance(err.value, RepositoryNotFoundError)

    api.delete_repo("alice/zoo")
    assert not api.repo_exists("alice/zoo")
    api.delete_repo("alice/zoo", missing_ok=True)


def test_upload_folder_download_and_no_empty_commit(hub_server, folder, hub_env):
    api = HfApi(endpoint=hub_server.endpoint, token=ALICE)
    api.create_repo("alice/seg")
    first = api.upload_folder(repo_id="alice/seg", folder_path=folder, commit_message="weights")
    info = api.model_info("alice/seg")
    assert info.sha == first.oid
    assert sorted(s.rfilename for s in info.siblings) == [".gitattributes", "README.md", "config.json",
                                                           "model.safetensors", "weights.dat"]
    # LFS went through batch + PUT + verify; the commit carries lfsFile lines.
    assert ("POST", "/alice/seg.git/info/lfs/objects/batch") in hub_server.request_log
    assert sum(m == "PUT" for m, _ in hub_server.request_log) == 2

    tree = {f.path: f for f in api.list_repo_tree("alice/seg", recursive=True)}
    config = (folder / "config.json").read_bytes()
    assert tree["config.json"].blob_id == git_blob_sha1(config) and tree["config.json"].lfs is None
    for name in ("model.safetensors", "weights.dat"):
        data = (folder / name).read_bytes()
        assert tree[name].lfs.sha256 == hashlib.sha256(data).hexdigest() and tree[name].size == len(data)
    assert [p.path for p in api.get_paths_info("alice/seg", ["config.json", "missing"])] == ["config.json"]

    for name in ("README.md", "config.json", "model.safetensors", "weights.dat"):
        assert download(hub_server, "alice/seg", name) == (folder / name).read_bytes()
    snap = Path(snapshot_download("alice/seg", endpoint=hub_server.endpoint, token=ALICE))
    assert snap.name == first.oid and (snap / "weights.dat").read_bytes() == (folder / "weights.dat").read_bytes()
    # The cache is keyed by ETag: LFS blobs by sha256, regular files by git sha1.
    blobs = {p.name for p in (hub_env / "models--alice--seg" / "blobs").iterdir()}
    assert hashlib.sha256((folder / "weights.dat").read_bytes()).hexdigest() in blobs
    assert git_blob_sha1(config) in blobs

    # Same folder again: preupload reports each file's oid, the client drops them all and sends no commit.
    n_commits = len(api.list_repo_commits("alice/seg"))
    before = len(hub_server.request_log)
    again = api.upload_folder(repo_id="alice/seg", folder_path=folder)
    assert again.oid == first.oid == api.model_info("alice/seg").sha
    assert len(api.list_repo_commits("alice/seg")) == n_commits
    assert not [r for r in hub_server.request_log[before:] if r[1].startswith("/api/models/alice/seg/commit/")]
    assert not [r for r in hub_server.request_log[before:] if r[0] == "PUT"]

    # One changed file -> one new commit holding only that change.
    (folder / "config.json").write_text("{}")
    third = api.upload_folder(repo_id="alice/seg", folder_path=folder)
    assert third.oid != first.oid
    assert download(hub_server, "alice/seg", "config.json") == b"{}"


def test_revisions_tags_branches_prs(hub_server):
    api = HfApi(endpoint=hub_server.endpoint, token=ALICE)
    api.create_repo("alice/rev")
    v1 = api.upload_file(path_or_fileobj=b"one", path_in_repo="cfg/a.txt", repo_id="alice/rev").oid
    api.create_tag("alice/rev", tag="v1.0", tag_message="first")
    api.create_branch("alice/rev", branch="dev")
    dev = api.upload_file(path_or_fileobj=b"dev", path_in_repo="cfg/a.txt", repo_id="alice/rev", revision="dev").oid
    main = api.upload_file(path_or_fileobj=b"two", path_in_repo="cfg/a.txt", repo_id="alice/rev").oid

    assert download(hub_server, "alice/rev", "cfg/a.txt") == b"two"
    assert download(hub_server, "alice/rev", "cfg/a.txt", revision="v1.0") == b"one"
    assert download(hub_server, "alice/rev", "cfg/a.txt", revision="dev") == b"dev"
    assert download(hub_server, "alice/rev", "cfg/a.txt", revision=v1) == b"one"
    assert api.model_info("alice/rev", revision="v1.0").sha == v1

    refs = api.list_repo_refs("alice/rev")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": main, "dev": dev}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": v1}
    assert [c.commit_id for c in api.list_repo_commits("alice/rev")][:2] == [main, v1]
    top = api.list_repo_tree("alice/rev")  # not recursive: the folder, not its file
    assert {(type(e).__name__, e.path) for e in top} == {("RepoFile", ".gitattributes"), ("RepoFolder", "cfg")}
    assert [e.path for e in api.list_repo_tree("alice/rev", path_in_repo="cfg")] == ["cfg/a.txt"]

    # Pull-request refs arrive URL-encoded (refs%2Fpr%2F1).
    pr = api.upload_file(path_or_fileobj=b"pr", path_in_repo="cfg/a.txt", repo_id="alice/rev", create_pr=True)
    assert pr.pr_num == 1
    assert download(hub_server, "alice/rev", "cfg/a.txt", revision="refs/pr/1") == b"pr"
    assert download(hub_server, "alice/rev", "cfg/a.txt") == b"two"  # main untouched

    # Commit operations: deletes, stale parent.
    api.create_commit("alice/rev", [CommitOperationAdd("cfg/b.txt", b"b"), CommitOperationDelete("cfg/a.txt")],
                      commit_message="swap")
    assert api.list_repo_files("alice/rev") == [".gitattributes", "cfg/b.txt"]
    api.create_commit("alice/rev", [CommitOperationDelete("cfg/")], commit_message="rm folder")
    assert api.list_repo_files("alice/rev") == [".gitattributes"]
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit("alice/rev", [CommitOperationAdd("c.txt", b"c")], commit_message="late", parent_commit=v1)
    assert err.value.response.status_code == 412

    api.delete_tag("alice/rev", tag="v1.0")
    api.delete_branch("alice/rev", branch="dev")
    with pytest.raises(RevisionNotFoundError):
        download(hub_server, "alice/rev", "cfg/a.txt", revision="dev")


def test_private_repo_and_missing_things(hub_server, tmp_path):
    alice = HfApi(endpoint=hub_server.endpoint, token=ALICE)
    alice.create_repo("alice/secret", private=True)
    alice.upload_file(path_or_fileobj=b"s3cret", path_in_repo="w.txt", repo_id="alice/secret")
    assert alice.model_info("alice/secret").private is True
    assert download(hub_server, "alice/secret", "w.txt", cache_dir=tmp_path / "alice") == b"s3cret"

    # Anonymous: 401 + X-Error-Code RepoNotFound; another user's token: 404 RepoNotFound. Both are
    # RepositoryNotFoundError, and the private repo stays invisible.
    for token in (None, BOB):
        with pytest.raises(RepositoryNotFoundError):
            download(hub_server, "alice/secret", "w.txt", token=token, cache_dir=tmp_path / "other")
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=hub_server.endpoint, token=token).model_info("alice/secret")
        assert not HfApi(endpoint=hub_server.endpoint, token=token).repo_exists("alice/secret")
    # NB: hf_hub_download treats any HTTP error on its HEAD (RepositoryNotFoundError included) like a network
    # failure and falls back to the cache: a file alice cached is served to anyone sharing that cache.
    assert download(hub_server, "alice/secret", "w.txt", token=None, cache_dir=tmp_path / "alice") == b"s3cret"
    with pytest.raises(RepositoryNotFoundError):  # hidden repos cannot be written either
        HfApi(endpoint=hub_server.endpoint, token=BOB).upload_file(
            path_or_fileobj=b"x", path_in_repo="x", repo_id="alice/secret")

    alice.update_repo_settings("alice/secret", private=False)
    assert download(hub_server, "alice/secret", "w.txt", token=None) == b"s3cret"

    with pytest.raises(EntryNotFoundError):
        download(hub_server, "alice/secret", "nope.txt")
    with pytest.raises(RevisionNotFoundError):
        download(hub_server, "alice/secret", "w.txt", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        alice.model_info("alice/secret", revision="f" * 40)
    with pytest.raises(RepositoryNotFoundError):
        download(hub_server, "alice/absent", "w.txt")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("alice/absent", endpoint=hub_server.endpoint, token=ALICE)
    assert not alice.file_exists("alice/secret", "nope.txt") and alice.file_exists("alice/secret", "w.txt")


def test_tampered_downloads(hub_server, tmp_path):
    """What huggingface_hub 2.4 itself checks on download: the size only, never the content hash.

    - truncated bytes -> OSError "Consistency check failed: file should be of size N but has size M"
      (size announced by HEAD: X-Linked-Size for LFS, Content-Length otherwise); nothing lands in the cache.
    - same-length corruption -> accepted silently and cached under blobs/<etag>, although its sha256
      no longer matches the ETag. Code that must trust the bytes has to hash them itself.
    """
    weights = os.urandom(50_000)
    hub_server.seed("alice/t", {"model.safetensors": weights, "config.json": b'{"x": 1}'})
    sha = hashlib.sha256(weights).hexdigest()

    hub_server.tamper("alice/t", "model.safetensors", truncate_to=1000)
    with pytest.raises(OSError, match="Consistency check failed"):
        download(hub_server, "alice/t", "model.safetensors", cache_dir=tmp_path / "c1")

    hub_server.tamper("alice/t", "model.safetensors")  # flip one byte, same length
    path = hf_hub_download("alice/t", "model.safetensors", endpoint=hub_server.endpoint, token=ALICE,
                           cache_dir=tmp_path / "c2")
    data = Path(path).read_bytes()
    assert len(data) == len(weights) and data != weights
    assert Path(path).resolve().name == sha != hashlib.sha256(data).hexdigest()

    hub_server.tamper("alice/t", "config.json", data=b'{"x": 2}')  # regular file, git-sha1 ETag: same story
    assert download(hub_server, "alice/t", "config.json", cache_dir=tmp_path / "c2") == b'{"x": 2}'

    hub_server.untamper()
    assert download(hub_server, "alice/t", "model.safetensors", cache_dir=tmp_path / "c3") == weights


def test_offline_reads_from_cache(hub_server, hub_env, monkeypatch):
    hub_server.seed("alice/off", {"config.json": b"{}", "model.safetensors": b"w" * 100})
    endpoint = hub_server.endpoint
    snapshot_download("alice/off", endpoint=endpoint, token=ALICE)
    hub_server.stop()

    # Server down: local_files_only, and plain calls (connection refused -> cache fallback) both work.
    assert download(hub_server, "alice/off", "config.json", local_files_only=True) == b"{}"
    assert download(hub_server, "alice/off", "model.safetensors") == b"w" * 100
    assert (Path(snapshot_download("alice/off", endpoint=endpoint, local_files_only=True))
            / "config.json").exists()
    with pytest.raises(LocalEntryNotFoundError):
        download(hub_server, "alice/off", "other.json", local_files_only=True)

    # HF_HUB_OFFLINE is read at import: a fresh interpreter with the variable set.
    code = ("from huggingface_hub import hf_hub_download; import sys;"
            f"print(open(hf_hub_download('alice/off', 'config.json', endpoint='{endpoint}')).read())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0 and out.stdout.strip() == "{}", out.stderr

    hub_server.start()  # same state, same port
    assert hub_server.endpoint == endpoint
    assert download(hub_server, "alice/off", "config.json", force_download=True) == b"{}"


def test_storage_dir_survives_a_new_server(tmp_path):
    with HubServer({ALICE: "alice"}, storage_dir=tmp_path / "hub") as first:
        api = HfApi(endpoint=first.endpoint, token=ALICE)
        api.create_repo("alice/keep")
        api.upload_file(path_or_fileobj=b"\0" * 2048, path_in_repo="w.bin", repo_id="alice/keep")
        sha = api.model_info("alice/keep").sha
    with HubServer({ALICE: "alice"}, storage_dir=tmp_path / "hub") as second:
        assert HfApi(endpoint=second.endpoint, token=ALICE).model_info("alice/keep").sha == sha
        assert download(second, "alice/keep", "w.bin") == b"\0" * 2048


def test_wire_level_checks(hub_server):
    """Raw HTTP: LFS integrity checks, commits of unknown LFS objects, chunked bodies, byte ranges, keep-alive."""
    hub_server.seed("alice/raw", {"a.txt": b"0123456789"})
    conn = http.client.HTTPConnection("127.0.0.1", int(hub_server.endpoint.rsplit(":", 1)[1]), timeout=10)
    auth = {"Authorization": f"Bearer {ALICE}"}

    def call(method, path, body=None, headers=None, **kw):
        conn.request(method, path, body=body, headers={**auth, **(headers or {})}, **kw)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()

    data = os.urandom(3000)
    sha = hashlib.sha256(data).hexdigest()
    batch = {"operation": "upload", "objects": [{"oid": sha, "size": len(data)}], "hash_algo": "sha256"}
    status, _, body = call("POST", "/alice/raw.git/info/lfs/objects/batch", json.dumps(batch))
    upload = json.loads(body)["objects"][0]["actions"]["upload"]["href"].split(hub_server.endpoint)[1]
    assert call("PUT", upload, data[:-1] + b"x")[0] == 400  # wrong bytes: rejected, connection still usable

    line = json.dumps({"key": "header", "value": {"summary": "lfs"}}) + "\n" + json.dumps(
        {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": sha, "size": len(data)}})
    assert call("POST", "/api/models/alice/raw/commit/main", line)[0] == 400  # never uploaded

    chunks = iter([data[:1000], data[1000:]])
    assert call("PUT", upload, chunks, {"Transfer-Encoding": "chunked"}, encode_chunked=True)[0] == 200
    status, _, body = call("POST", "/api/models/alice/raw/commit/main", line)
    assert status == 200 and json.loads(body)["commitOid"]

    status, headers, body = call("GET", "/alice/raw/resolve/main/a.txt", headers={"Range": "bytes=2-4"})
    assert (status, body, headers["Content-Range"]) == (206, b"234", "bytes 2-4/10")
    assert call("GET", "/alice/raw/resolve/main/a.txt", headers={"Range": "bytes=-3"})[2] == b"789"
    assert call("GET", "/alice/raw/resolve/main/a.txt", headers={"Range": "bytes=20-"})[0] == 416
    status, headers, _ = call("HEAD", "/alice/raw/resolve/main/w.bin")
    assert headers["X-Linked-Etag"] == f'"{sha}"' and headers["X-Linked-Size"] == "3000"
    status, headers, _ = call("HEAD", "/alice/raw/resolve/main/missing")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and len(headers["X-Repo-Commit"]) == 40
    conn.close()
