import pytest
import timm
import torch

from segzoo import ConfigError, UnknownModelError, create_model
from segzoo.backbones import create_backbone, pretrained_tag
from segzoo.necks.jpu import JPU


@pytest.mark.parametrize("output_stride, expected", [(8, [4, 8, 8, 8]), (16, [4, 8, 16, 16]), (32, [4, 8, 16, 32])])
def test_output_stride_sets_the_feature_strides(output_stride, expected):
    backbone, info = create_backbone("resnet18", output_stride=output_stride)
    features = backbone(torch.randn(1, 3, 64, 96))
    assert [64 // f.shape[-2] for f in features] == expected
    assert [96 // f.shape[-1] for f in features] == expected
    assert [f.shape[1] for f in features] == [64, 128, 256, 512] == list(info.channels.values())


def test_v1s_deep_stem_channels():
    _, info = create_backbone("resnet50s", output_stride=8)
    assert list(info.channels.values()) == [256, 512, 1024, 2048]


def test_dilated_backbone_reuses_the_plain_weights():
    """OS8 only changes strides and dilations, so both variants hold the same timm keys and shapes."""
    plain, _ = create_backbone("resnet18", output_stride=32)
    dilated, _ = create_backbone("resnet18", output_stride=8)
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in dilated.state_dict().items()}


def test_model_keys_are_timm_keys_under_backbone():
    """A timm classification checkpoint (minus its classifier) loads into the backbone unchanged."""
    timm_model = timm.create_model("resnet18")
    timm_state = {k: v for k, v in timm_model.state_dict().items() if not k.startswith("fc.")}
    model = create_model("fcn_resnet18")
    backbone_state = {k[len("backbone."):]: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    assert set(backbone_state) == set(timm_state)
    model.backbone.load_state_dict(timm_state)  # strict
    assert torch.equal(model.state_dict()["backbone.layer4.1.conv2.weight"], timm_state["layer4.1.conv2.weight"])


def test_any_timm_feature_model_works():
    model = create_model("fcn_convnext_atto", num_classes=4, output_stride=32)
    assert model(torch.randn(1, 3, 65, 67)).shape == (1, 4, 65, 67)


def test_gluon_tags_are_named_explicitly():
    assert pretrained_tag("resnet101") == "resnet101.gluon_in1k"
    assert pretrained_tag("resnet101s") == "resnet101s.gluon_in1k"
    assert pretrained_tag("resnet18.tv_in1k") == "resnet18.tv_in1k"
    assert pretrained_tag("convnext_tiny") == "convnext_tiny"
    assert timm.models.get_pretrained_cfg("resnet18.gluon_in1k").hf_hub_id == "timm/resnet18.gluon_in1k"


def test_unknown_backbone_suggests_timm_names():
    with pytest.raises(UnknownModelError, match=r"Unknown backbone 'resnet5O'.*Did you mean: .*resnet50"):
        create_backbone("resnet5O")


def test_invalid_output_stride():
    with pytest.raises(ConfigError, match="output_stride must be one of"):
        create_backbone("resnet18", output_stride=4)


def test_backbone_without_output_stride_support():
    with pytest.raises(ConfigError, match="does not support output_stride=8"):
        create_backbone("vit_tiny_patch16_224", output_stride=8)


def test_jpu_shapes():
    jpu = JPU({"c2": 32, "c3": 48, "c4": 64}, width=16).eval()
    features = {"c1": torch.randn(1, 8, 32, 40), "c2": torch.randn(1, 32, 16, 20),
                "c3": torch.randn(1, 48, 8, 10), "c4": torch.randn(1, 64, 4, 5)}
    out = jpu(features)
    assert out["c4"].shape == (1, 64, 16, 20)
    assert out["c3"] is features["c3"]  # raw c3 stays available for the aux head


def test_a_dot_with_no_tag_is_refused():
    """'fcn_resnet50.' quietly built resnet50 with timm's default weights tag."""
    with pytest.raises(UnknownModelError, match=r"'resnet18\.' in model name 'fcn_resnet18\.' ends in '\.' with no "
                                                r"pretrained tag"):
        create_model("fcn_resnet18.")
