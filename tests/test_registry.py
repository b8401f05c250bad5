"""Head discovery through real entry points: segzoo's own and distributions written onto sys.path."""
import subprocess
import sys

import pytest
import torch

import segzoo
from segzoo import ConfigError, HeadPluginError, UnknownModelError, create_model, list_heads

GOOD_HEAD = """
from torch import nn
from segzoo.heads import SegmentationHead

class TinyHead(SegmentationHead):
    in_features = ("c2", "c4")

    def __init__(self, in_channels, num_classes, align_corners=True):
        super().__init__()
        self.classifier = nn.Conv2d(in_channels["c4"], num_classes, 1)

    def forward(self, features, image=None):
        return self.classifier(features["c4"])

class NeedsC5(TinyHead):
    in_features = ("c5",)
"""


def test_builtin_heads_come_from_segzoo_entry_points():
    heads = {info.name: info for info in list_heads()}
    assert heads["fcn"].distribution == "segzoo"
    assert heads["fcn"].version == segzoo.__version__
    assert heads["fcn"].entry_point == "segzoo.heads.fcn:FCNHead"
    assert heads["fcn"].builtin


def test_third_party_head_is_discovered(make_plugin):
    make_plugin("tiny-head", "tiny_head_mod", GOOD_HEAD, {"tiny": "tiny_head_mod:TinyHead"}, version="2.3")
    info = {h.name: h for h in list_heads()}["tiny"]
    assert (info.distribution, info.version, info.builtin) == ("tiny-head", "2.3", False)
    model = create_model("tiny_resnet18", num_classes=4)
    assert model(torch.randn(1, 3, 40, 40)).shape == (1, 4, 40, 40)


def test_discovery_is_cached_until_refresh(make_plugin, tmp_path, monkeypatch):
    names_before = {h.name for h in list_heads()}
    site = tmp_path / "late"
    site.mkdir()
    (site / "late_mod.py").write_text(GOOD_HEAD)
    dist = site / "late_head-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: late-head\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[segzoo.heads]\nlate = late_mod:TinyHead\n")
    monkeypatch.syspath_prepend(str(site))
    assert {h.name for h in list_heads()} == names_before  # cached
    segzoo.refresh_heads()
    assert "late" in {h.name for h in list_heads()}
    sys.modules.pop("late_mod", None)


def test_broken_plugin_warns_and_others_still_work(make_plugin):
    make_plugin("good-head", "good_head_mod", GOOD_HEAD, {"tiny": "good_head_mod:TinyHead"})
    make_plugin("broken-head", "broken_head_mod", "raise RuntimeError('no GPU kernel here')",
                {"broken": "broken_head_mod:Head"}, version="0.9")
    with pytest.warns(UserWarning, match=r"plug-in 'broken' from broken-head 0.9 .*failed to load.*no GPU kernel"):
        heads = {h.name for h in list_heads()}
    assert "tiny" in heads and "fcn" in heads and "broken" not in heads
    create_model("tiny_resnet18")
    with pytest.raises(HeadPluginError, match=r"plug-in broken-head 0.9 .*RuntimeError: no GPU kernel here") as err:
        create_model("broken_resnet18")
    assert isinstance(err.value.__cause__, RuntimeError)


def test_builtin_wins_a_name_clash(make_plugin):
    make_plugin("clash-head", "clash_head_mod", GOOD_HEAD, {"fcn": "clash_head_mod:TinyHead"})
    with pytest.warns(UserWarning,
                      match=r"head 'fcn' is declared by segzoo and by clash-head.*using the one from segzoo"):
        info = {h.name: h for h in list_heads()}["fcn"]
    assert info.distribution == "segzoo"


def test_disable_plugins(make_plugin, monkeypatch):
    make_plugin("tiny-head", "tiny_head_mod", GOOD_HEAD, {"tiny": "tiny_head_mod:TinyHead"})
    monkeypatch.setenv("SEGZOO_DISABLE_PLUGINS", "1")
    segzoo.refresh_heads()
    names = {h.name for h in list_heads()}
    assert "tiny" not in names and "fcn" in names
    with pytest.raises(UnknownModelError, match="Unknown model 'tiny_resnet18'"):
        create_model("tiny_resnet18")


def test_head_needing_missing_features(make_plugin):
    make_plugin("c5-head", "c5_head_mod", GOOD_HEAD, {"needs_c5": "c5_head_mod:NeedsC5"})
    with pytest.raises(ConfigError, match=r"head 'needs_c5' needs feature\(s\) c5, but backbone 'resnet18' "
                                          r"provides only c1, c2, c3, c4"):
        create_model("needs_c5_resnet18")


def test_unknown_head_lists_known_heads():
    with pytest.raises(UnknownModelError, match=r"Unknown head 'fcnn'. Known heads: .*fcn.*Did you mean: fcn"):
        segzoo.get_head("fcnn")


def test_cli_lists_heads_with_distribution():
    out = subprocess.run([sys.executable, "-m", "segzoo", "list", "--heads"], capture_output=True, text=True,
                         check=True)
    assert f"fcn              segzoo {segzoo.__version__}  segzoo.heads.fcn:FCNHead" in out.stdout
