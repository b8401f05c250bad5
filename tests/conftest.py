"""Shared fixtures: tiny models and real on-disk plug-in distributions."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

import segzoo

REPO = Path(__file__).resolve().parents[1]


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
