"""Mask2Former: the head's battery on a small Swin, its per-query outputs, the semantic scores recomputed from them, the
attention of a query whose mask is off everywhere, and its options. Parity with transformers' own outputs is in
tests/upstreams/test_transformers_parity.py."""
from __future__ import annotations

import pytest
import torch

from segzoo import ConfigError, create_model
from segzoo.testing import HeadBattery
from support.slow_onnx import OnnxInTheSlowTier

SMALL_SWIN = {"backbone_kwargs": {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 2)}}
# narrow and shallow, every code path: 2 deformable layers, 4 masked-attention layers (c4, c3, c2, c4 again)
NARROW = {"hidden_dim": 32, "feature_size": 32, "mask_feature_size": 16, "num_queries": 6, "decoder_layers": 5,
          "encoder_layers": 2, "dim_feedforward": 48, "encoder_feedforward_dim": 40, "num_heads": 4}


class TestMask2FormerOnSwin(HeadBattery):
    """Shallower still (the compiled graph's size is the layers'): a deformable layer, a masked-attention layer per
    level. The ONNX export is the CNN class's (torch's exporter does not finish a Swin in minutes here)."""

    head = "mask2former"
    backbone = "swin_tiny_patch4_window7_224"
    kwargs = {**NARROW, "decoder_layers": 4, "encoder_layers": 1}
    structures = (SMALL_SWIN,)
    test_onnx_export_runs_at_other_sizes = None
    # 5.5 s: the slow tier compiles it on every transformer backbone (tests/heads/test_transformer_backbones.py) and
    # on ConvNeXt below
    test_torch_compile_fullgraph_matches_eager = None


@pytest.mark.slow
class TestMask2FormerOnConvNeXt(OnnxInTheSlowTier, HeadBattery):
    """On a dilated CNN (c2 .. c4 at one stride), with the mask features at stride 8 (no FPN step) and pre-norm
    layers; the ONNX export with dynamic sizes, run in ONNX Runtime at other sizes."""

    head = "mask2former"
    backbone = "convnext_atto"
    kwargs = {**NARROW, "decoder_layers": 4, "encoder_layers": 1}
    structures = ({"output_stride": 32}, {"output_stride": 8},
                  {"output_stride": 32, "common_stride": 8, "pre_norm": True})


def _model(**options):
    torch.manual_seed(0)
    return create_model("mask2former_swin_tiny_patch4_window7_224", num_classes=3, **SMALL_SWIN,
                        **{**NARROW, **options}).eval()


def test_forward_queries_gives_each_prediction_per_query():
    model = _model()
    features = model.backbone_features(torch.randn(2, 3, 97, 131))
    with torch.no_grad():
        out = model.head.forward_queries(features)
    assert out["class_logits"].shape == (2, 6, 4)  # 3 classes and no object
    assert out["mask_logits"].shape == (2, 6, *features["c1"].shape[-2:])  # stride 4 (after Swin's pad to 100x132)
    assert len(out["aux"]) == 4  # the prediction before the first layer and after each of the first three
    assert all(aux["class_logits"].shape == out["class_logits"].shape and aux["mask_logits"].shape ==
               out["mask_logits"].shape for aux in out["aux"])


@pytest.mark.parametrize("aux", [False, True])
def test_training_gives_the_per_query_outputs_with_the_earlier_predictions_under_aux(aux):
    """In training the model hands on the head's per-query outputs (Mask2Former's matching loss reads them); the head
    makes its own auxiliary outputs (its earlier predictions), so no FCN aux head is built."""
    model = _model(aux=aux).train()
    out = model(torch.randn(2, 3, 64, 72))
    assert model.aux_head is None and out["class_logits"].shape == (2, 6, 4)
    assert out["mask_logits"].shape == (2, 6, 16, 18) and len(out["aux"]) == (4 if aux else 0)


def test_the_semantic_scores_are_the_queries_class_probabilities_times_their_masks():
    """Recomputed query by query from forward_queries: softmax over K + 1 classes with the last (no object) dropped,
    times the sigmoid of the mask upsampled to the input (bilinear, align_corners=False), summed over the queries."""
    model = _model()
    images = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        scores = model(images)
        out = model.head.forward_queries(model.backbone_features(images))
    expected = torch.zeros(1, 3, 45, 61)
    for q in range(6):
        probabilities = torch.exp(out["class_logits"][0, q]) / torch.exp(out["class_logits"][0, q]).sum()
        mask = torch.nn.functional.interpolate(out["mask_logits"][:, q:q + 1], size=(45, 61), mode="bilinear",
                                               align_corners=False)
        expected += probabilities[:3, None, None] * (1 / (1 + torch.exp(-mask[0])))
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)
    assert scores.min() >= 0 and scores.max() <= 6


def test_a_query_masked_everywhere_attends_everywhere():
    """Masks off everywhere (every mask logit negative) would leave the cross-attention nothing to attend to (NaN);
    such a query's row is opened, as transformers and the authors do."""
    model = _model()
    with torch.no_grad():
        last = model.head.decoder.mask_embed[-1]
        last.weight.zero_()
        last.bias.fill_(1.0)
        projection = model.head.pixel_decoder.mask_projection
        projection.weight.zero_()
        projection.bias.fill_(-1.0)
        out = model.head.forward_queries(model.backbone_features(torch.randn(1, 3, 64, 64)))
    assert (out["aux"][0]["mask_logits"] < 0).all()
    assert torch.isfinite(out["class_logits"]).all()


def test_bad_mask2former_options_fail_in_one_line():
    with pytest.raises(ConfigError, match="feature_size must be a multiple of 32"):
        _model(feature_size=48)
    with pytest.raises(ConfigError, match="common_stride must be one of 4, 8"):
        _model(common_stride=2)
    with pytest.raises(ConfigError, match="hidden_dim 30 must be even and divide into num_heads=4"):
        _model(hidden_dim=30)
    with pytest.raises(ConfigError, match="decoder_layers must be an integer >= 1"):
        _model(decoder_layers=0)
