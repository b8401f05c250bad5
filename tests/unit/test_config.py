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
    ({"mean": (0.5, 0.5)}, "mean must have 3 values"),
])
def test_invalid_values_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        full_config().replace(**changes)
