import json

import pytest

from segzoo import ConfigError, ModelConfig


def full_config():
    return ModelConfig(head="fcn", backbone="resnet101s", num_classes=3, output_stride=32, neck="jpu", aux=True,
                       head_kwargs={"dropout": 0.2, "bins": (1, 2, (3, 4))}, class_names=("bg", "cat", "dog"),
                       mean=(0.5, 0.5, 0.5),
                       std=(0.25, 0.25, 0.25), align_corners=False, input_size=(512, 1024),
                       provenance={"segzoo_version": "0.1.0"})


def test_json_round_trip_is_lossless():
    config = full_config()
    text = config.to_json()
    again = ModelConfig.from_json(text)
    assert again == config
    assert again.to_json() == text
    assert isinstance(again.mean, tuple) and isinstance(again.class_names, tuple)


def test_file_round_trip(tmp_path):
    config = full_config()
    config.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json") == config


def test_unknown_field_is_named():
    data = full_config().to_dict()
    data["backbone_lr"] = 0.1
    with pytest.raises(ConfigError, match="unknown config field.*backbone_lr"):
        ModelConfig.from_json(json.dumps(data))


def test_missing_required_field_is_named():
    data = full_config().to_dict()
    del data["num_classes"], data["head"]
    with pytest.raises(ConfigError, match="missing required field.*head, num_classes"):
        ModelConfig.from_dict(data)


def test_not_json_names_the_source():
    with pytest.raises(ConfigError, match="my.json is not valid JSON"):
        ModelConfig.from_json("{not json", source="my.json")


@pytest.mark.parametrize("changes, message", [
    ({"num_classes": 0}, "num_classes must be an integer >= 1"),
    ({"num_classes": 2.5}, "num_classes must be an integer >= 1"),
    ({"output_stride": 4}, "output_stride must be 8, 16 or 32"),
    ({"neck": "fpn"}, "neck must be one of"),
    ({"neck": "jpu", "output_stride": 8}, "JPU neck reads an output-stride-32 backbone"),
    ({"class_names": ("a", "b")}, "class_names has 2 names for num_classes=3"),
    ({"mean": (0.5, 0.5)}, r"mean must have in_chans=3 values \(one per input channel\)"),
    ({"in_chans": 4, "mean": (0.5, 0.5, 0.5)}, r"mean must have in_chans=4 values"),
    ({"in_chans": 0}, r"in_chans must be an integer >= 1"),
    ({"mode": "softmax"}, r"mode must be one of .multiclass., .binary., .multilabel., got .softmax."),
    ({"mode": "binary"}, r"mode .binary. has one output channel: num_classes must be 1"),
    ({"threshold": 1.0}, r"threshold must be a probability in \(0, 1\)"),
])
def test_invalid_values_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        full_config().replace(**changes)


def test_normalisation_defaults_follow_the_input_bands():
    """One band is grey (timm sums the RGB stem filters): ImageNet's mean statistics; band i of N takes RGB
    channel i % 3's (timm repeats the filters cyclically); an old config.json without the new fields loads as RGB
    multiclass."""
    assert ModelConfig("fcn", "resnet18", 3).mean == (0.485, 0.456, 0.406)
    grey = ModelConfig("fcn", "resnet18", 1, mode="binary", in_chans=1)
    assert grey.mean == (0.449,) and grey.std == (0.226,)
    four = ModelConfig("fcn", "resnet18", 5, mode="multilabel", in_chans=4)
    assert four.mean == (0.485, 0.456, 0.406, 0.485) and four.std == (0.229, 0.224, 0.225, 0.229)
    assert ModelConfig.from_json(four.to_json()) == four
    old = {key: value for key, value in ModelConfig("fcn", "resnet18", 3).to_dict().items()
           if key not in ("mode", "threshold", "in_chans")}
    restored = ModelConfig.from_dict(old)
    assert (restored.mode, restored.threshold, restored.in_chans) == ("multiclass", 0.5, 3)


@pytest.mark.parametrize("fields, message", [
    ({"feature_indices": (1, 2, 3)}, r"feature_indices must be None or four integers"),
    ({"feature_norms": ("c5",)}, r"feature_norms must name distinct feature levels among c1, c2, c3, c4"),
    ({"feature_norms": ("c1", "c1")}, r"feature_norms must name distinct"),
    ({"feature_norm_eps": 0}, r"feature_norm_eps must be a number > 0"),
    ({"backbone_norm_eps": float("nan")}, r"backbone_norm_eps must be None or a number > 0"),
    ({"neck_kwargs": {"out_channels": 8}}, r"neck_kwargs \{'out_channels': 8\} given without a neck"),
])
def test_transformer_era_fields_are_checked(fields, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(head="fcn", backbone="resnet18", num_classes=2, **fields)


def test_transformer_era_fields_round_trip_through_json():
    config = ModelConfig(head="upernet", backbone="vit_tiny_patch16_224", num_classes=2, output_stride=32,
                         feature_indices=(2, 5, 8, 11), feature_norms=("c4",), feature_norm_eps=1e-5,
                         backbone_norm_eps=1e-12, neck="multilevel", neck_kwargs={"out_channels": 32,
                                                                                 "scales": (4, 2, 1, 0.5)})
    assert ModelConfig.from_json(config.to_json()) == config


def test_an_unknown_neck_argument_is_named():
    from segzoo import create_model

    with pytest.raises(ConfigError, match=r"neck 'multilevel' does not accept argument\(s\) width \(neck_kwargs\)"):
        create_model("upernet_vit_tiny_patch16_224", neck="multilevel", neck_kwargs={"width": 3})
