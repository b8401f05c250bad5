"""BiSeNet in mmsegmentation's form (``BiSeNetV1``) reproduces mmsegmentation's own outputs.

``tests/reference_data/mmseg/make_reference.py`` ran mmseg 1.2.2's ``bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024``
with deterministic weights (``tests/support/seeded_weights.py``) on one odd-sized input and kept its logits and the
outputs of its two auxiliary heads (``aux0`` on the /8 context output, ``aux1`` on the /16 one). Here the same
weights are made from the stored layout, converted with the head's ``mmseg`` form, and run.
"""
from __future__ import annotations

import pytest
import torch

from segzoo import ConfigError, create_model, get_pretrained
from segzoo.backbones import FEATURE_NAMES
from segzoo.heads.bisenet import MMSEG_BISENETV1_OPTIONS, BiSeNetHead
from segzoo.testing import HeadBattery
from segzoo.upstream import find_upstream
from segzoo.weights.convert import convert_upstream
from support.mmseg_reference import max_difference, reference_outputs, seeded_state_dict

NAME = "bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024"
# mmseg's bisenetv1_r18-d32 configs, as head options (the form's options)
R18 = {"upsample_mode": "nearest", "spatial_channels": (64, 64, 64, 128), "context_channels": 128,
       "fusion_channels": 256, "fusion_attention": "conv_bn_act", "head_channels": 256, "aux_channels": 64}
# its r50-d32 / r101-d32 configs
R50 = {"upsample_mode": "nearest", "spatial_channels": (256, 256, 256, 512), "context_channels": 512,
       "fusion_channels": 1024, "fusion_attention": "conv_bn_act", "head_channels": 1024, "aux_channels": 256}


def test_the_form_options_are_mmseg_r18s():
    assert find_upstream(BiSeNetHead, "mmseg", "bisenetv1").options == MMSEG_BISENETV1_OPTIONS == R18


def test_the_entries_carry_mmsegs_widths():
    assert {**get_pretrained("bisenet_resnet18_d32.mmseg_cityscapes").config.head_kwargs} == R18
    assert {**get_pretrained("bisenet_resnet50_d32.mmseg_cityscapes").config.head_kwargs} == R50
    assert {**get_pretrained("bisenet_resnet101_d32.mmseg_coco_stuff164k").config.head_kwargs} == R50


def test_converted_model_reproduces_mmseg():
    entry = get_pretrained("bisenet_resnet18_d32.mmseg_cityscapes_160k_1024x1024")
    model, converted, report = convert_upstream(seeded_state_dict(NAME), "mmseg", entry=entry)
    assert report.placed == len(model.state_dict()) == len(seeded_state_dict(NAME)) and not report.dropped
    model.load_state_dict(converted, strict=True)
    model.eval()
    image = torch.from_numpy(reference_outputs()["input"])
    with torch.no_grad():
        difference, allowed = max_difference(model(image), reference_outputs()[f"{NAME}/logits"])
        assert difference <= allowed, f"logits differ by {difference:.3g} (allowed {allowed:.3g})"
        # the aux heads' outputs before upsampling: run the head in training mode with frozen BatchNorm
        features = dict(zip(FEATURE_NAMES, model.backbone(image)))
        model.head.train()
        for module in model.head.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.Dropout)):
                module.eval()
        _, aux16, aux8 = model.head(features, image)
    for name, actual in (("aux0", aux8), ("aux1", aux16)):  # mmseg's aux0 reads the /8 context output
        difference, allowed = max_difference(actual, reference_outputs()[f"{NAME}/{name}"])
        assert difference <= allowed, f"{name} differs by {difference:.3g} (allowed {allowed:.3g})"


def test_the_r50_options_build_mmsegs_shapes():
    """mmseg's R50 BiSeNetV1 widths: every parameter of segzoo's head has the shape of mmseg's."""
    head = create_model("bisenet_resnet50", num_classes=19, output_stride=32, aux=True, **R50).head
    shapes = {key: tuple(value.shape) for key, value in head.state_dict().items()}
    assert shapes["spatial_path.conv_out.conv.weight"] == (512, 256, 1, 1)
    assert shapes["arm_c3.conv.conv.weight"] == (512, 1024, 3, 3)
    assert shapes["global_context.conv.weight"] == (512, 2048, 1, 1)
    assert shapes["fusion.conv.conv.weight"] == (1024, 1024, 1, 1)
    assert shapes["fusion.attention.conv.weight"] == (1024, 1024, 1, 1)
    assert shapes["main_head.block.conv.weight"] == (1024, 1024, 3, 3)
    assert shapes["aux_heads.0.block.conv.weight"] == (256, 512, 3, 3)


def test_the_defaults_keep_the_reference_form():
    head = create_model("bisenet_resnet18", output_stride=32, aux=True, context_channels=96).head
    assert head.spatial_path.conv_out.conv.out_channels == 96  # the spatial path ends at context_channels
    assert head.fusion.conv.conv.weight.shape[:2] == (192, 192)
    assert hasattr(head.fusion, "attention_reduce") and head.upsample_mode == "bilinear"
    assert head.main_head.block.conv.out_channels == 64 and head.aux_heads[0].block.conv.out_channels == 256


@pytest.mark.parametrize("option, value", [
    ("upsample_mode", "bicubic"), ("fusion_attention", "se"), ("spatial_channels", (64, 64, 128)),
    ("spatial_channels", (64, 64, 0, 128)), ("context_channels", 0), ("fusion_channels", 1.5),
    ("head_channels", True), ("aux_channels", -1),
])
def test_a_bad_option_is_a_one_line_config_error_naming_it(option, value):
    with pytest.raises(ConfigError) as error:
        create_model("bisenet_resnet18", output_stride=32, **{option: value})
    message = str(error.value)
    assert option in message and "\n" not in message


class TestBiSeNetMMSeg(HeadBattery):
    head = "bisenet"
    kwargs = R18
    structures = ({"output_stride": 32},)
    aux_outputs = 2

    # test_export.py exports BiSeNet's default form only; this one (nearest upsampling) exports here, in the slow
    # tier, which CI runs after the default tier
    @pytest.mark.slow
    def test_onnx_export_runs_at_other_sizes(self, tmp_path):
        super().test_onnx_export_runs_at_other_sizes(tmp_path)
