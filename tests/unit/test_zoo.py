"""The zoo table: names, aliases, configs, and clear errors while weights are unpublished."""
import pytest
import torch

import segzoo
from segzoo import UnknownModelError, WeightsUnavailableError, create_model, get_pretrained, list_pretrained
from segzoo.zoo.class_names import ADE20K_CLASSES, CITYSCAPES_CLASSES, VOC_CLASSES

# Canonical names start with the registered head name; the reference's spellings (psp_, deeplab_) are aliases.
EXPECTED = {
    "fcn_resnet101_voc", "pspnet_resnet101_voc", "pspnet_resnet101_dilated_voc", "deeplabv3_resnet101_voc",
    "danet_resnet101_voc", "bisenet_resnet18_voc", "ocnet_resnet101_voc", "ccnet_resnet101_voc",
    "fcn_resnet101_citys", "pspnet_resnet101_citys", "deeplabv3_resnet101_citys", "danet_resnet101_citys",
    "ocnet_resnet101_citys", "bisenet_resnet18_citys", "deeplabv3_resnet101_ade",
}


def test_the_table_holds_the_reference_models():
    assert set(list_pretrained()) == EXPECTED
    assert list_pretrained("*_ade") == ["deeplabv3_resnet101_ade"]
    assert segzoo.list_models("*_voc", pretrained=True) == sorted(n for n in EXPECTED if n.endswith("_voc"))
    assert "fcn_resnet101_voc" in segzoo.list_models() and "fcn_resnet18" in segzoo.list_models()


def test_entries_carry_configs_classes_repos_and_metrics():
    for name in list_pretrained():
        entry = get_pretrained(name)
        classes = {"voc": VOC_CLASSES, "citys": CITYSCAPES_CLASSES, "ade": ADE20K_CLASSES}[entry.dataset]
        assert entry.config.class_names == classes and entry.config.num_classes == len(classes)
        assert entry.hf_hub_id == f"segzoo/{name}" and not entry.published
        assert entry.config.aux and entry.config.align_corners
        assert set(entry.metrics) == {"mIoU", "split", "eval"} and entry.source
    assert get_pretrained("fcn_resnet101_voc").metrics["mIoU"] == 76.89
    assert get_pretrained("ocnet_resnet101_voc").metrics["mIoU"] == 79.07
    assert get_pretrained("psp_resnet101_dilated_voc").config.output_stride == 8
    assert get_pretrained("psp_resnet101_voc").config.neck == "jpu"
    assert get_pretrained("bisenet_resnet18_voc").config.backbone == "resnet18"
    assert get_pretrained("deeplab_resnet101_citys").config.input_size == (1024, 2048)


def test_reference_options_are_in_the_configs():
    assert get_pretrained("psp_resnet101_voc").config.head_kwargs == {"bins": (1, 2, 3, 4)}
    assert get_pretrained("danet_resnet101_voc").config.head_kwargs == {"softmax_over": "queries",
                                                                        "deep_supervision": False}
    assert get_pretrained("ocnet_resnet101_voc").config.head_kwargs == {"activation": "relu"}
    assert get_pretrained("deeplab_resnet101_voc").config.backbone == "resnet101s"


def test_aliases():
    assert get_pretrained("psp_resnet101_citys").name == "pspnet_resnet101_citys"
    assert get_pretrained("deeplab_resnet101_ade").name == "deeplabv3_resnet101_ade"
    with torch.device("meta"):
        model = create_model("deeplab_resnet101_voc")
    assert model.config == get_pretrained("deeplabv3_resnet101_voc").config


@pytest.mark.parametrize("name, expected", [("fcn_resnet101_voc", 74_173_674), ("ocnet_resnet101_voc", 75_094_762),
                                            ("psp_resnet101_dilated_voc", 68_073_706)])
def test_zoo_models_count_the_reference_parameters(name, expected):
    with torch.device("meta"):
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_unpublished_weights_say_so():
    with pytest.raises(WeightsUnavailableError, match=r"Weights of 'ocnet_resnet101_voc' are not published yet "
                                                      r"\(Hub repo segzoo/ocnet_resnet101_voc\)"):
        create_model("ocnet_resnet101_voc", pretrained=True)


def test_zoo_name_typos_get_suggestions():
    with pytest.raises(UnknownModelError, match=r"Unknown model 'fcn_resnet101_vco': not a zoo name. Did you mean: "
                                                r"fcn_resnet101_voc.*Unknown backbone 'resnet101_vco'"):
        create_model("fcn_resnet101_vco")
    with pytest.raises(UnknownModelError, match=r"Unknown zoo model 'ocnet_resnet101_cits'.*ocnet_resnet101_citys"):
        get_pretrained("ocnet_resnet101_cits")


def test_zoo_model_with_overrides_builds():
    model = create_model("bisenet_resnet18_voc", num_classes=4)
    model.train()
    outputs = model(torch.randn(2, 3, 64, 64))
    assert len(outputs) == 3 and outputs[0].shape == (2, 4, 64, 64)


def test_wrong_head_checkpoint_names_mismatched_keys(tmp_path):
    segzoo.save_pretrained(create_model("fcn_resnet18"), tmp_path / "fcn")
    with pytest.raises(segzoo.CheckpointError, match=r"missing keys \(\d+\): head.pyramid.*unexpected keys \(\d+\): "
                                                     r"head.fcn"):
        create_model("pspnet_resnet18", checkpoint_path=str(tmp_path / "fcn"))
