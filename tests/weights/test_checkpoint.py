"""save_pretrained / local-dir: / checkpoint_path, and every way a checkpoint can be wrong."""
import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import segzoo
from segzoo import CheckpointError, ConfigError, create_model, save_pretrained
from segzoo.testing import randomize_batch_norm


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("fcn_resnet18", num_classes=5, aux=True, output_stride=16, dropout=0.2)
    # Move BN statistics away from their defaults so a round trip that dropped buffers would show.
    randomize_batch_norm(model)
    directory = save_pretrained(model, tmp_path / "export")
    return model, directory


def test_files_and_provenance(saved):
    model, directory = saved
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((directory / "config.json").read_text())
    assert config["provenance"] == {"segzoo_version": segzoo.__version__, "head_distribution": "segzoo",
                                    "head_version": segzoo.__version__,
                                    "weights_sha256": hashlib.sha256(
                                        (directory / "model.safetensors").read_bytes()).hexdigest()}
    weights = load_file(directory / "model.safetensors")
    assert set(weights) == set(model.state_dict())
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_local_dir_round_trip_gives_identical_outputs(saved, images):
    model, directory = saved
    loaded = create_model(f"local-dir:{directory}")
    assert loaded.config.replace(provenance={}) == model.config
    assert torch.equal(loaded(images), model(images))


@pytest.mark.parametrize("which", ["dir", "file"])
def test_checkpoint_path(saved, images, which):
    model, directory = saved
    path = directory if which == "dir" else directory / "model.safetensors"
    loaded = create_model("fcn_resnet18", num_classes=5, aux=True, output_stride=16, checkpoint_path=str(path))
    assert torch.equal(loaded(images), model(images))


def test_other_num_classes_reinitialises_only_classifiers(saved, images):
    model, directory = saved
    with pytest.warns(UserWarning, match=r"another number of classes: re-initialised head.fcn.classifier.weight, "
                                         r"head.fcn.classifier.bias, aux_head.classifier.weight"):
        tuned = create_model(f"local-dir:{directory}", num_classes=2)
    assert tuned.config.num_classes == 2 and tuned(images).shape == (2, 2, 64, 80)
    source, target = model.state_dict(), tuned.state_dict()
    for key in target:
        if key in tuned.classifier_keys():
            assert target[key].shape[0] == 2
        else:
            assert torch.equal(target[key], source[key]), key


def test_aux_head_is_optional_on_load(saved, images):
    model, directory = saved
    without = create_model(f"local-dir:{directory}", aux=False)  # unused aux weights are dropped
    assert without.aux_head is None and torch.equal(without(images), model(images))
    save_pretrained(without, directory.parent / "no_aux")
    with pytest.warns(UserWarning, match="no aux head weights: the aux head starts from scratch"):
        create_model(f"local-dir:{directory.parent / 'no_aux'}", aux=True)


def test_shape_mismatch_names_key_and_shapes(saved, tmp_path):
    _, directory = saved
    weights = load_file(directory / "model.safetensors")
    weights["head.fcn.block.conv.weight"] = torch.zeros(64, 512, 3, 3)
    save_file(weights, tmp_path / "edited.safetensors")
    with pytest.raises(CheckpointError, match=r"key 'head.fcn.block.conv.weight' has shape \(64, 512, 3, 3\) "
                                              r"in the checkpoint but \(128, 512, 3, 3\) in the model"):
        create_model("fcn_resnet18", num_classes=5, checkpoint_path=str(tmp_path / "edited.safetensors"))


def test_missing_and_unexpected_keys_are_named(saved, tmp_path):
    _, directory = saved
    weights = load_file(directory / "model.safetensors")
    weights["head.extra.weight"] = torch.zeros(1)
    del weights["backbone.layer1.0.bn1.running_var"]
    save_file(weights, tmp_path / "edited.safetensors")
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): backbone.layer1.0.bn1.running_var; "
                                              r"unexpected keys \(1\): head.extra.weight"):
        create_model("fcn_resnet18", num_classes=5, checkpoint_path=str(tmp_path / "edited.safetensors"))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_weights_are_refused(saved, damage):
    _, directory = saved
    path = directory / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00" * 16 + data[16:])
    with pytest.raises(CheckpointError, match=r"model.safetensors is not a valid safetensors file"):
        create_model(f"local-dir:{directory}")


def test_config_with_unknown_field(saved):
    _, directory = saved
    config = json.loads((directory / "config.json").read_text())
    config["decoder_channels"] = 256
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"config.json: unknown config field\(s\): decoder_channels"):
        create_model(f"local-dir:{directory}")


def test_config_with_missing_field(saved):
    _, directory = saved
    config = json.loads((directory / "config.json").read_text())
    del config["backbone"]
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"missing required field\(s\): backbone"):
        create_model(f"local-dir:{directory}")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint directory not found: .*nowhere"):
        create_model(f"local-dir:{tmp_path / 'nowhere'}")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"half has no model.safetensors"):
        create_model(f"local-dir:{tmp_path / 'half'}")
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*missing.safetensors"):
        create_model("fcn_resnet18", checkpoint_path=str(tmp_path / "missing.safetensors"))


def test_save_leaves_no_temporary_files(saved):
    _, directory = saved
    save_pretrained(create_model("fcn_resnet18"), directory)
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]


def test_a_flipped_byte_in_a_saved_model_is_caught(tmp_path):
    """save_pretrained records the weights' sha256 in config.json and load_pretrained checks it (issue: a flipped
    byte in a local model.safetensors loaded silently)."""
    import json

    import segzoo
    from segzoo.errors import CheckpointError

    model = segzoo.create_model("fcn_resnet18", num_classes=3)
    segzoo.save_pretrained(model, tmp_path / "m")
    recorded = json.loads((tmp_path / "m" / "config.json").read_text())["provenance"]["weights_sha256"]
    assert len(recorded) == 64
    segzoo.create_model(f"local-dir:{tmp_path / 'm'}")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # inside a tensor: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"has sha256 [0-9a-f]{64}, but config.json records " + recorded):
        segzoo.create_model(f"local-dir:{tmp_path / 'm'}")


@pytest.mark.parametrize("thing", [object(), torch.nn.Linear(2, 2)], ids=["object", "plain torch module"])
def test_saving_what_is_not_a_segzoo_model_names_what_it_got(thing, tmp_path):
    """save_pretrained(object()) was a raw AttributeError ('object' has no attribute 'modules')."""
    with pytest.raises(TypeError, match=rf"save_pretrained saves a segzoo model .*got {type(thing).__name__}$"):
        save_pretrained(thing, tmp_path / "model")
    assert not (tmp_path / "model").exists()
