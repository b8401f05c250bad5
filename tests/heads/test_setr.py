"""SETR-Naive and SETR-PUP: the head's battery on a small ViT and on a ResNet, and its options. Parity with mmseg's
own outputs is in tests/upstreams/test_mmseg_transformers_parity.py."""
from __future__ import annotations

import pytest

from segzoo import ConfigError, create_model
from segzoo.testing import HeadBattery
from support.slow_onnx import OnnxInTheSlowTier

SMALL_VIT = {"backbone_kwargs": {"depth": 4, "embed_dim": 48, "num_heads": 2}}
PUP = {"num_convs": 4, "up_scale": 2, "kernel_size": 3}


class TestSETROnViT(OnnxInTheSlowTier, HeadBattery):
    head = "setr"
    backbone = "vit_tiny_patch16_224"
    structures = ({**SMALL_VIT}, {**SMALL_VIT, **PUP})
    test_other_input_channels = None  # a ViT reads the image with one convolution: the ResNet class checks it


@pytest.mark.slow
class TestSETROnResNet(OnnxInTheSlowTier, HeadBattery):
    head = "setr"
    structures = ({"output_stride": 32}, {"output_stride": 32, **PUP})


def test_naive_and_pup_are_setrs():
    naive = create_model("setr_vit_tiny_patch16_224").head
    assert len(naive.up_convs) == 1 and naive.up_convs[0].conv.kernel_size == (1, 1) and naive.up_scale == 4
    pup = create_model("setr_vit_tiny_patch16_224", **PUP).head
    assert [c.conv.kernel_size for c in pup.up_convs] == [(3, 3)] * 4 and pup.up_scale == 2
    assert pup.norm.normalized_shape == (192,) and pup.norm.eps == 1e-6


@pytest.mark.parametrize("kwargs, message", [
    ({"kernel_size": 5}, "SETR kernel_size must be one of 1, 3, got 5"),
    ({"num_convs": 0}, "SETR num_convs must be an integer >= 1, got 0"),
    ({"up_scale": 1.5}, "SETR up_scale must be an integer >= 1, got 1.5"),
])
def test_bad_options_fail_naming_the_option(kwargs, message):
    with pytest.raises(ConfigError) as error:
        create_model("setr_vit_tiny_patch16_224", **kwargs)
    assert str(error.value) == message
