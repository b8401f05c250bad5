"""SETR-Naive, SETR-PUP (the ``setr`` head) and SETR-MLA (``setr_mla``): the heads' battery on a small ViT and on a
ResNet, and their options. Parity with mmseg's
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


@pytest.mark.slow  # the default tier runs SETR-MLA on every kind of transformer backbone, forward and backward
class TestSETRMLAOnViT(OnnxInTheSlowTier, HeadBattery):
    head = "setr_mla"
    backbone = "vit_tiny_patch16_224"
    structures = ({**SMALL_VIT, "mla_channels": 32, "channels": 16},)
    test_other_input_channels = None


@pytest.mark.slow
class TestSETRMLAOnResNet(OnnxInTheSlowTier, HeadBattery):
    """On a pyramid backbone the running sum and the outputs are resized (a ViT's levels share one size)."""

    head = "setr_mla"
    structures = ({"output_stride": 32, "mla_channels": 32, "channels": 16},)


def test_mla_is_setrs():
    head = create_model("setr_mla_vit_tiny_patch16_224").head
    assert [n.normalized_shape for n in head.norms] == [(192,)] * 4 and head.norms[0].eps == 1e-6
    assert [p.conv.out_channels for p in head.projections] == [256] * 4
    assert [a.conv.kernel_size for a in head.aggregations] == [(3, 3)] * 4
    assert [len(u) for u in head.up_convs] == [2] * 4 and head.up_convs[0][1].conv.out_channels == 128
    assert head.classifier.in_channels == 4 * 128 and head.up_scale == 4


def test_mla_takes_no_neck():
    with pytest.raises(ConfigError, match="reads the backbone's own features and takes no neck"):
        create_model("setr_mla_vit_tiny_patch16_224", neck="multilevel")


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
