"""Shared fixtures: tiny models and real on-disk plug-in distributions."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch

import segzoo


def pytest_configure(config):
    """Under pytest-xdist each worker, and every process it starts, takes its share of the cores (2 workers on 2
    cores: one thread each), so that they do not oversubscribe the machine; alone, torch keeps its default."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        share = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(share)
        # The processes the tests start (the CLI, the example scripts, torchrun) get the same share: OpenMP threads
        # that outnumber the free cores spin against each other, and a script took 5x its time beside a busy worker.
        os.environ.update(OMP_NUM_THREADS=str(share), MKL_NUM_THREADS=str(share))


def pytest_report_header(config):
    """The temp folder's free space, first thing in the log: the run writes checkpoints and exports there (about
    1.5 GB at its peak, each test's folder removed when it passes), and a full disk fails it everywhere at once."""
    folder = tempfile.gettempdir()
    return f"temp folder: {folder} ({shutil.disk_usage(folder).free / 2**30:.1f} GiB free)"


@pytest.fixture(autouse=True)
def _machine_pinned(monkeypatch, tmp_path_factory):
    """No test depends on the CPU it runs on: native bfloat16 is pinned absent (``SEGZOO_FAST_BF16=0``, which child
    processes inherit too) unless a test pins it present (the ``native_bf16`` fixture), and segzoo's cache (where
    ``predict`` remembers its path choices) is a fresh folder, never the user's."""
    monkeypatch.setenv("SEGZOO_FAST_BF16", "0")
    monkeypatch.delenv("SEGZOO_REMEASURE", raising=False)
    monkeypatch.setenv("SEGZOO_CACHE", str(tmp_path_factory.mktemp("segzoo-cache")))


@pytest.fixture(params=[False, True], ids=["bf16-absent", "bf16-native"])
def native_bf16(request, monkeypatch):
    """Runs a test twice: on a CPU without native bfloat16 and on one with it (pinned, whatever this CPU has)."""
    monkeypatch.setenv("SEGZOO_FAST_BF16", "1" if request.param else "0")
    return request.param


@pytest.fixture(autouse=True)
def _fresh_registry():
    """Every test starts and ends with a freshly discovered head registry."""
    segzoo.refresh_heads()
    yield
    segzoo.refresh_heads()


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randn(2, 3, 64, 80)


@pytest.fixture
def make_plugin(tmp_path, monkeypatch):
    """Write a real distribution (``<name>.dist-info`` with entry points) plus its module onto sys.path.

    importlib.metadata discovers it exactly as it would a pip-installed package.
    """
    created_modules = []

    def make(dist_name: str, module: str, source: str, heads: dict[str, str], version: str = "1.0") -> Path:
        site = tmp_path / f"site_{dist_name}"
        site.mkdir()
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        dist_info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
        lines = "\n".join(f"{head} = {target}" for head, target in heads.items())
        (dist_info / "entry_points.txt").write_text(f"[segzoo.heads]\n{lines}\n")
        monkeypatch.syspath_prepend(str(site))
        created_modules.append(module)
        segzoo.refresh_heads()
        return site

    yield make
    for module in created_modules:
        sys.modules.pop(module, None)


# --- Hub test server (tests/hub_test_server/) -------------------------------------------------------------------

HUB_TOKENS = {"hf_test_alice": "alice", "hf_test_bob": "bob"}


@pytest.fixture
def hub_server():
    """A started local Hub-compatible server (users alice and bob, see HUB_TOKENS); stopped afterwards."""
    from hub_test_server import HubServer

    with HubServer(tokens=HUB_TOKENS) as server:
        yield server
    assert not server.errors, "hub test server crashed:\n" + "\n".join(server.errors)


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """Isolate huggingface_hub: temporary HF_HOME / HF_HUB_CACHE, no saved or env token, online, no Xet.

    huggingface_hub reads these variables once, at import, so the module constants are patched as well.
    Returns the hub cache directory.
    """
    import huggingface_hub.constants as hf_constants

    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")  # the test server speaks plain LFS only
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HOME", str(home))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return cache
