"""Bad inputs to every public entry point end in one clear line naming the problem, never a traceback.

The Python API raises a ``SegzooError`` (``TypeError`` for an unknown keyword, as Python does) whose message is
one line naming the argument; the command prints ``error: ...`` (exit 1) or argparse's usage and
``error: argument ...`` (exit 2) on stderr. The commands run in this process through ``main``, so a raw exception
fails the test with its traceback; one case runs the real console script. Hub failures are in
tests/weights/test_hub_errors.py.
"""
import re
import subprocess
import sys
import warnings

import pytest
import torch

import segzoo
from segzoo import ConfigError, ModelConfig, SegzooError, create_model, list_models
from segzoo.errors import CheckpointError, HeadPluginError, UnknownModelError, WeightsUnavailableError
from segzoo.tools.cli import main

TINY = "fcn_test_resnet.r160_in1k"  # timm's test ResNet: 1.6 MB, built in milliseconds


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A plain file, a folder, an image, a truncated checkpoint and a saved model, shared by the cases."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "a_file").write_text("not a folder")
    (root / "a_folder").mkdir()
    from PIL import Image

    Image.new("RGB", (40, 30), (10, 200, 30)).save(root / "image.png")
    torch.save({"weight": torch.zeros(64, 64)}, root / "full.pth")
    data = (root / "full.pth").read_bytes()
    (root / "truncated.pth").write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segzoo.save_pretrained(create_model(TINY, num_classes=3), root / "model")
    return root


def one_line(err: BaseException) -> str:
    message = str(err)
    assert message and "\n" not in message, message
    return message


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """(exit status, stderr) of ``segzoo ARGV`` run in this process; any exception other than argparse's exit
    propagates and fails the test, as a traceback would."""
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    return status, capsys.readouterr().err


# --- Python API -------------------------------------------------------------------------------------------------

CREATE_MODEL_CASES = {  # id: (name, keyword arguments, error class, message)
    "name None": (None, {}, ConfigError, r"model_name must be a string.*got None"),
    "name int": (3, {}, ConfigError, r"model_name must be a string.*got 3"),
    "unknown name": ("fcn_resnt18", {}, UnknownModelError, r"Unknown model 'fcn_resnt18'"),
    "zoo tag typo": ("deeplabv3_resnet101.tv_coco_vocc", {}, UnknownModelError,
                     r"not a zoo name. Did you mean: deeplabv3_resnet101.tv_coco_voc.*Unknown pretrained tag "
                     r"'tv_coco_vocc' of timm model 'resnet101'"),
    "timm tag typo": ("fcn_resnet18.a1_in1kk", {}, UnknownModelError,
                      r"Unknown pretrained tag 'a1_in1kk' of timm model 'resnet18'.*Did you mean: resnet18.a1_in1k"),
    "psp dropout str": ("pspnet_resnet18", {"dropout": "high"}, ConfigError, r"PSPNet dropout must be a number in"),
    "psp dropout 2.0": ("pspnet_resnet18", {"dropout": 2.0}, ConfigError, r"PSPNet dropout must be a number in"),
    "fcn dropout str": ("fcn_resnet18", {"dropout": "high"}, ConfigError, r"FCN dropout must be a number in"),
    "fcn dropout -1": ("fcn_resnet18", {"dropout": -1}, ConfigError, r"FCN dropout must be a number in"),
    "deeplabv3 aspp_dropout": ("deeplabv3_resnet18", {"aspp_dropout": "x"}, ConfigError,
                               r"DeepLabV3 aspp_dropout must be a number in"),
    "deeplabv3 rates 0": ("deeplabv3_resnet18", {"rates": (12, 0)}, ConfigError,
                          r"DeepLabV3 rates must be a non-empty sequence of integers >= 1, got \(12, 0\)"),
    "deeplabv3 rates int": ("deeplabv3_resnet18", {"rates": 12}, ConfigError,
                            r"DeepLabV3 rates must be a non-empty sequence of integers >= 1, got 12"),
    "ccnet activation": ("ccnet_resnet18", {"activation": "gelu"}, ConfigError, r"CCNet activation must be one of"),
    "psp bins str": ("pspnet_resnet18", {"bins": "abc"}, ConfigError, r"PSPNet bins must be a non-empty sequence"),
    "psp bins 0": ("pspnet_resnet18", {"bins": (0,)}, ConfigError, r"PSPNet bins .* integers >= 1, got \(0,\)"),
    "psp bins int": ("pspnet_resnet18", {"bins": 3}, ConfigError, r"PSPNet bins must be a non-empty sequence"),
    "danet softmax": ("danet_resnet18", {"softmax_over": "rows"}, ConfigError,
                      r"DANet softmax_over must be one of 'keys', 'queries', got 'rows'"),
    "danet deep_supervision": ("danet_resnet18", {"deep_supervision": "yes"}, ConfigError,
                               r"DANet deep_supervision must be True or False"),
    "ocnet activation": ("ocnet_resnet18", {"activation": "gelu"}, ConfigError, r"OCNet activation must be one of"),
    "ocnet asp_rates": ("ocnet_resnet18", {"variant": "asp", "asp_rates": "ab"}, ConfigError, r"OCNet asp_rates"),
    "ocnet asp_branch 0": ("ocnet_resnet18", {"variant": "asp", "asp_branch_channels": 0}, ConfigError,
                           r"OCNet asp_branch_channels must be an integer >= 2"),
    "ocnet asp_reduce -1": ("ocnet_resnet18", {"variant": "asp", "asp_reduce_channels": -1}, ConfigError,
                            r"OCNet asp_reduce_channels must be an integer >= 0"),
    "unknown head argument": (TINY, {"foo": 1}, ConfigError, r"does not accept argument\(s\) foo"),
    "aux str": (TINY, {"aux": "yes"}, ConfigError, r"aux must be True or False, got 'yes'"),
    "output_stride float": (TINY, {"output_stride": 16.0}, ConfigError, r"output_stride must be 8, 16 or 32"),
    "output_stride 12": (TINY, {"output_stride": 12}, ConfigError, r"output_stride must be 8, 16 or 32"),
    "num_classes 0": (TINY, {"num_classes": 0}, ConfigError, r"num_classes must be an integer >= 1"),
    "num_classes str": (TINY, {"num_classes": "3"}, ConfigError, r"num_classes must be an integer >= 1"),
    "neck int": (TINY, {"neck": 3}, ConfigError, r"neck must be a string or None, got 3"),
    "neck unknown": (TINY, {"neck": "fpn"}, UnknownModelError, r"Unknown neck 'fpn'"),
    "pretrained str": (TINY, {"pretrained": "yes"}, ConfigError, r"pretrained must be True or False"),
    "pretrained_backbone str": (TINY, {"pretrained_backbone": "no"}, ConfigError,
                                r"pretrained_backbone must be True or False"),
    "local_files_only str": (TINY, {"local_files_only": "no"}, ConfigError, r"local_files_only must be True or False"),
    "revision int": (TINY, {"revision": 3}, ConfigError, r"revision must be a string or None"),
    "checkpoint_path int": (TINY, {"checkpoint_path": 3}, ConfigError, r"checkpoint_path must be a path"),
    "checkpoint_path missing": (TINY, {"checkpoint_path": "/no/such/dir"}, CheckpointError, r"checkpoint not found"),
    "cache_dir int": (TINY, {"cache_dir": 3}, ConfigError, r"cache_dir must be a path"),
    "hub id no namespace": ("hf-hub:justname", {}, WeightsUnavailableError, r"must be 'namespace/name\[@revision\]'"),
    "hub id spaces": ("hf-hub:not a repo", {}, WeightsUnavailableError, r"must be 'namespace/name"),
    "hub id bad characters": ("hf-hub:some one/my model", {}, WeightsUnavailableError, r"is not valid"),
    "hub endpoint": ("hf-hub:alice/model", {"endpoint": "not a url"}, ConfigError,
                     r"endpoint must be an http\(s\) URL"),
    "local-dir missing": ("local-dir:/no/such/dir", {}, CheckpointError, r"checkpoint directory not found"),
}


@pytest.mark.parametrize("name, kwargs, error, message", CREATE_MODEL_CASES.values(), ids=CREATE_MODEL_CASES)
def test_create_model(name, kwargs, error, message):
    with pytest.raises(error, match=message) as raised:
        create_model(name, **kwargs)
    one_line(raised.value)


def test_create_model_local_dir_of_a_file(files):
    with pytest.raises(CheckpointError, match=r"local-dir:.*a_file is a file, not a directory") as raised:
        create_model(f"local-dir:{files / 'a_file'}")
    one_line(raised.value)


CONFIG_CASES = {  # id: (field changes, message)
    "output_stride float": ({"output_stride": 16.0}, r"output_stride must be 8, 16 or 32 \(an integer\), got 16.0"),
    "aux str": ({"aux": "yes"}, r"aux must be True or False"),
    "align_corners int": ({"align_corners": 1}, r"align_corners must be True or False"),
    "input_size 0": ({"input_size": (0, 480)}, r"input_size must be \(height, width\), two integers >= 1"),
    "input_size float": ({"input_size": (480.0, 480)}, r"input_size must be \(height, width\)"),
    "std 0": ({"std": (0.0, 1.0, 1.0)}, r"std must be 3 numbers > 0"),
    "mean str": ({"mean": ("a", "b", "c")}, r"mean must have in_chans=3 values.*finite numbers"),
    "mean nan": ({"mean": (0.5, float("nan"), 0.5)}, r"mean must have in_chans=3 values.*finite numbers, got .*nan"),
    "std inf": ({"std": (0.5, float("inf"), 0.5)}, r"std must have in_chans=3 values.*finite numbers, got .*inf"),
    "provenance str": ({"provenance": "segzoo"}, r"provenance must be a dict, got str"),
    "provenance list": ({"provenance": ["segzoo"]}, r"provenance must be a dict, got list"),
    "class_names ints": ({"class_names": (1, 2, 3)}, r"class_names must be a sequence of strings"),
    "palette int": ({"palette": 5}, r"palette must hold num_classes=3 RGB triples"),
}


@pytest.mark.parametrize("changes, message", CONFIG_CASES.values(), ids=CONFIG_CASES)
def test_model_config(changes, message):
    with pytest.raises(ConfigError, match=message) as raised:
        ModelConfig(head="fcn", backbone="resnet18", num_classes=3, **changes)
    one_line(raised.value)


def test_config_json_with_a_float_output_stride_is_refused():
    text = ModelConfig(head="fcn", backbone="resnet18", num_classes=3).to_json().replace(
        '"output_stride": 8', '"output_stride": 16.0')
    with pytest.raises(ConfigError, match=r"my.json: output_stride must be 8, 16 or 32 \(an integer\), got 16.0"):
        ModelConfig.from_json(text, source="my.json")


@pytest.mark.parametrize("old, new, message", [
    ("0.229", "NaN", r"std must have in_chans=3 values.*finite numbers"),
    ("0.485", "-Infinity", r"mean must have in_chans=3 values.*finite numbers"),
    ('"provenance": {}', '"provenance": "segzoo 0.1"', r"provenance must be a dict, got str"),
    ('"provenance": {}', '"provenance": []', r"provenance must be a dict, got list"),
])
def test_config_json_with_bad_values_is_refused(old, new, message, tmp_path):
    """JSON's NaN / Infinity parse to floats; a provenance of another type was a raw AttributeError later."""
    text = ModelConfig(head="fcn", backbone="resnet18", num_classes=3).to_json()
    assert old in text
    text = text.replace(old, new)
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ConfigError, match=rf"config.json: {message}") as raised:
        ModelConfig.load(tmp_path / "config.json")
    one_line(raised.value)


def test_config_json_that_is_not_utf8_is_refused(tmp_path):
    text = ModelConfig(head="fcn", backbone="resnet18", num_classes=1, class_names=("caf\u00e9",)).to_json()
    (tmp_path / "config.json").write_bytes(text.replace("\\u00e9", "\u00e9").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"config.json is not UTF-8 text \(invalid continuation byte at byte \d+\)"):
        ModelConfig.load(tmp_path / "config.json")


def test_list_models():
    with pytest.raises(ConfigError, match=r"pattern must be an fnmatch pattern string"):
        list_models(3)
    with pytest.raises(TypeError, match=r"unknown filter\(s\) colour; the filters are head, backbone"):
        list_models(pretrained=True, colour="red")


NOT_A_HEAD = """
def make_head():
    pass

class Plain:
    pass
"""


def test_an_entry_point_that_is_no_head_is_listed_as_failed(make_plugin, capsys):
    make_plugin("odd-heads", "odd_heads", NOT_A_HEAD, {"func": "odd_heads:make_head", "plain": "odd_heads:Plain"})
    with pytest.warns(UserWarning, match=r"plug-in '(func|plain)' .* not a subclass of segzoo.heads.SegmentationHead"):
        heads = {info.name: info for info in segzoo.list_heads(include_failed=True)}
    assert not heads["func"].ok and not heads["plain"].ok and heads["fcn"].ok
    assert "the class Plain, not a subclass of segzoo.heads.SegmentationHead" in str(heads["plain"].error)
    assert main(["list", "--heads"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "failed to load: TypeError" in listed["plain"] and "failed to load" not in listed["fcn"]
    with pytest.raises(HeadPluginError, match=r"Head 'plain' comes from the plug-in odd-heads"):
        create_model("plain_resnet18")


def test_predict(files):
    from segzoo import predict

    image = files / "image.png"
    # Every argument is checked before the model is built: a name that does not exist is never reached.
    for kwargs, message in [
        ({"out_dir": files / "a_file"}, r"out_dir '.*a_file' is a file, not a folder"),
        ({"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
        ({"max_size": 0}, r"max_size must be an integer >= 1 or None, got 0"),
        ({"scales": (0,)}, r"scales must be a non-empty sequence of numbers > 0"),
        ({"scales": (-1.0, 1.0)}, r"scales must be a non-empty sequence of numbers > 0"),
        ({"scales": ()}, r"scales must be a non-empty sequence"),
        ({"scales": "1"}, r"scales must be a non-empty sequence"),
        ({"scales": (float("nan"),)}, r"scales must be a non-empty sequence"),
        ({"flip": "no"}, r"flip must be True or False, got 'no'"),  # a truthy string flipped
        ({"save_npy": 1}, r"save_npy must be True or False, got 1"),
    ]:
        with pytest.raises(ConfigError, match=message) as raised:
            predict(image, "nohead_nobackbone", **kwargs)
        one_line(raised.value)


def test_export(files, tmp_path):
    from segzoo import export

    for args, kwargs, message in [
        ((files / "a_folder",), {}, r"the output '.*a_folder' is a directory"),
        ((tmp_path / "x.onnx",), {"size": (0, 0)}, r"size must be \(H, W\) with positive sizes"),
        ((tmp_path / "x.onnx",), {"opset": 99}, r"opset must be an ONNX opset from 1 to \d+"),
        ((tmp_path / "x.onnx",), {"opset": "18"}, r"opset must be an ONNX opset"),
        ((tmp_path / "x.pt2", "torch.export"), {"opset": 18}, r"opset applies to ONNX exports only"),
        ((tmp_path / "x.tflite", "tflite"), {}, r"format must be one of onnx, torch.export"),
    ]:
        with pytest.raises(SegzooError, match=message) as raised:
            export("nohead_nobackbone", *args, **kwargs)  # checked before the model is built
        one_line(raised.value)


def test_export_to_an_opset_the_exporter_cannot_convert_to_is_an_error(tmp_path, capsys):
    """torch's exporter writes its own opset (18) when it cannot convert its graph down; export said it succeeded."""
    status, err = run_cli(["export", TINY, "--opset", "7", "--size", "32", "32", "--no-check",
                           "--out", str(tmp_path / "old.onnx")], capsys)
    assert status == 1 and err.strip().splitlines() == [err.strip()], err
    assert "error: torch's ONNX exporter could not convert this model to opset 7 (it wrote opset 18" in err
    assert not (tmp_path / "old.onnx").exists()


def test_benchmark():
    from segzoo import benchmark

    for names, kwargs, error, message in [
        (["fcn_resnt18"], {}, UnknownModelError, r"Unknown model 'fcn_resnt18'"),
        (["tv:fcn_resnet5"], {}, UnknownModelError, r"torchvision has no segmentation model 'fcn_resnet5'.*"
                                                    r"Did you mean: fcn_resnet50"),
        (["fcn_resnet18@fast"], {}, ConfigError, r"unknown option 'fast' after '@'; the options are contiguous"),
        ("fcn_resnet18", {}, ConfigError, r"names must be a non-empty list of model names"),
        (["fcn_resnet18"], {"runs": 0}, ConfigError, r"runs must be at least 1 \(an integer\), got 0"),
        (["fcn_resnet18"], {"size": (0, 0)}, ConfigError, r"size must be \(height, width\), two integers >= 1"),
        (["fcn_resnet18"], {"batch": 0}, ConfigError, r"batch must be at least 1 \(an integer\)"),
        (["fcn_resnet18"], {"warmup": -1}, ConfigError, r"warmup must be at least 0 \(an integer\), got -1"),
        (["fcn_resnet18"], {"rounds": 0}, ConfigError, r"rounds must be at least 1 \(an integer\)"),
        (["fcn_resnet18"], {"device": "tpu"}, ConfigError, r"device must be cpu, cuda or cuda:N, got 'tpu'"),
        (["fcn_resnet18"], {"optimize": "max"}, ConfigError, r"optimize must be one of segzoo, all, none"),
    ]:
        with pytest.raises(error, match=message) as raised:
            benchmark(names, **kwargs)  # checked before any process is started
        one_line(raised.value)


def test_push_to_hub_needs_a_model():
    with pytest.raises(ConfigError, match=r"push_to_hub needs a segzoo SegmentationModel.*got str"):
        segzoo.push_to_hub("fcn_resnet18", "alice/model")


def test_download_model_files_checks_its_arguments(files):
    with pytest.raises(WeightsUnavailableError, match=r"Hub repo id must be 'namespace/name\[@revision\]'"):
        segzoo.download_model_files("justname")
    with pytest.raises(ConfigError, match=r"cache_dir '.*a_file' is a file, not a directory"):
        segzoo.download_model_files("alice/model", cache_dir=files / "a_file")
    with pytest.raises(ConfigError, match=r"the Hub endpoint must be an http\(s\) URL .*, got 'localhost:8000'"):
        segzoo.download_model_files("alice/model", endpoint="localhost:8000")


# --- the command ------------------------------------------------------------------------------------------------

USAGE_ERRORS = {  # id: (argv, message after "error: argument "): argparse refuses them, exit 2
    "predict --out file": (["predict", "{image}", "--model", TINY, "--out", "{file}"], r"--out: '.*' is a file"),
    "predict --scales 0": (["predict", "{image}", "--model", TINY, "--scales", "0"], r"--scales: must be a number > 0"),
    "predict --scales -1": (["predict", "{image}", "--model", TINY, "--scales", "1", "-1"], r"--scales: must be"),
    "predict --scales nan": (["predict", "{image}", "--model", TINY, "--scales", "nan"], r"--scales: must be"),
    "predict --batch-size 0": (["predict", "{image}", "--model", TINY, "--batch-size", "0"],
                               r"--batch-size: must be an integer >= 1, got '0'"),
    "predict --max-size 0": (["predict", "{image}", "--model", TINY, "--max-size", "0"], r"--max-size: must be"),
    "predict --num-classes 0": (["predict", "{image}", "--model", TINY, "--num-classes", "0"], r"--num-classes"),
    "export --out folder": (["export", TINY, "--out", "{folder}"], r"--out: '.*a_folder' is a folder"),
    "export --size 0 0": (["export", TINY, "--size", "0", "0"], r"--size: must be an integer >= 1"),
    "export --opset 0": (["export", TINY, "--opset", "0"], r"--opset: must be an integer >= 1"),
    "export --num-classes x": (["export", TINY, "--num-classes", "x"], r"--num-classes: must be an integer >= 1"),
    "pull --to file": (["pull", "alice/model", "--to", "{file}"], r"--to: '.*a_file' is a file, not a folder"),
    "pull --cache-dir file": (["pull", "alice/model", "--cache-dir", "{file}"], r"--cache-dir: '.*' is a file"),
    "info --cache-dir file": (["info", "hf-hub:alice/model", "--cache-dir", "{file}"], r"--cache-dir: '.*' is a"),
    "push missing folder": (["push", "{file}.missing", "alice/model"], r"DIR: '.*' is missing, not a folder"),
    "push file": (["push", "{file}", "alice/model"], r"DIR: '.*a_file' is a file, not a folder"),
    "benchmark --runs 0": (["benchmark", TINY, "--runs", "0"], r"--runs: must be an integer >= 1"),
    "benchmark --size 0 0": (["benchmark", TINY, "--size", "0", "0"], r"--size: must be an integer >= 1"),
    "benchmark --batch 0": (["benchmark", TINY, "--batch", "0"], r"--batch: must be an integer >= 1"),
    "benchmark --warmup -1": (["benchmark", TINY, "--warmup", "-1"], r"--warmup: must be an integer >= 0"),
    "benchmark --rounds 0": (["benchmark", TINY, "--rounds", "0"], r"--rounds: must be an integer >= 1"),
    "benchmark --num-classes 0": (["benchmark", TINY, "--num-classes", "0"], r"--num-classes: must be"),
    "convert out_dir file": (["convert", "{folder}/x.pth", "{file}"], r"out_dir: '.*a_file' is a file"),
    "convert --num-classes 0": (["convert", "{folder}/x.pth", "{folder}", "--num-classes", "0"], r"--num-classes"),
}


def _fill(argv: list[str], files) -> list[str]:
    places = {"image": files / "image.png", "file": files / "a_file", "folder": files / "a_folder",
              "model": files / "model", "truncated": files / "truncated.pth", "full": files / "full.pth"}
    return [arg.format(**places) for arg in argv]


@pytest.mark.parametrize("argv, message", USAGE_ERRORS.values(), ids=USAGE_ERRORS)
def test_cli_usage_error(argv, message, files, capsys):
    status, err = run_cli(_fill(argv, files), capsys)
    assert status == 2 and "Traceback" not in err, err
    assert err.startswith("usage: segzoo ")
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"segzoo {argv[0]}: error: argument "), err
    assert re.search(message, last), last


CLI_ERRORS = {  # id: (argv, message after "error: "): one line, exit 1
    "predict --device tpu": (["predict", "{image}", "--model", TINY, "--device", "tpu"], r"unknown device 'tpu'"),
    "predict --out the input folder": (["predict", "{folder}", "--model", TINY, "--out", "{folder}"],
                                       r"out_dir '.*a_folder' is the input folder '.*a_folder' or holds it: the "
                                       r"masks would be written among the images; give another out_dir"),
    "predict --out above the input": (["predict", "{folder}", "--model", TINY, "--out", "{folder}/.."],
                                      r"is the input folder '.*a_folder' or holds it"),
    "predict --half on cpu": (["predict", "{image}", "--model", TINY, "--device", "cpu", "--half"],
                              r"half precision runs on a CUDA GPU only"),
    "export --opset 99": (["export", TINY, "--opset", "99"], r"opset must be an ONNX opset from 1 to"),
    "export torch.export --opset": (["export", TINY, "--format", "torch.export", "--opset", "18"],
                                    r"opset applies to ONNX exports only"),
    "export unknown model": (["export", "nohead_resnet18"], r"Unknown model 'nohead_resnet18'"),
    "pull no namespace": (["pull", "justname"], r"Hub repo id must be 'namespace/name\[@revision\]'"),
    "pull spaces": (["pull", "not a repo"], r"Hub repo id must be 'namespace/name"),
    "pull bad characters": (["pull", "some one/my model"], r"Hub repo id 'some one/my model' is not valid"),
    "pull --endpoint": (["pull", "alice/model", "--endpoint", "localhost:8000"], r"endpoint must be an http\(s\) URL"),
    "pull nothing cached offline": (["pull", "alice/model", "--local-files-only", "--cache-dir", "{folder}"],
                                    r"config.json of alice/model is not in the local cache and downloads are off "
                                    r"\(local_files_only=True\)"),
    "push bad repo id": (["push", "{model}", "not a repo"], r"Hub repo id must be 'namespace/name"),
    "benchmark typo": (["benchmark", "fcn_resnt18"], r"Unknown model 'fcn_resnt18'"),
    "benchmark tv typo": (["benchmark", "tv:fcn_resnet5"], r"torchvision has no segmentation model 'fcn_resnet5'"),
    "benchmark @suffix": (["benchmark", f"{TINY}@fast"], r"unknown option 'fast' after '@'"),
    "benchmark --device": (["benchmark", TINY, "--device", "tpu"], r"device must be cpu, cuda or cuda:N"),
    "benchmark --reference": (["benchmark", TINY, "--reference", "fcn_resnet18"],
                              r"--reference 'fcn_resnet18' is not among the models benchmarked"),
    "convert truncated": (["convert", "{truncated}", "{folder}/out"], r"not a readable PyTorch checkpoint"),
    "convert missing": (["convert", "{folder}/missing.pth", "{folder}/out"], r"checkpoint not found"),
    "convert not a checkpoint": (["convert", "{file}", "{folder}/out"], r"is not a PyTorch checkpoint"),
    "info local-dir file": (["info", "local-dir:{file}"], r"local-dir:.*a_file is a file, not a directory"),
    "info local-dir missing": (["info", "local-dir:{folder}/missing"], r"checkpoint directory not found"),
    "info typo": (["info", "fcn_resnt18"], r"Unknown model 'fcn_resnt18'"),
    "info zoo tag typo": (["info", "deeplabv3_resnet101.tv_coco_vocc"],
                          r"Did you mean: deeplabv3_resnet101.tv_coco_voc"),
    "predict zoo tag typo": (["predict", "{image}", "--model", "deeplabv3_resnet101.tv_coco_vocc", "--out",
                              "{folder}/out"], r"Did you mean: deeplabv3_resnet101.tv_coco_voc"),
    "info hub id": (["info", "hf-hub:justname"], r"Hub repo id must be 'namespace/name"),
    "list filter without --pretrained": (["list", "--head", "fcn"], r"--head filter the zoo: add --pretrained"),
}


@pytest.mark.parametrize("argv, message", CLI_ERRORS.values(), ids=CLI_ERRORS)
def test_cli_error(argv, message, files, capsys):
    status, err = run_cli(_fill(argv, files), capsys)
    assert status in (1, 2) and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(message, lines[0]), lines[0]


def test_plain_segzoo_is_a_usage_error():
    """The real console script, as a shell runs it: usage on stderr, exit 2 (it printed the help and exited 0)."""
    out = subprocess.run([sys.executable, "-m", "segzoo"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("usage: segzoo ")
    assert out.stderr.strip().endswith("segzoo: error: the following arguments are required: COMMAND")


# --- text files that are not UTF-8 ------------------------------------------------------------------------------

LATIN_1 = "caf\u00e9\n".encode("latin-1")  # a name saved in the locale's encoding on another machine


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_classes_txt_that_is_not_utf8_is_a_dataset_error(task, tmp_path):
    from PIL import Image

    from segzoo.data import create_dataset
    from segzoo.errors import DatasetError

    (tmp_path / "images").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "a.png")
    masks = tmp_path / "masks" / ("cafe" if task == "multilabel" else "")
    masks.mkdir(parents=True)
    Image.new("L", (4, 4)).save(masks / "a.png")
    (tmp_path / "classes.txt").write_bytes(LATIN_1)
    with pytest.raises(DatasetError, match=r"classes.txt is not UTF-8 text \(invalid continuation byte at byte 3\)"):
        create_dataset("folder", tmp_path, task=task)


def test_training_latest_that_is_not_utf8_is_a_checkpoint_error(tmp_path):
    from segzoo.train import find_checkpoint

    (tmp_path / "latest").write_bytes(LATIN_1)
    with pytest.raises(CheckpointError, match=r"latest is not UTF-8 text .*: expected the name of a checkpoint-"):
        find_checkpoint(tmp_path)


def test_voc_split_list_that_is_not_utf8_is_a_dataset_error(tmp_path):
    from segzoo.data import create_dataset
    from segzoo.errors import DatasetError

    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_bytes(LATIN_1)
    with pytest.raises(DatasetError, match=r"val.txt is not UTF-8 text .*: expected one image id per line"):
        create_dataset("voc", tmp_path, split="val")


def test_pascal_context_split_list_that_is_not_utf8_is_a_dataset_error(tmp_path):
    """It was a raw UnicodeDecodeError (or ids in the locale's encoding)."""
    from segzoo.data import create_dataset
    from segzoo.errors import DatasetError

    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    (tmp_path / "ImageSets" / "SegmentationContext" / "val.txt").write_bytes(LATIN_1)
    for name in ("context", "context59"):
        with pytest.raises(DatasetError, match=r"SegmentationContext/val.txt is not UTF-8 text \(invalid "
                                               r"continuation byte at byte 3\): expected one image id per line in "
                                               r"UTF-8$") as raised:
            create_dataset(name, tmp_path, split="val")
        one_line(raised.value)


# --- a saved model whose config and weights disagree --------------------------------------------------------------

@pytest.fixture
def five_class_config_on_three_class_weights(files, tmp_path):
    """config.json says 5 classes, model.safetensors holds 3: loading re-initialised the head with a warning, and
    predict wrote masks of random classes."""
    import shutil

    from segzoo.weights.checkpoint import file_sha256

    shutil.copytree(files / "model", tmp_path / "model")
    config = ModelConfig.load(tmp_path / "model" / "config.json")
    assert config.num_classes == 3 and file_sha256(tmp_path / "model" / "model.safetensors")
    config.replace(num_classes=5).save(tmp_path / "model" / "config.json")
    return tmp_path / "model"


def test_a_saved_model_never_reinitialises_its_head(five_class_config_on_three_class_weights, capsys):
    directory = five_class_config_on_three_class_weights
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match=r"'head.fcn.classifier.weight' holds 3 classes but the model has 5 "
                                                  r"\(its config's num_classes\); pass num_classes=") as raised:
            create_model(f"local-dir:{directory}")
    one_line(raised.value)
    status, err = run_cli(["predict", str(directory.parent), "--model", f"local-dir:{directory}", "--out",
                           str(directory.parent / "out")], capsys)
    assert status == 1 and "holds 3 classes but the model has 5" in err, err
    with pytest.warns(UserWarning, match=r"another number of classes: re-initialised"):  # asked for: fine-tuning
        assert create_model(f"local-dir:{directory}", num_classes=5).config.num_classes == 5
