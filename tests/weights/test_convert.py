"""The reference-checkpoint converter, on random state dicts built from the reference key layouts."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import segzoo
from segzoo.errors import CheckpointError
from segzoo.weights.convert import convert_file, convert_state_dict
from support.reference_checkpoints import FILES, is_query_copy, random_state

REPO = Path(__file__).resolve().parents[2]
# (head, neck, output_stride, head_kwargs as config.json holds them)
CONFIGS = {
    "fcn_jpu": ("fcn", "jpu", 32, {}),
    "psp_d8": ("pspnet", None, 8, {"bins": [1, 2, 3, 4]}),
    "psp_jpu": ("pspnet", "jpu", 32, {"bins": [1, 2, 3, 4]}),
    "deeplabv3_jpu": ("deeplabv3", "jpu", 32, {}),
    "danet_jpu": ("danet", "jpu", 32, {"softmax_over": "queries", "deep_supervision": False}),
    "ocnet_base_jpu": ("ocnet", "jpu", 32, {"activation": "relu"}),
    "ocnet_asp_jpu": ("ocnet", "jpu", 32, {"variant": "asp", "activation": "relu", "asp_reduce_channels": 0,
                                           "asp_branch_channels": 512}),
}


# --- an independent statement of the mapping: exact module paths, not the converter's regex rules ---
def _cbr(src, dst):
    return {f"{src}.0": f"{dst}.conv", f"{src}.1": f"{dst}.bn"}


NECK = {**_cbr("JPU.conv5", "neck.conv5"), **_cbr("JPU.conv4", "neck.conv4"), **_cbr("JPU.conv3", "neck.conv3")}
for _d in range(1, 5):
    NECK.update({f"JPU.dilation{_d}.0.conv1": f"neck.dilations.{_d - 1}.depthwise",
                 f"JPU.dilation{_d}.0.bn": f"neck.dilations.{_d - 1}.depthwise_bn",
                 f"JPU.dilation{_d}.0.pointwise": f"neck.dilations.{_d - 1}.pointwise",
                 f"JPU.dilation{_d}.1": f"neck.dilations.{_d - 1}.bn"})
AUX = {**_cbr("auxlayer.block", "aux_head.block"), "auxlayer.block.4": "aux_head.classifier"}
PSP = {**{k: v for i in range(4) for k, v in _cbr(f"head.psp.conv{i + 1}", f"head.pyramid.branches.{i}").items()},
       **_cbr("head.block", "head.bottleneck"), "head.block.4": "head.classifier"}
OC = "head.object_context"
HEADS = {
    "fcn_jpu": {**_cbr("head.block", "head.fcn.block"), "head.block.4": "head.fcn.classifier"},
    "psp_d8": PSP, "psp_jpu": PSP,
    "deeplabv3_jpu": {**_cbr("head.aspp.b0", "head.aspp.conv1x1"), **_cbr("head.aspp.b1", "head.aspp.atrous.0"),
                      **_cbr("head.aspp.b2", "head.aspp.atrous.1"), **_cbr("head.aspp.b3", "head.aspp.atrous.2"),
                      "head.aspp.b4.gap.1": "head.aspp.pool_conv.conv", "head.aspp.b4.gap.2": "head.aspp.pool_conv.bn",
                      **_cbr("head.aspp.project", "head.aspp.project"), **_cbr("head.block", "head.block"),
                      "head.block.4": "head.classifier"},
    "danet_jpu": {**_cbr("head.conv5a", "head.conv5a"), **_cbr("head.conv5c", "head.conv5c"),
                  "head.sa": "head.position_attention", "head.sa.query_conv": "head.position_attention.query",
                  "head.sa.key_conv": "head.position_attention.key",
                  "head.sa.value_conv": "head.position_attention.value", "head.sc": "head.channel_attention",
                  **_cbr("head.conv51", "head.conv51"), **_cbr("head.conv52", "head.conv52"),
                  "head.conv8.1": "head.classifier"},
    "ocnet_base_jpu": {**_cbr("context", "head.reduce"), **_cbr("context.3.stages.0.f_key", f"{OC}.key_query"),
                       "context.3.stages.0.f_value": f"{OC}.value", "context.3.stages.0.W": f"{OC}.out_proj",
                       **_cbr("context.3.conv_bn_dropout", "head.fuse"), "cls": "head.classifier"},
    "ocnet_asp_jpu": {**_cbr("context.0.context", "head.context_conv"),
                      **_cbr("context.0.context.3.stages.0.f_key", f"{OC}.key_query"),
                      "context.0.context.3.stages.0.f_value": f"{OC}.value",
                      "context.0.context.3.stages.0.W": f"{OC}.out_proj",
                      **_cbr("context.0.context.3.conv_bn_dropout", "head.context_fuse"),
                      **_cbr("context.0.conv2", "head.conv1x1"), **_cbr("context.0.conv3", "head.atrous.0"),
                      **_cbr("context.0.conv4", "head.atrous.1"), **_cbr("context.0.conv5", "head.atrous.2"),
                      **_cbr("context.0.conv_bn_dropout", "head.fuse"), "cls": "head.classifier"},
}
SPOT_CHECKS = [("base1.0.weight", "backbone.conv1.0.weight"), ("base1.7.weight", "backbone.bn1.weight"),
               ("base1.10.2.bn3.running_var", "backbone.layer1.2.bn3.running_var"),
               ("base1.11.downsample.0.weight", "backbone.layer2.0.downsample.0.weight"),
               ("base1.14.conv1.weight", "backbone.layer2.3.conv1.weight"),
               ("base2.3.conv2.weight", "backbone.layer3.3.conv2.weight"),
               ("base3.2.bn1.num_batches_tracked", "backbone.layer4.2.bn1.num_batches_tracked"),
               ("auxlayer.block.0.weight", "aux_head.block.conv.weight"),
               ("auxlayer.block.4.bias", "aux_head.classifier.bias")]
SPOT_CHECKS_BY_KIND = {
    "fcn_jpu": [("head.block.4.bias", "head.fcn.classifier.bias"),
                ("JPU.dilation2.0.pointwise.weight", "neck.dilations.1.pointwise.weight")],
    "psp_d8": [("head.psp.conv4.1.running_mean", "head.pyramid.branches.3.bn.running_mean")],
    "psp_jpu": [("head.block.0.weight", "head.bottleneck.conv.weight")],
    "deeplabv3_jpu": [("head.aspp.b4.gap.1.weight", "head.aspp.pool_conv.conv.weight"),
                      ("head.aspp.b3.0.weight", "head.aspp.atrous.2.conv.weight")],
    "danet_jpu": [("head.sa.gamma", "head.position_attention.gamma"), ("head.sc.gamma", "head.channel_attention.gamma"),
                  ("head.conv8.1.weight", "head.classifier.weight")],
    "ocnet_base_jpu": [("context.3.stages.0.f_key.0.weight", "head.object_context.key_query.conv.weight"),
                       ("context.3.stages.0.W.weight", "head.object_context.out_proj.weight")],
    "ocnet_asp_jpu": [("context.0.conv5.0.weight", "head.atrous.2.conv.weight"),
                      ("context.0.context.3.conv_bn_dropout.1.bias", "head.context_fuse.bn.bias")],
}


@pytest.fixture(autouse=True)
def _free_disk(tmp_path):
    """Each test writes hundreds of MB and pytest keeps the last runs' folders: delete them right away."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def backbone_target(key: str) -> str:
    """segzoo key of a reference backbone key, by index arithmetic."""
    part, index, rest = key.split(".", 2)
    if part == "base1":
        i = int(index)
        if i in (0, 1, 3, 4, 6):
            return f"backbone.conv1.{i}.{rest}"
        return {7: f"backbone.bn1.{rest}", 10: f"backbone.layer1.{rest}"}.get(i, f"backbone.layer2.{i - 11}.{rest}")
    layer = {"base2": 3, "base3": 4}[part]
    return f"backbone.layer{layer}.{index}.{rest}"


def expected_target(kind: str, key: str) -> str:
    if key.startswith("base"):
        return backbone_target(key)
    module, param = key.rsplit(".", 1)
    modules = {**NECK, **AUX, **HEADS[kind]}
    return f"{modules[module]}.{param}"


def check_loads_and_runs(out_dir: Path, converted: dict[str, torch.Tensor], backbone: str = "resnet50s"):
    model = segzoo.create_model(f"local-dir:{out_dir}")
    assert model.config.backbone == backbone
    for key, value in model.state_dict().items():
        assert torch.equal(value, converted[key]), key
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    assert out.shape == (1, 21, 64, 64)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", list(FILES))
def test_converts_reference_checkpoint(kind, tmp_path):
    state = random_state(kind)
    torch.save(state, tmp_path / "ref.pth")
    report = convert_file(tmp_path / "ref.pth", tmp_path / "out", kind)

    queries = sorted(filter(is_query_copy, state))
    assert (len(queries) == 7) == kind.startswith("ocnet")
    assert report.placed == len(state) - len(queries)
    assert sorted(report.shared) == queries and report.dropped == []
    converted = load_file(str(tmp_path / "out" / "model.safetensors"))
    expected = {expected_target(kind, key): key for key in state if not is_query_copy(key)}
    assert set(converted) == set(expected)
    for target, source in expected.items():
        assert torch.equal(converted[target], state[source]), (source, target)
    for source, target in SPOT_CHECKS + SPOT_CHECKS_BY_KIND[kind]:
        assert torch.equal(converted[target], state[source]), (source, target)

    config = json.loads((tmp_path / "out" / "config.json").read_text())
    head, neck, output_stride, head_kwargs = CONFIGS[kind]
    assert (config["head"], config["backbone"], config["neck"], config["output_stride"]) == \
        (head, "resnet50s", neck, output_stride)
    assert config["head_kwargs"] == head_kwargs
    assert config["num_classes"] == 21 and config["aux"] is True and config["align_corners"] is True
    assert config["class_names"] is None
    check_loads_and_runs(tmp_path / "out", converted)


def test_pytorch_encoding_layout_converts_identically(tmp_path):
    state = random_state("fcn_jpu")
    encoding = {}
    for key, value in state.items():
        if key.startswith("base"):
            key = "pretrained." + backbone_target(key)[len("backbone."):]
        elif key.startswith("JPU."):
            key = "jpu." + key[len("JPU."):]
        encoding[key] = value
    encoding["pretrained.fc.weight"], encoding["pretrained.fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    # as a DataParallel training checkpoint: "module." prefixes, wrapped with other entries
    wrapped = {"epoch": 3, "state_dict": {f"module.{key}": value for key, value in encoding.items()}}
    torch.save(wrapped, tmp_path / "enc.pth")
    report = convert_file(tmp_path / "enc.pth", tmp_path / "out", "fcn_jpu")
    assert report.layout == "encoding"
    assert sorted(report.dropped) == ["pretrained.fc.bias", "pretrained.fc.weight"]

    config, reference = convert_state_dict(state, "fcn_jpu")
    converted = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert converted.keys() == reference.keys()
    assert all(torch.equal(converted[key], reference[key]) for key in reference)
    assert report.config.replace(provenance={}) == config


@pytest.fixture(scope="module")
def fcn_state():
    return random_state("fcn_jpu")


def test_unknown_key_is_named(fcn_state):
    state = {**fcn_state, "head.extra.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"cannot be placed[\s\S]*head\.extra\.weight"):
        convert_state_dict(state, "fcn_jpu")


def test_wrong_shape_names_key_and_both_shapes(fcn_state):
    state = {**fcn_state, "head.block.0.weight": torch.zeros(512, 2048, 1, 1)}
    with pytest.raises(CheckpointError) as info:
        convert_state_dict(state, "fcn_jpu")
    message = str(info.value)
    assert "head.block.0.weight" in message
    assert "(512, 2048, 1, 1)" in message and "(512, 2048, 3, 3)" in message


def test_missing_key_names_the_unfilled_target(fcn_state):
    state = {key: value for key, value in fcn_state.items() if key != "JPU.conv3.1.bias"}
    with pytest.raises(CheckpointError, match=r"unfilled[\s\S]*neck\.conv3\.bn\.bias"):
        convert_state_dict(state, "fcn_jpu")


def test_wrong_num_classes_is_a_shape_mismatch(fcn_state):
    with pytest.raises(CheckpointError, match=r"head\.block\.4\.weight.*\(21, 512, 1, 1\).*\(19, 512, 1, 1\)"):
        convert_state_dict(fcn_state, "fcn_jpu", num_classes=19)


def test_f_query_must_equal_f_key():
    state = random_state("ocnet_base_jpu")
    state["context.3.stages.0.f_query.1.running_mean"] += 1.0
    with pytest.raises(CheckpointError, match=r"f_query\.1\.running_mean differs"):
        convert_state_dict(state, "ocnet_base_jpu")


def test_wrong_kind_and_layout_errors(fcn_state):
    with pytest.raises(CheckpointError, match="unknown kind"):
        convert_state_dict(fcn_state, "fcn_d16")
    # every reference head form exists on both structures; a JPU checkpoint is not a dilated one
    with pytest.raises(CheckpointError, match=r"keys that cannot be placed \(66\):\n  JPU\.conv5\.0\.weight"):
        convert_state_dict(fcn_state, "fcn_d8")
    with pytest.raises(CheckpointError, match="no classifier key"):
        convert_state_dict(fcn_state, "danet_jpu")
    with pytest.raises(CheckpointError, match="layout"):
        convert_state_dict({"head.block.4.weight": torch.zeros(21, 512, 1, 1)}, "fcn_jpu")


class _NotWeights:
    pass


def test_refuses_pickled_objects(tmp_path):
    torch.save({"state_dict": {}, "extra": _NotWeights()}, tmp_path / "obj.pth")
    with pytest.raises(CheckpointError, match="weights_only"):
        convert_file(tmp_path / "obj.pth", tmp_path / "out", "fcn_jpu")
    assert not (tmp_path / "out").exists()


def test_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO))
    from maintainers.convert_checkpoint import main

    torch.save(random_state("psp_d8"), tmp_path / "psp.pth")
    names = [f"class{i}" for i in range(21)]
    assert main([str(tmp_path / "psp.pth"), str(tmp_path / "out"), "--model", "psp_d8",
                 "--class-names", ",".join(names)]) == 0
    assert "370 keys placed" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "config.json").read_text())["class_names"] == names
    assert main([str(tmp_path / "psp.pth"), str(tmp_path / "out2"), "--model", "danet_jpu"]) == 1
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_resnet101_checkpoint(tmp_path):
    state = random_state("fcn_jpu", layer3_blocks=23)
    torch.save(state, tmp_path / "r101.pth")
    report = convert_file(tmp_path / "r101.pth", tmp_path / "out", "fcn_jpu")
    assert report.config.backbone == "resnet101s" and report.placed == len(state)
    converted = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert torch.equal(converted["backbone.layer3.22.conv2.weight"], state["base2.22.conv2.weight"])
    check_loads_and_runs(tmp_path / "out", converted, backbone="resnet101s")


# --- a folder that holds a model: refused unasked, replaced whole with --overwrite -------------------------------

@pytest.fixture(scope="module")
def fcn_pth(tmp_path_factory):
    path = tmp_path_factory.mktemp("pth") / "fcn.pth"
    torch.save(random_state("fcn_jpu"), path)
    return path


@pytest.fixture
def old_model(tmp_path):
    """OUT holding another model (and a model card): what a second convert replaced without a word."""
    out = tmp_path / "out"
    segzoo.save_pretrained(segzoo.create_model("fcn_test_resnet", num_classes=3), out)
    (out / "README.md").write_text("card")
    return out, {path.name: path.read_bytes() for path in out.iterdir()}


def run_convert(argv, capsys) -> tuple[int, str]:
    from segzoo.tools.cli import main

    status = main(["convert", *map(str, argv)])
    return status, capsys.readouterr().err


def test_convert_refuses_a_folder_that_holds_a_model(fcn_pth, old_model, capsys):
    out, before = old_model
    status, err = run_convert([fcn_pth, out, "--model", "fcn_jpu"], capsys)
    assert status == 1 and "Traceback" not in err
    assert err == (f"error: {out} holds a model already (config.json / model.safetensors); pass --overwrite to "
                   f"replace it, or choose another OUT_DIR\n")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize("failure", ["disk full", "Ctrl-C"])
def test_convert_overwrite_failing_midway_leaves_the_old_model(failure, fcn_pth, old_model, capsys, monkeypatch):
    import errno

    from segzoo.config import ModelConfig

    out, before = old_model

    def fail(self, path):  # the weights are written, config.json is not
        if failure == "Ctrl-C":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ModelConfig, "save", fail)
    status, err = run_convert([fcn_pth, out, "--model", "fcn_jpu", "--overwrite"], capsys)
    if failure == "Ctrl-C":
        assert (status, err) == (130, "interrupted\n")
    else:
        assert (status, err) == (1, f"error: cannot write {out}: the disk is full\n")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # the old model, whole
    assert sorted(path.name for path in out.parent.iterdir()) == ["out"]  # no temporary folder left
    monkeypatch.undo()
    assert segzoo.create_model(f"local-dir:{out}").config.backbone == "test_resnet"  # still loads


def test_convert_overwrite_replaces_the_model_and_keeps_the_card(fcn_pth, old_model, capsys):
    out, _ = old_model
    status, err = run_convert([fcn_pth, out, "--model", "fcn_jpu", "--overwrite"], capsys)
    assert status == 0 and err == ""
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (out / "README.md").read_text() == "card"
    assert segzoo.create_model(f"local-dir:{out}").config.backbone == "resnet50s"
    assert sorted(path.name for path in out.parent.iterdir()) == ["out"]


def test_a_file_of_another_layout_is_named_with_the_layout_it_was_read_as(tmp_path):
    """A .pth that is no reference checkpoint: the error named the layout rule but not the file."""
    src = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, src)
    with pytest.raises(CheckpointError, match=rf"^{src} \(read as reference's layout\): cannot tell the checkpoint "
                                              r"layout"):
        convert_file(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
