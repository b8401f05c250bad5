"""examples/plugin_upstream installed with pip: a third-party upstream (ACME's own checkpoints) whose zoo entry
downloads from a local HTTP server with ACME's own integrity rule, converts with ACME's layout, caches, and loads
again offline from the cache, in fresh processes, without editing segzoo."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import segzoo
from segzoo.testing import randomize_batch_norm
from support import REPO
from support.file_server import FileServer
from support.packages import pip_install_example

PLUGIN = REPO / "examples" / "plugin_upstream"
FILE = "roads/fcn_resnet18_roads.pth"
NAME = "fcn_resnet18.acme_roads"
SCRIPT = """
import sys, torch, segzoo
from safetensors.torch import load_file
model = segzoo.create_model({name!r}, pretrained=True)
expected = load_file(sys.argv[1])
print(all(torch.equal(value, expected[key]) for key, value in model.state_dict().items()))
print(model.config.class_names, model.config.palette[1], model.config.inference["resize"])
entry = segzoo.get_pretrained({name!r})
print(entry.license, entry.base_model, segzoo.list_pretrained(source="acme"))
""".format(name=NAME)


@pytest.fixture(scope="module")
def upstream_site(tmp_path_factory):
    return pip_install_example(PLUGIN, tmp_path_factory.mktemp("upstream_site"),
                               "segzoo_acme_upstream-0.1.0.dist-info")


def acme_checkpoint() -> tuple[dict, bytes]:
    """A model as ACME's training loop saves it: segzoo's FCN under ``net.``, an EMA copy and the step."""
    model = randomize_batch_norm(segzoo.create_model("fcn_resnet18", num_classes=3, aux=True), seed=3)
    state = {key: value.detach().contiguous().clone() for key, value in model.state_dict().items()}
    wrapped = {f"net.{key}": value for key, value in state.items()}
    wrapped.update({f"ema.{key}": value for key, value in state.items()})
    buffer = io.BytesIO()
    torch.save({"model": wrapped, "step": 40000}, buffer)
    return state, buffer.getvalue()


def run(script_args, site, env_extra, cwd):
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "SEGZOO_DISABLE_PLUGINS")}
    return subprocess.run([sys.executable, "-c", SCRIPT, *script_args], capture_output=True, text=True, cwd=cwd,
                          env={**env, "PYTHONPATH": str(site), **env_extra})


def test_a_third_party_upstream_downloads_converts_caches_and_loads_offline(upstream_site, tmp_path):
    state, data = acme_checkpoint()
    save_file(state, str(tmp_path / "expected.safetensors"))
    cache = {"SEGZOO_CACHE": str(tmp_path / "cache")}
    with FileServer() as server:
        server.files[FILE] = data
        server.files[FILE + ".sha256"] = f"{hashlib.sha256(data).hexdigest()}  fcn_resnet18_roads.pth\n".encode()
        first = run([str(tmp_path / "expected.safetensors")], upstream_site,
                    {**cache, "ACME_MODELS_URL": server.url, "HF_HUB_OFFLINE": "0"}, tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
        assert server.requests == [FILE + ".sha256", FILE]
    assert first.stdout.splitlines() == [
        "True",
        "('background', 'road', 'lane marking') (128, 64, 128) (2048, 1024)",
        f"other timm/resnet18.a1_in1k ['{NAME}']",
    ]
    assert sorted(p.name for p in (tmp_path / "cache" / "models" / NAME).iterdir()) == ["model.safetensors",
                                                                                       "source.json"]
    # the server is gone: offline, the cache serves the same weights
    again = run([str(tmp_path / "expected.safetensors")], upstream_site, {**cache, "HF_HUB_OFFLINE": "1"}, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.splitlines() == first.stdout.splitlines()


def test_the_upstream_s_integrity_rule_refuses_a_file_that_is_not_the_published_one(upstream_site, tmp_path):
    _, data = acme_checkpoint()
    with FileServer() as server:
        server.files[FILE] = data
        server.files[FILE + ".sha256"] = b"0" * 64 + b"  fcn_resnet18_roads.pth\n"
        result = run(["unused"], upstream_site, {"SEGZOO_CACHE": str(tmp_path / "cache"),
                                                 "ACME_MODELS_URL": server.url, "HF_HUB_OFFLINE": "0"}, tmp_path)
    assert result.returncode != 0
    assert f"CheckpointError: {NAME}: {FILE} has sha256 {hashlib.sha256(data).hexdigest()}, but ACME publishes " \
           f"{'0' * 64}; nothing was kept" in result.stderr
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


def test_absent_without_install():
    assert "acme" not in segzoo.list_pretrained(source="acme") and not segzoo.list_pretrained(source="acme")
