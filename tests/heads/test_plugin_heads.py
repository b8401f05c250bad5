"""examples/plugin_head installed with pip, then discovered through its real dist-info."""
import json
import subprocess
import sys

import pytest

from support import REPO
from support.packages import pip_install_example

PLUGIN = REPO / "examples" / "plugin_head"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    return pip_install_example(PLUGIN, tmp_path_factory.mktemp("plugin_site"), "segzoo_linear_head-0.2.0.dist-info")


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


@pytest.mark.slow  # a repeated proof: the battery runs in-process on every built-in head
def test_plugin_passes_the_shared_head_battery(plugin_site, tmp_path):
    """The example plug-in's own test suite (segzoo.testing.HeadBattery), run by pytest as its author would."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN), "-m",
                          "not slow", "--basetemp", str(tmp_path / "battery")], capture_output=True, text=True,
                         env={**_env(), "PYTHONPATH": str(plugin_site)})
    assert out.returncode == 0, out.stdout + out.stderr
    # every check of the battery (greyscale and 4-band inputs, ONNX export included) on the head's default
    # structure; its other two structures are the slow variants of three checks
    assert "11 passed, 6 deselected" in out.stdout, out.stdout
    assert "PytestUnknownMarkWarning" not in out.stdout + out.stderr  # the plug-in registers the marker


def test_plugin_listed_by_the_cli(plugin_site):
    out = subprocess.run([sys.executable, "-m", "segzoo", "list", "--heads"], capture_output=True, text=True,
                         check=True,
                         env={**_env(), "PYTHONPATH": str(plugin_site)})
    assert "linear           segzoo-linear-head 0.2.0  segzoo_linear_head.head:LinearHead" in out.stdout


def test_plugin_absent_without_install():
    out = subprocess.run([sys.executable, "-m", "segzoo", "list", "--heads"], capture_output=True, text=True,
                         check=True,
                         env=_env())
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert "linear" not in names and "fcn" in names  # the plug-in's head (the built-in linear_probe is another)


def _env():
    import os
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEGZOO_DISABLE_PLUGINS")}


PUSH_PULL = """
import sys, torch, segzoo
endpoint, action = sys.argv[1], sys.argv[2]
if action == "push":
    model = segzoo.create_model("linear_resnet18", num_classes=4)
    print(segzoo.push_to_hub(model, "alice/linear", token="hf_test_alice", endpoint=endpoint))
else:
    model = segzoo.create_model("hf-hub:alice/linear", token="hf_test_alice", endpoint=endpoint)
    print(model.config.provenance["head_distribution"], tuple(model(torch.randn(1, 3, 32, 32)).shape))
"""


@pytest.mark.slow  # 15 s: the Hub round trip is the default tier's in tests/weights/test_hub_push_pull.py
def test_plugin_model_push_and_pull(plugin_site, hub_server, hub_env):
    env = {**_env(), "HF_HUB_DISABLE_XET": "1"}
    with_plugin = {**env, "PYTHONPATH": str(plugin_site)}

    def run(action, environment):
        return subprocess.run([sys.executable, "-c", PUSH_PULL, hub_server.endpoint, action], env=environment,
                              capture_output=True, text=True)

    pushed = run("push", with_plugin)
    assert pushed.returncode == 0, pushed.stderr
    config = json.loads(hub_server.file_bytes("alice/linear", "config.json"))
    assert config["provenance"]["head_distribution"] == "segzoo-linear-head"
    assert config["provenance"]["head_version"] == "0.2.0"
    without = run("pull", env)
    assert without.returncode != 0
    assert "comes from the plug-in package segzoo-linear-head 0.2.0, which is not installed: " \
           "pip install 'segzoo-linear-head==0.2.0'" in without.stderr
    pulled = run("pull", with_plugin)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.split() == ["segzoo-linear-head", "(1,", "4,", "32,", "32)"]
