"""Segmenter: the head's battery on a small ViT (the mask transformer and the linear decoder) and on a ResNet, and its
options. Parity with mmseg's own outputs is in tests/upstreams/test_mmseg_transformers_parity.py."""
from __future__ import annotations

import pytest
import torch

from segzoo import ConfigError, create_model
from segzoo.testing import HeadBattery
from support.slow_onnx import OnnxInTheSlowTier

SMALL_VIT = {"backbone_kwargs": {"depth": 4, "embed_dim": 48, "num_heads": 2}}


class TestSegmenterOnViT(OnnxInTheSlowTier, HeadBattery):
    head = "segmenter"
    backbone = "vit_tiny_patch16_224"
    structures = ({**SMALL_VIT}, {**SMALL_VIT, "decoder": "linear"})
    test_other_input_channels = None  # a ViT reads the image with one convolution: the ResNet class checks it


@pytest.mark.slow
class TestSegmenterOnResNet(OnnxInTheSlowTier, HeadBattery):
    head = "segmenter"
    structures = ({"output_stride": 32},)


def test_the_mask_transformer_is_segmenters():
    head = create_model("segmenter_vit_tiny_patch16_224", num_classes=5, **SMALL_VIT).head
    assert len(head.blocks) == 2 and head.projection.out_features == 48 and head.blocks[0].attn.num_heads == 1
    assert head.classifier.embeddings.shape == (5, 48) and head.classifier.normalized_shape == (5,)
    assert head.patch_projection.bias is None and head.class_projection.bias is None
    wide = create_model("segmenter_vit_tiny_patch16_224", num_classes=5, embed_dims=64, num_layers=3).head
    assert len(wide.blocks) == 3 and wide.blocks[0].attn.num_heads == 1 and wide.projection.in_features == 192


@pytest.mark.parametrize("kwargs, message", [
    ({"decoder": "mlp"}, "Segmenter decoder must be one of 'mask_transformer', 'linear', got 'mlp'"),
    ({"num_layers": 0}, "Segmenter num_layers must be an integer >= 1, got 0"),
    ({"embed_dims": 96, "num_heads": 5}, "Segmenter embed_dims (96) must be a multiple of num_heads (5)"),
    ({"dropout": 1.5}, "Segmenter dropout must be a number in [0, 1), got 1.5"),
])
def test_bad_options_fail_naming_the_option(kwargs, message):
    with pytest.raises(ConfigError) as error:
        create_model("segmenter_vit_tiny_patch16_224", **kwargs)
    assert str(error.value) == message


def test_scores_are_normalised_over_the_classes():
    """Before the LayerNorm over classes the scores are cosines (patch and class vectors L2-normalised)."""
    torch.manual_seed(0)
    model = create_model("segmenter_vit_tiny_patch16_224", num_classes=4, **SMALL_VIT).eval()
    model.head.classifier.forward = lambda scores: scores
    with torch.no_grad():
        scores = model.head({"c4": torch.randn(1, 48, 5, 7)})
    assert scores.shape == (1, 4, 5, 7) and scores.abs().max() <= 1 + 1e-5
