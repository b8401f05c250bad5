"""The zoo table: names, aliases, configs, and clear errors where weights cannot be had."""
import importlib.util

import pytest
import torch

import segzoo
from segzoo import UnknownModelError, WeightsUnavailableError, create_model, get_pretrained, list_pretrained
from segzoo.zoo import ADE20K_CLASSES, CITYSCAPES_CLASSES, VOC_CLASSES

# Names are timm's <architecture>.<tag> (the tag says where the weights come from); the seed zoo's names are
# the reference entries' short names, and the reference's spellings (psp_, deeplab_) aliases of the head names.
SHORT_NAMES = {
    "fcn_resnet101s_jpu.ref_voc": "fcn_resnet101_voc",
    "pspnet_resnet101s_jpu.ref_voc": "pspnet_resnet101_voc",
    "pspnet_resnet101s_d8.ref_voc": "pspnet_resnet101_dilated_voc",
    "deeplabv3_resnet101s_jpu.ref_voc": "deeplabv3_resnet101_voc",
    "danet_resnet101s_jpu.ref_voc": "danet_resnet101_voc",
    "bisenet_resnet18.ref_voc": "bisenet_resnet18_voc",
    "ocnet_resnet101s_jpu.ref_voc": "ocnet_resnet101_voc",
    "ccnet_resnet101s_jpu.ref_voc": "ccnet_resnet101_voc",
    "fcn_resnet101s_jpu.ref_citys": "fcn_resnet101_citys",
    "pspnet_resnet101s_jpu.ref_citys": "pspnet_resnet101_citys",
    "deeplabv3_resnet101s_jpu.ref_citys": "deeplabv3_resnet101_citys",
    "danet_resnet101s_jpu.ref_citys": "danet_resnet101_citys",
    "ocnet_resnet101s_jpu.ref_citys": "ocnet_resnet101_citys",
    "bisenet_resnet18.ref_citys": "bisenet_resnet18_citys",
    "deeplabv3_resnet101s_jpu.ref_ade": "deeplabv3_resnet101_ade",
}
TORCHVISION = {"fcn_resnet50.tv_coco_voc", "fcn_resnet101.tv_coco_voc", "deeplabv3_resnet50.tv_coco_voc",
               "deeplabv3_resnet101.tv_coco_voc"}
EXPECTED = set(SHORT_NAMES) | TORCHVISION


def _reference_and_torchvision() -> list[str]:
    return [name for name in list_pretrained() if get_pretrained(name).upstream in ("reference", "torchvision")]


def test_the_table_holds_the_reference_models():
    assert set(_reference_and_torchvision()) == EXPECTED
    assert list_pretrained("*_ade") == ["deeplabv3_resnet101s_jpu.ref_ade"]
    for name, short_name in SHORT_NAMES.items():
        assert get_pretrained(short_name).name == name and get_pretrained(name).short_names == (short_name,)
    assert segzoo.list_models("*_voc", pretrained=True) == sorted(n for n in EXPECTED if n.endswith("_voc"))
    assert "fcn_resnet101s_jpu.ref_voc" in segzoo.list_models() and "fcn_resnet18" in segzoo.list_models()


def test_entries_carry_configs_classes_repos_and_metrics():
    # the mmseg entries: tests/upstreams/test_mmseg_catalogue.py; transformers': tests/upstreams/test_transformers_*
    for name in _reference_and_torchvision():
        entry = get_pretrained(name)
        classes = {"voc": VOC_CLASSES, "citys": CITYSCAPES_CLASSES, "ade": ADE20K_CLASSES,
                   "coco_voc": VOC_CLASSES}[entry.dataset]
        assert entry.config.class_names == classes and entry.config.num_classes == len(classes)
        assert entry.hf_hub_id == f"segzoo/{name}" and not entry.published
        assert entry.config.aux and entry.config.align_corners == (entry.upstream == "reference")
        assert {"mIoU", "split", "eval"} <= set(entry.metrics) <= {"mIoU", "pixAcc", "split", "eval"} and entry.source
        assert entry.license and entry.terms
    assert get_pretrained("fcn_resnet101_voc").metrics["mIoU"] == 76.89
    assert get_pretrained("fcn_resnet101_voc").metrics["pixAcc"] == 94.50
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
    assert get_pretrained("psp_resnet101_citys").name == "pspnet_resnet101s_jpu.ref_citys"
    assert get_pretrained("deeplab_resnet101_ade").name == "deeplabv3_resnet101s_jpu.ref_ade"
    assert get_pretrained("psp_resnet101s_d8.ref_voc").name == "pspnet_resnet101s_d8.ref_voc"
    with torch.device("meta"):
        model = create_model("deeplab_resnet101_voc")
    assert model.config == get_pretrained("deeplabv3_resnet101_voc").config


@pytest.mark.parametrize("name, expected", [("fcn_resnet101_voc", 74_173_674), ("ocnet_resnet101_voc", 75_094_762),
                                            ("psp_resnet101_dilated_voc", 68_073_706)])
def test_zoo_models_count_the_reference_parameters(name, expected):
    with torch.device("meta"):
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_weights_that_exist_nowhere_say_so():
    with pytest.raises(WeightsUnavailableError, match=r"'ccnet_resnet101s_jpu.ref_voc' has no trained weights "
                                                      r"anywhere: the reference zoo's README .* reports its results "
                                                      r"but no checkpoint was published"):
        create_model("ccnet_resnet101_voc", pretrained=True)


def test_google_drive_files_without_gdown_or_mirror_say_what_to_do(monkeypatch, tmp_path):
    if importlib.util.find_spec("gdown") is not None:
        pytest.skip("gdown is installed here: it would try Google Drive")
    monkeypatch.delenv("SEGZOO_GDRIVE_URL", raising=False)
    monkeypatch.setenv("SEGZOO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsUnavailableError, match=r"ocnet_resnet101s_jpu.ref_voc is a Google Drive file "
                                                      r"\(15gs_gzgAT_hciPgwm12G_MRMi0VZg9Gb\): install gdown .*"
                                                      r"or set SEGZOO_GDRIVE_URL to a mirror"):
        create_model("ocnet_resnet101_voc", pretrained=True)
    assert not any((tmp_path / "cache").rglob("*.safetensors"))


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


@pytest.mark.parametrize("key", ["pattern", "head", "backbone", "dataset", "source"])
def test_list_pretrained_patterns_must_be_strings(key):
    """list_pretrained(head=3) was fnmatch's TypeError, which names neither the argument nor the function."""
    arguments = {"pattern": 3} if key == "pattern" else {key: 3}
    with pytest.raises(TypeError, match=rf"list_pretrained's {key} is an fnmatch pattern \(a string\), got int"):
        list_pretrained(**arguments)


def test_the_table_is_kept_across_a_refresh_while_the_plugins_are_the_same(monkeypatch):
    """refresh_heads (every test starts with one) rediscovers the plug-ins; the table, 60 ms to build, is rebuilt only
    when they changed: another class, or an attribute of one replaced (a corrected entry)."""
    from segzoo.zoo import table

    list_pretrained()
    built = []
    real = table._entry
    monkeypatch.setattr(table, "_entry", lambda *args: built.append(args) or real(*args))
    segzoo.refresh_heads()
    assert list_pretrained() and not built
    fcn = segzoo.get_head("fcn")
    monkeypatch.setattr(fcn, "pretrained", fcn.pretrained[:1])
    segzoo.refresh_heads()
    list_pretrained()
    assert built
