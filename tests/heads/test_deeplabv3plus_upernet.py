"""DeepLabV3+ and UPerNet (mmsegmentation's forms): the shared battery on a ResNet and on non-ResNet timm backbones,
their options, and parity with mmsegmentation 1.2.2's own outputs.

Their parity with mmseg's own outputs is in ``test_mmseg_parity.py`` with the other heads'; here, that the
comparison sees the structure.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

import segzoo
from segzoo import ConfigError, create_model
from segzoo.testing import HeadBattery
from segzoo.weights.convert import convert_upstream
from support.mmseg_reference import max_difference, reference_outputs, seeded_state_dict
from support.slow_onnx import OnnxInTheSlowTier


class TestDeepLabV3Plus(OnnxInTheSlowTier, HeadBattery):
    head = "deeplabv3plus"


class OtherBackbone:
    """On a non-ResNet backbone the forward, backward and save/load checks say the head works; export and compile
    are the head's own business, checked on ResNet above (export in the slow tier; they take a minute per class)."""

    test_onnx_export_runs_at_other_sizes = None
    test_torch_compile_fullgraph_matches_eager = None
    test_optimize_for_inference_keeps_the_outputs = None


@pytest.mark.slow
class TestDeepLabV3PlusEfficientNet(OtherBackbone, TestDeepLabV3Plus):
    backbone = "efficientnet_b0"
    structures = ({"output_stride": 8},)


class TestUPerNet(OnnxInTheSlowTier, HeadBattery):
    head = "upernet"
    structures = ({"output_stride": 32},)  # designed for a plain backbone (output stride 8 works too, see below)


@pytest.mark.slow
class TestUPerNetConvNeXt(OtherBackbone, TestUPerNet):
    backbone = "convnext_atto"


def convert_at(mmseg_name: str, zoo_name: str, output_stride: int):
    """mmseg's checkpoint of ``zoo_name`` converted onto that entry's config at another output stride."""
    entry = segzoo.get_pretrained(zoo_name)
    entry = dataclasses.replace(entry, config=entry.config.replace(output_stride=output_stride))
    return convert_upstream(seeded_state_dict(mmseg_name), "mmseg", entry=entry)


def test_the_wrong_structure_does_not_reproduce_mmseg():
    """The UPerNet weights on a dilated backbone convert (same keys) but do not give mmseg's outputs: the
    comparison sees the structure."""
    name = "upernet_r50_4xb2-40k_cityscapes-512x1024"  # its parity: tests/heads/test_mmseg_parity.py
    model, converted, _ = convert_at(name, "upernet_resnet50c_d32.mmseg_cityscapes_40k", output_stride=8)
    model.load_state_dict(converted)
    with torch.no_grad():
        difference, allowed = max_difference(model.eval()(torch.from_numpy(reference_outputs()["input"])),
                                             reference_outputs()[f"{name}/logits"])
    assert difference > 100 * allowed


def test_generic_names_take_each_heads_output_stride():
    assert create_model("upernet_resnet18").config.output_stride == 32
    assert create_model("upernet_resnet18_d8").config.output_stride == 8
    assert create_model("deeplabv3plus_resnet18").config.output_stride == 8


@pytest.mark.parametrize("head, kwargs, message", [
    ("deeplabv3plus", {"channels": 0}, "DeepLabV3+ channels must be an integer >= 1, got 0"),
    ("deeplabv3plus", {"c1_channels": 4.0}, "DeepLabV3+ c1_channels must be an integer >= 1, got 4.0"),
    ("deeplabv3plus", {"rates": (6, 0)}, "DeepLabV3+ rates must be a non-empty sequence of integers >= 1, got (6, 0)"),
    ("deeplabv3plus", {"rates": 12}, "DeepLabV3+ rates must be a non-empty sequence of integers >= 1, got 12"),
    ("deeplabv3plus", {"dropout": 1.0}, "DeepLabV3+ dropout must be a number in [0, 1), got 1.0"),
    ("upernet", {"channels": True}, "UPerNet channels must be an integer >= 1, got True"),
    ("upernet", {"bins": ()}, "UPerNet bins must be a non-empty sequence of integers >= 1, got ()"),
    ("upernet", {"dropout": -0.1}, "UPerNet dropout must be a number in [0, 1), got -0.1"),
])
def test_bad_options_fail_naming_the_option(head, kwargs, message):
    with pytest.raises(ConfigError) as error:
        create_model(f"{head}_resnet18", **kwargs)
    assert str(error.value) == message


def test_options_shape_the_layers():
    model = create_model("deeplabv3plus_resnet18", channels=64, rates=(6, 12, 18, 24), c1_channels=12)
    head = model.head
    assert [branch.depthwise.conv.dilation for branch in head.aspp.atrous] == [(r, r) for r in (6, 12, 18, 24)]
    assert head.c1_projection.conv.out_channels == 12 and head.decoder[0].depthwise.conv.in_channels == 64 + 12
    assert head.bottleneck.conv.in_channels == 64 * 6  # pooling, 1x1, four separable branches
    model = create_model("upernet_resnet18", channels=32, bins=(1, 2))
    assert model.head.fpn_bottleneck.conv.in_channels == 4 * 32
    assert model.head.bottleneck.conv.in_channels == 512 + 2 * 32


def test_upernet_bins_change_outputs_not_parameters():
    a = create_model("upernet_resnet18", bins=(1, 2, 3, 6))
    b = create_model("upernet_resnet18", bins=(1, 2, 3, 4))
    b.load_state_dict(a.state_dict())
    images = torch.randn(1, 3, 200, 200)  # c4 7x7: bins 4 and 6 pool different windows
    with torch.no_grad():
        assert not torch.allclose(a(images), b(images))
