"""DPT: the head's battery on a small ViT (reading its class tokens) and on a ResNet (without), its readouts, and the
class tokens the model hands it. Parity with mmseg's and transformers' own outputs is in
tests/upstreams/test_mmseg_transformers_parity.py and test_transformers_parity.py."""
from __future__ import annotations

import pytest
import torch

from segzoo import ConfigError, create_model
from segzoo.testing import HeadBattery
from support.slow_onnx import OnnxInTheSlowTier

SMALL_VIT = {"backbone_kwargs": {"depth": 4, "embed_dim": 48, "num_heads": 2}}  # its four blocks: the levels
NARROW = {"channels": 16, "post_process_channels": (8, 16, 24, 32)}


class TestDPTOnViT(OnnxInTheSlowTier, HeadBattery):
    head = "dpt"
    backbone = "vit_tiny_patch16_224"
    structures = ({**SMALL_VIT, **NARROW},)
    test_other_input_channels = None  # a ViT reads the image with one convolution: the ResNet class checks it


@pytest.mark.slow  # transformers' form: its parity test runs it in the default tier
class TestDPTTransformersFormOnViT(OnnxInTheSlowTier, HeadBattery):
    head = "dpt"
    backbone = "vit_tiny_patch16_224"
    structures = ({**SMALL_VIT, **NARROW, "residual_norm": False, "upsample_logits": True},)
    test_other_input_channels = None


@pytest.mark.slow
class TestDPTOnResNet(OnnxInTheSlowTier, HeadBattery):
    """Without class tokens the readout is "ignore"; the pyramid's levels are resized where they meet."""
    head = "dpt"
    structures = ({"output_stride": 32, **NARROW},)


def _vit_dpt(**options):
    torch.manual_seed(0)
    return create_model("dpt_vit_tiny_patch16_224", num_classes=3, **SMALL_VIT, **NARROW, **options).eval()


def test_readout_auto_projects_the_class_token_on_a_vit_and_ignores_it_elsewhere():
    assert _vit_dpt().head.readout == "project" and _vit_dpt().class_tokens
    resnet = create_model("dpt_resnet18", num_classes=3, output_stride=32, **NARROW)
    assert resnet.head.readout == "ignore" and not resnet.class_tokens
    with_neck = create_model("dpt_vit_tiny_patch16_224", num_classes=3, neck="multilevel",
                             neck_kwargs={"out_channels": 32}, **SMALL_VIT, **NARROW)
    assert with_neck.head.readout == "ignore"


def test_the_class_token_changes_the_output_with_readout_project_and_add_only():
    """The head reads the tokens it is handed unless its readout ignores them; those handed over are the ViT's own
    (its forward_intermediates), one per level."""
    images = torch.randn(1, 3, 48, 64)
    for readout, changes in (("project", True), ("add", True), ("ignore", False)):
        model = _vit_dpt(readout=readout)
        features = model.backbone_features(images)
        moved = {name: value + 1.0 if name.endswith("_class_token") else value for name, value in features.items()}
        with torch.no_grad():
            before, after = model.head(features), model.head(moved)
        assert (before - after).abs().max().item() > 1e-4 if changes else torch.equal(before, after), readout
    model = _vit_dpt()
    features = model.backbone_features(images)
    levels = model.backbone.model.forward_intermediates(images, indices=model.backbone.out_indices,
                                                        intermediates_only=True, return_prefix_tokens=True)
    for name, (level, prefix) in zip(("c1", "c2", "c3", "c4"), levels):
        assert features[f"{name}_class_token"].shape == (1, 48)
        assert torch.equal(features[f"{name}_class_token"], prefix[:, 0])
        assert torch.equal(features[name], level)


def test_bad_dpt_options_fail_in_one_line():
    with pytest.raises(ConfigError, match="readout must be one of"):
        create_model("dpt_vit_tiny_patch16_224", readout="cls", **SMALL_VIT)
    with pytest.raises(ConfigError, match="post_process_channels must give 4 widths"):
        create_model("dpt_vit_tiny_patch16_224", post_process_channels=(8, 16), **SMALL_VIT)
    with pytest.raises(ConfigError, match="reads the class token of each level.*backbone 'resnet18' has none"):
        create_model("dpt_resnet18", output_stride=32, readout="project")
    with pytest.raises(ConfigError, match="neck 'multilevel' changes the levels"):
        create_model("dpt_vit_tiny_patch16_224", neck="multilevel", readout="add", **SMALL_VIT)
    with pytest.raises(ConfigError, match="may not set has_class_token"):
        create_model("dpt_vit_tiny_patch16_224", has_class_token=True, **SMALL_VIT)
