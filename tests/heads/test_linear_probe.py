"""The linear_probe head (DINOv2's BNHead): the shared battery on a small DINOv2-style ViT (last level, and the last
four levels concatenated) and on a ResNet; DINOv2's centre padding and position resize as the model applies them. Parity
with Meta's own code is in tests/upstreams/test_dinov2_parity.py."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segzoo import ConfigError, create_model
from segzoo.testing import HeadBattery
from support.slow_onnx import OnnxInTheSlowTier

SMALL_DINOV2 = {"backbone_kwargs": {"depth": 4, "embed_dim": 48, "num_heads": 2, "img_size": 70}}


class TestLinearOnDINOv2(OnnxInTheSlowTier, HeadBattery):
    head = "linear_probe"
    backbone = "vit_small_patch14_dinov2"
    structures = ({**SMALL_DINOV2},)
    test_other_input_channels = None  # a ViT reads the image with one convolution: the ResNet class checks it


@pytest.mark.slow  # the multi-scale form: its parity runs in the slow tier too; the default tier has the last level
class TestLinearFourLevelsOnDINOv2(OnnxInTheSlowTier, HeadBattery):
    head = "linear_probe"
    backbone = "vit_small_patch14_dinov2"
    structures = ({**SMALL_DINOV2, "levels": 4},)
    test_other_input_channels = None


@pytest.mark.slow
class TestLinearOnResNet(OnnxInTheSlowTier, HeadBattery):
    """On a pyramid the levels are resized to c1's size before the concatenation."""
    head = "linear_probe"
    structures = ({"output_stride": 32, "levels": 4},)


def _small(**config):
    torch.manual_seed(0)
    return create_model("linear_probe_vit_small_patch14_dinov2", num_classes=3, **SMALL_DINOV2, **config).eval()


def test_centre_padding_pads_both_sides_the_odd_pixel_last():
    """95 -> 98: one pixel before, two after (DINOv2's CenterPadding); corner padding puts all three after."""
    centre = _small()
    centre.config = centre.config.replace(patch_padding="center")
    images = torch.randn(1, 3, 95, 95)
    with torch.no_grad():
        padded = centre.backbone_features(images)["c4"]
        by_hand = _small().backbone_features(F.pad(images, (1, 2, 1, 2)))["c4"]
        corner = _small().backbone_features(images)["c4"]
    assert torch.equal(padded, by_hand) and not torch.allclose(padded, corner)


def test_dinov2_position_resize_uses_the_offset_scale_factor():
    """At the stored grid nothing is resized; elsewhere the embedding is resized by (new + 0.1) / old, which differs
    from resizing to the size."""
    from segzoo.backbones.vit_positions import _dinov2_resized

    embedding = torch.randn(1, 1 + 5 * 5, 8)
    assert _dinov2_resized(embedding, (5, 5), (5, 5), 1) is embedding
    grid = embedding[:, 1:].reshape(1, 5, 5, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, scale_factor=(7.1 / 5, 9.1 / 5), mode="bicubic")
    expected = expected.permute(0, 2, 3, 1).reshape(1, -1, 8)
    resized = _dinov2_resized(embedding, (7, 9), (5, 5), 1)
    assert torch.equal(resized[:, 1:], expected) and torch.equal(resized[:, :1], embedding[:, :1])
    by_size = F.interpolate(grid, size=(7, 9), mode="bicubic").permute(0, 2, 3, 1).reshape(1, -1, 8)
    assert not torch.allclose(resized[:, 1:], by_size)


def test_bad_options_fail_in_one_line():
    with pytest.raises(ConfigError, match="linear_probe head levels must be one of 1, 4"):
        create_model("linear_probe_vit_small_patch14_dinov2", levels=2, **SMALL_DINOV2)
    with pytest.raises(ConfigError, match="patch_padding must be 'corner' or 'center'"):
        _small().config.replace(patch_padding="middle").validate()
    with pytest.raises(ConfigError, match="position_resize must be 'bicubic', 'bilinear' or 'dinov2'"):
        _small().config.replace(position_resize="nearest").validate()
