import pytest
import torch

from segzoo import SegzooError, UnknownModelError, create_model, list_models, parse_model_name


def test_parse_generic_names():
    assert parse_model_name("fcn_resnet101s") == ("fcn", "resnet101s")
    assert parse_model_name("fcn_convnext_tiny") == ("fcn", "convnext_tiny")


def test_list_models_and_patterns():
    names = list_models()
    assert "fcn_resnet101s" in names and "fcn_resnet18" in names and names == sorted(names)
    assert [name for name in list_models("fcn_resnet50*") if ".mmseg_" not in name] == [
        "fcn_resnet50", "fcn_resnet50.tv_coco_voc", "fcn_resnet50s"]
    assert "fcn_resnet50c_d8.mmseg_cityscapes_40k" in list_models("fcn_resnet50*")
    assert "ccnet_resnet101s" in list_models("*_resnet101s")
    assert list_models("nothing*") == []


def test_defaults():
    model = create_model("fcn_resnet18")
    config = model.config
    assert (config.num_classes, config.output_stride, config.neck, config.aux) == (21, 8, None, False)
    assert not model.training
    assert create_model("fcn_resnet18", neck="jpu").config.output_stride == 32


def test_none_kwargs_are_ignored():
    model = create_model("fcn_resnet18", num_classes=None, aux=None, output_stride=None, neck=None, dropout=None)
    assert model.config == create_model("fcn_resnet18").config


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match=r"Unknown model 'fcm_resnet50'.*Did you mean: fcn_resnet50"):
        create_model("fcm_resnet50")


def test_unknown_backbone_in_a_model_name():
    with pytest.raises(UnknownModelError, match=r"Unknown backbone 'resnet10l' in model name 'fcn_resnet10l'.*"
                                                r"Did you mean: .*resnet10t"):
        create_model("fcn_resnet10l")


def test_pretrained_needs_a_zoo_name():
    with pytest.raises(UnknownModelError, match=r"'fcn_resnet18' has no published weights.*pretrained_backbone=True"):
        create_model("fcn_resnet18", pretrained=True)


def test_malformed_hub_names_are_refused_clearly():
    with pytest.raises(SegzooError, match=r"Hub repo id must be 'namespace/name\[@revision\]', got 'no-namespace'"):
        create_model("hf-hub:no-namespace")


def test_output_stride_override():
    model = create_model("fcn_resnet18", output_stride=16)
    assert model.backbone(torch.randn(1, 3, 64, 64))[-1].shape[-1] == 4
