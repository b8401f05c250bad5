"""examples/plugin_head installed with pip, then discovered through its real dist-info."""
import subprocess
import sys

import pytest

from conftest import REPO

PLUGIN = REPO / "examples" / "plugin_head"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    target = tmp_path_factory.mktemp("plugin_site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PLUGIN)], check=True)
    assert list(target.glob("segzoo_linear_head-0.2.0.dist-info/entry_points.txt"))
    return target


def test_installed_plugin_is_discovered_in_a_fresh_process(plugin_site):
    script = (
        "import segzoo, torch\n"
        "info = {h.name: h for h in segzoo.list_heads()}['linear']\n"
        "print(info.distribution, info.version, info.entry_point)\n"
        "model = segzoo.create_model('linear_resnet18', num_classes=5)\n"
        "print(tuple(model(torch.randn(1, 3, 50, 70)).shape))\n"
        "segzoo.save_pretrained(model, 'export')\n"
        "print(segzoo.create_model('local-dir:export').config.provenance['head_distribution'])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=plugin_site.parent, env={**_env(), "PYTHONPATH": str(plugin_site)})
    assert out.stdout.splitlines() == [
        "segzoo-linear-head 0.2.0 segzoo_linear_head.head:LinearHead",
        "(1, 5, 50, 70)",
        "segzoo-linear-head",
    ]


def test_plugin_listed_by_the_cli(plugin_site):
    out = subprocess.run([sys.executable, "-m", "segzoo.cli", "list", "--heads"], capture_output=True, text=True, check=True,
                         env={**_env(), "PYTHONPATH": str(plugin_site)})
    assert "linear           segzoo-linear-head 0.2.0  segzoo_linear_head.head:LinearHead" in out.stdout


def test_plugin_absent_without_install():
    out = subprocess.run([sys.executable, "-m", "segzoo.cli", "list", "--heads"], capture_output=True, text=True, check=True,
                         env=_env())
    assert "linear" not in out.stdout and "fcn" in out.stdout


def _env():
    import os
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEGZOO_DISABLE_PLUGINS")}
