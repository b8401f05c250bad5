"""Converted mmsegmentation checkpoints reproduce mmsegmentation's own outputs.

``tests/reference_data/mmseg/make_reference.py`` ran mmsegmentation 1.2.2 (in a scratch environment; segzoo never
depends on it) on 14 of its model configs with deterministic weights (``tests/support/seeded_weights.py``) and one
odd-sized input, and committed the outputs and each model's state-dict layout. Here the same weights are made from the
layout, converted as the zoo entry of that config converts its real checkpoint, and run.

The weights are random, so activations grow through the residual stages (ResNet-101's logits reach 1.7e4): the
tolerance is 1e-4 of the reference's largest magnitude (and at least 1e-4).
"""
from __future__ import annotations

import pytest
import torch

from segzoo.backbones import FEATURE_NAMES
from segzoo.weights.convert import convert_upstream
from segzoo.zoo import get_pretrained, list_pretrained
from support.mmseg_reference import max_difference, reference_outputs, seeded_state_dict

# mmseg configs whose heads segzoo has in mmseg's form (the others serve the heads still to come)
CASES = {
    "fcn_r50-d8_4xb2-40k_cityscapes-512x1024": "fcn_resnet50c_d8.mmseg_cityscapes_40k",
    "fcn_r50-d8_4xb2-40k_cityscapes-769x769": "fcn_resnet50c_d8.mmseg_cityscapes_40k_769x769",
    "fcn_r18-d8_4xb2-80k_cityscapes-512x1024": "fcn_resnet18c_d8.mmseg_cityscapes_80k",
    "fcn-d6_r50-d16_4xb2-40k_cityscapes-512x1024": "fcn_d6_resnet50c_d16.mmseg_cityscapes_40k",
    "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024": "pspnet_resnet50c_d8.mmseg_cityscapes_40k",
    "pspnet_r18b-d8_4xb2-80k_cityscapes-512x1024": "pspnet_resnet18_d8.mmseg_cityscapes_80k",
    "pspnet_r50b-d32_4xb2-80k_cityscapes-512x1024": "pspnet_resnet50_d32.mmseg_cityscapes_80k",
    "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024": "deeplabv3_resnet50c_d8.mmseg_cityscapes_40k",
    "deeplabv3_r101-d8_4xb4-20k_voc12aug-512x512": "deeplabv3_resnet101c_d8.mmseg_voc_aug_20k",
    "danet_r50-d8_4xb2-40k_cityscapes-512x1024": "danet_resnet50c_d8.mmseg_cityscapes_40k",
    "ccnet_r50-d8_4xb2-40k_cityscapes-512x1024": "ccnet_resnet50c_d8.mmseg_cityscapes_40k",
    "deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024": "deeplabv3plus_resnet50c_d8.mmseg_cityscapes_40k",
    "upernet_r50_4xb2-40k_cityscapes-512x1024": "upernet_resnet50c_d32.mmseg_cityscapes_40k",
}
# mmseg's fcn-d6 models dilate their aux head by 6 as well; segzoo's aux head (training only) is the standard one
AUX_DIFFERS = {"fcn-d6_r50-d16_4xb2-40k_cityscapes-512x1024"}


def test_every_case_is_an_entry_made_from_that_config():
    for mmseg_name, zoo_name in CASES.items():
        entry = get_pretrained(zoo_name)
        assert entry.source.endswith(f"({mmseg_name})"), (zoo_name, entry.source)


@pytest.mark.parametrize("mmseg_name", sorted(CASES))
def test_converted_model_reproduces_mmseg(mmseg_name):
    entry = get_pretrained(CASES[mmseg_name])
    model, converted, report = convert_upstream(seeded_state_dict(mmseg_name), "mmseg", entry=entry)
    assert report.placed == len(model.state_dict()) and not report.dropped
    model.load_state_dict(converted, strict=True)
    model.eval()
    image = torch.from_numpy(reference_outputs()["input"])
    with torch.no_grad():
        logits = model(image)
        difference, allowed = max_difference(logits, reference_outputs()[f"{mmseg_name}/logits"])
        assert difference <= allowed, f"{mmseg_name}: logits differ by {difference:.3g} (allowed {allowed:.3g})"
        if mmseg_name not in AUX_DIFFERS:
            features = dict(zip(FEATURE_NAMES, model.backbone(image)))
            aux = model.aux_head(features["c3"])
            difference, allowed = max_difference(aux, reference_outputs()[f"{mmseg_name}/aux"])
            assert difference <= allowed, f"{mmseg_name}: aux logits differ by {difference:.3g}"


def test_the_layout_checks_catch_a_wrong_structure():
    """The same weights on the wrong structure do not pass: the v1b PSPNet checkpoint as a v1c entry is refused
    by its keys, and a D8 FCN as the D16 (dilation 6) entry converts but does not reproduce mmseg."""
    from segzoo.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"(?s)keys that cannot be placed .*backbone\.conv1\.weight"):
        convert_upstream(seeded_state_dict("pspnet_r18b-d8_4xb2-80k_cityscapes-512x1024"), "mmseg",
                         entry=get_pretrained("pspnet_resnet18c_d8.mmseg_cityscapes_80k"))
    name = "fcn_r50-d8_4xb2-40k_cityscapes-512x1024"
    model, converted, _ = convert_upstream(seeded_state_dict(name), "mmseg",
                                           entry=get_pretrained("fcn_d6_resnet50c_d16.mmseg_cityscapes_40k"))
    model.load_state_dict(converted)
    with torch.no_grad():
        difference, allowed = max_difference(model.eval()(torch.from_numpy(reference_outputs()["input"])),
                                      reference_outputs()[f"{name}/logits"])
    assert difference > 100 * allowed


def test_all_layouts_of_the_reference_are_covered_by_an_entry_family():
    """Each reference layout's architecture has zoo entries (the families the cases stand for)."""
    names = list_pretrained("*.mmseg_*")
    for zoo_name in CASES.values():
        assert zoo_name in names
