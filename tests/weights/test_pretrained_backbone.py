"""pretrained_backbone=True loads timm's ImageNet weights of the GluonCV tag, and is never re-applied
when full weights are loaded. Run offline against a Hub cache the test fills (no network here)."""
import os
import subprocess
import sys

import timm
import torch

from support.hub_cache import fill_hub_cache

SCRIPT = """
import sys, torch, segzoo
from safetensors.torch import load_file
expected = load_file(sys.argv[1])
model = segzoo.create_model("fcn_resnet18", pretrained_backbone=True)
backbone = model.backbone.state_dict()
print("max_diff", max((backbone[k] - expected[k]).abs().max().item() for k in backbone))
segzoo.save_pretrained(model, sys.argv[2])
# Loading full weights must not ask timm for ImageNet weights again.
again = segzoo.create_model("local-dir:" + sys.argv[2], pretrained_backbone=True)
print("reloaded", torch.equal(again.state_dict()["backbone.conv1.weight"], backbone["conv1.weight"]))
try:
    segzoo.create_model("fcn_resnet34", pretrained_backbone=True)
except Exception as err:
    print("missing", type(err).__name__, "'resnet34.gluon_in1k'" in str(err))
"""




def test_gluon_weights_load_offline_and_are_not_reapplied(tmp_path):
    torch.manual_seed(0)
    classifier = timm.create_model("resnet18")
    weights = {k: v.clone() + 0.01 for k, v in classifier.state_dict().items() if v.is_floating_point()}
    weights.update({k: v for k, v in classifier.state_dict().items() if not v.is_floating_point()})
    path = fill_hub_cache(tmp_path / "hub", "timm/resnet18.gluon_in1k", weights)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, path, str(tmp_path / "export")], env=env,
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert float(lines["max_diff"]) == 0.0
    assert lines["reloaded"] == "True"
    assert lines["missing"] == "WeightsUnavailableError True"  # the error names the tag it looked for
