"""A hostile user's sweep: bad input to the API, the ``segzoo`` CLI and the example scripts, each case classified.

    python maintainers/bad_input_sweep.py            # every case; prints a line per case that is not fine, then counts
    python maintainers/bad_input_sweep.py --all      # a line per case
    python maintainers/bad_input_sweep.py -k predict # the cases whose id contains "predict"

A case expects either ``error`` (the input is wrong) or ``ok``. It is *fine* when

- an ``error`` case ends in a clear message: the CLI and the scripts exit non-zero with no traceback and the last line
  of stderr names what the case says it must (the bad value, the path, the option), an API call raises a
  ``SegzooError`` (or ``argparse``'s usage error for the CLI) whose text names it;
- an ``ok`` case succeeds and writes what it should.

Otherwise it is *bad*: ``accepted`` (an error case that succeeded), ``traceback`` (a raw exception, or one whose text
does not name the problem), or ``failed`` (an ok case that did not succeed). The workspace (a small saved model, a
folder dataset, images, read-only folders, corrupt files) is made in a temporary folder and removed afterwards;
nothing reaches the network (the Hub endpoint is a closed local port). docs/contributing.md says when to run it.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
Runner = Union[list, Callable[[], object]]


@dataclass
class Case:
    id: str
    run: Runner  # CLI argv (list starting with "segzoo"), a script's argv ("examples/x.py", ...), or a callable
    expect: str = "error"  # "error" or "ok"
    mentions: tuple = ()  # what the message must name (case-insensitive)
    check: Optional[Callable[[], bool]] = None  # ok cases: what must be true afterwards
    result: str = ""
    detail: str = ""
    tags: list = field(default_factory=list)


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- the workspace ---------------------------------------------------------------------------------------------------

class Workspace:
    """Everything the cases read or write, in one temporary folder."""

    def __init__(self, root: Path):
        import segzoo

        self.root = root
        self.model = root / "model"
        segzoo.save_pretrained(segzoo.create_model("fcn_resnet18", num_classes=3), self.model)
        self.images = root / "images"
        self.images.mkdir()
        rng = np.random.default_rng(0)
        for index in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(self.images / f"{index}.png")
        self.image = self.images / "0.png"
        self.file = root / "a-file.txt"
        self.file.write_text("not a folder\n")
        self.empty = root / "empty"
        self.empty.mkdir()
        self.corrupt_png = root / "corrupt" / "broken.png"
        self.corrupt_png.parent.mkdir()
        self.corrupt_png.write_bytes(self.image.read_bytes()[:60])
        self.text_png = root / "text.png"
        self.text_png.write_text("hello")
        self.bad_models = {}
        for name, (config, weights) in self._bad_models().items():
            folder = root / "bad-models" / name
            folder.mkdir(parents=True)
            if config is not None:
                (folder / "config.json").write_bytes(config)
            if weights is not None:
                (folder / "model.safetensors").write_bytes(weights)
            self.bad_models[name] = folder
        self.dataset = root / "dataset"
        self._folder_dataset(self.dataset)
        self.pth = root / "plain.pth"
        import torch

        torch.save({"not": torch.zeros(2)}, self.pth)
        self.not_pth = root / "not.pth"
        self.not_pth.write_bytes(b"\x00garbage" * 20)
        self.hub = closed_port()

    def _bad_models(self) -> dict:
        config = json.loads((self.model / "config.json").read_text())
        weights = (self.model / "model.safetensors").read_bytes()

        def edited(**changes):
            return json.dumps({**config, **changes}).encode()

        return {
            "no-config": (None, weights),
            "no-weights": (json.dumps(config).encode(), None),
            "config-not-json": (b"{not json", weights),
            "config-a-list": (b"[1, 2]", weights),
            "config-latin1": (json.dumps(config).encode().replace(b'"fcn"', b'"fcn\xe9"'), weights),
            "unknown-head": (edited(head="nohead"), weights),
            "unknown-backbone": (edited(backbone="resnet1800"), weights),
            "negative-classes": (edited(num_classes=-3), weights),
            "classes-a-string": (edited(num_classes="3"), weights),
            "mean-two-values": (edited(mean=[0.5, 0.5]), weights),
            "std-zero": (edited(std=[0.0, 1.0, 1.0]), weights),
            "input-size-one-value": (edited(input_size=[64]), weights),
            "class-names-wrong-count": (edited(class_names=["a", "b"]), weights),
            "empty-weights": (json.dumps(config).encode(), b""),
            "truncated-weights": (json.dumps(config).encode(), weights[: len(weights) // 2]),
            "weights-header-garbage": (json.dumps(config).encode(), b"\xff" * 64 + weights[64:]),
            "config-empty": (b"", weights),
            "unknown-config-key": (edited(colour="blue"), weights),
            "in-chans-zero": (edited(in_chans=0), weights),
            "output-stride-7": (edited(output_stride=7), weights),
        }

    @staticmethod
    def _folder_dataset(root: Path) -> None:
        rng = np.random.default_rng(1)
        for split in ("train", "val"):
            (root / "images" / split).mkdir(parents=True)
            (root / "masks" / split).mkdir(parents=True)
            for index in range(2):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                    root / "images" / split / f"{index}.png")
                Image.fromarray(rng.integers(0, 3, (32, 32), dtype=np.uint8), mode="L").save(
                    root / "masks" / split / f"{index}.png")
        (root / "classes.txt").write_text("background\na\nb\n")

    def cleanup(self) -> None:
        pass


# --- running a case --------------------------------------------------------------------------------------------------

def _run_cli(argv: list) -> tuple[int, str, str]:
    from segzoo.tools.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(part) for part in argv[1:]])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
            if not isinstance(exit_.code, int) and exit_.code is not None:
                print(exit_.code, file=err)
        except BaseException:  # noqa: BLE001 - a raw exception is what the sweep looks for
            traceback.print_exc(file=err)
            code = -1
    return code, out.getvalue(), err.getvalue()


def _run_script(argv: list) -> tuple[int, str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1", HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, str(ROOT / argv[0]), *map(str, argv[1:])], capture_output=True, text=True,
                            env=env, timeout=600, cwd=tempfile.gettempdir())
    return result.returncode, result.stdout, result.stderr


def _raised_by_segzoo(err: BaseException) -> bool:
    """Whether the innermost frame that raised ``err`` is segzoo's own (a deliberate check, not a library's crash)."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and f"{os.sep}segzoo{os.sep}" in frames[-1].filename


def _run_api(call: Callable[[], object]) -> tuple[int, str, str]:
    from segzoo.errors import SegzooError

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            call()
    except SegzooError as err:
        return 1, "", f"{type(err).__name__}: {err}"
    except (TypeError, ValueError) as err:  # Python's own rule for a wrong argument, when its text names it
        if err.__traceback__.tb_next is not None and _raised_by_segzoo(err):
            return 1, "", f"{type(err).__name__}: {err}"
        return -1, "", traceback.format_exc()
    except Exception:  # noqa: BLE001 - a raw exception is what the sweep looks for
        return -1, "", traceback.format_exc()
    return 0, "", ""


def classify(case: Case) -> None:
    if callable(case.run):
        code, out, err = _run_api(case.run)
    elif str(case.run[0]) == "segzoo":
        code, out, err = _run_cli(case.run)
    else:
        code, out, err = _run_script(case.run)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    if case.expect == "ok":
        ok = code == 0 and (case.check is None or case.check())
        case.result, case.detail = ("fine", "") if ok else ("failed", last or out.strip()[-200:])
    elif code == 0:
        case.result, case.detail = "accepted", out.strip().splitlines()[-1] if out.strip() else "(exit 0)"
    elif "Traceback" in err or code == -1:
        case.result, case.detail = "traceback", last
    elif not all(word.lower() in err.lower() for word in case.mentions):
        case.result, case.detail = "traceback", f"does not name {case.mentions}: {last}"
    else:
        case.result, case.detail = "fine", last


# --- the cases -------------------------------------------------------------------------------------------------------

# what the error of a local-dir model names, where it is not the folder: the bad value itself
_NAMED = {"no-config": ("config.json",), "unknown-head": ("nohead",), "unknown-backbone": ("resnet1800",)}


def cases(w: Workspace) -> list[Case]:
    import segzoo
    from segzoo.config import ModelConfig

    model = f"local-dir:{w.model}"
    out = w.root / "out"
    fresh = iter(range(10_000))

    def new(name: str) -> Path:
        return w.root / "fresh" / f"{name}-{next(fresh)}"

    found: list[Case] = []

    def add(id, run, expect="error", mentions=(), check=None):
        found.append(Case(id, run, expect, tuple(mentions), check))

    # segzoo list / info
    add("list: a pattern that matches nothing", ["segzoo", "list", "zzz*"], mentions=("zzz",))
    add("list: --head without --pretrained", ["segzoo", "list", "--head", "fcn"], mentions=("--pretrained",))
    add("list --pretrained: unknown dataset pattern", ["segzoo", "list", "--pretrained", "--dataset", "mars"])
    add("list --pretrained --head pspnet", ["segzoo", "list", "--pretrained", "--head", "pspnet"], expect="ok")
    add("list --heads", ["segzoo", "list", "--heads"], expect="ok")
    add("list --necks", ["segzoo", "list", "--necks"], expect="ok")
    for name in ("fcn_resnet1800", "fcnn_resnet50", "deeplabv3_resnet101.tv_coco_vocc", "pspnet_resnet50_vocc", "",
                 "local-dir:", f"local-dir:{w.root / 'missing'}", f"local-dir:{w.file}", "hf-hub:", "hf-hub:a/b/c",
                 "hf-hub:../x", "unknown-prefix:abc", "fcn_resnet50.", ".tv_coco_voc"):
        add(f"info: bad name {name!r}", ["segzoo", "info", name])
    for bad, folder in w.bad_models.items():
        add(f"info: local-dir model with {bad}", ["segzoo", "info", f"local-dir:{folder}"],
            expect="ok" if bad in ("no-weights", "empty-weights", "truncated-weights", "weights-header-garbage")
            else "error")  # info reads the config, not the weights (it says where they are)
        add(f"create_model of a local-dir model with {bad}", lambda folder=folder: segzoo.create_model(
            f"local-dir:{folder}"), mentions=_NAMED.get(bad, (folder.name,)))
    add("info: --endpoint not a URL", ["segzoo", "info", "hf-hub:a/b", "--endpoint", "nourl"])
    add("info: --endpoint closed port", ["segzoo", "info", "hf-hub:a/b", "--endpoint", w.hub])

    # create_model / config API
    for kwargs in ({"num_classes": 0}, {"num_classes": -1}, {"num_classes": 2.5}, {"num_classes": "3"},
                   {"num_classes": True}, {"in_chans": 0}, {"in_chans": "3"}, {"output_stride": 7},
                   {"output_stride": "8"}, {"aux": "yes"}, {"input_size": (0, 64)}, {"input_size": 64},
                   {"mean": (0.5, float("nan"), 0.5)}, {"std": (0, 1, 1)}, {"no_such_option": 1},
                   {"class_names": ["a"] * 3, "num_classes": 4}, {"dropout": 2.0}, {"pretrained": "yes"},
                   {"revision": 3}):
        add(f"create_model fcn_resnet18 {kwargs}", lambda kwargs=kwargs: segzoo.create_model("fcn_resnet18", **kwargs),
            mentions=(list(kwargs)[0],))
    for name in ("fcn_resnet18 ", "FCN_resnet18", "fcn_", "_resnet18", "fcn_resnet18_voc", "deeplabv3plus_xception",
                 "pspnet_resnet50.tv_coco_voc", None, 3):
        add(f"create_model({name!r})", lambda name=name: segzoo.create_model(name))
    add("create_model(pretrained=True) of a name with no weights",
        lambda: segzoo.create_model("fcn_resnet18", pretrained=True), mentions=("fcn_resnet18",))
    add("load_pretrained(a file)", lambda: segzoo.load_pretrained(w.file), mentions=(w.file.name,))
    add("load_pretrained(missing)", lambda: segzoo.load_pretrained(w.root / "missing"), mentions=("missing",))
    add("save_pretrained(into a file)", lambda: segzoo.save_pretrained(segzoo.create_model(model), w.file / "m"),
        mentions=(w.file.name,))
    add("save_pretrained(not a model)", lambda: segzoo.save_pretrained(object(), new("save")))
    add("ModelConfig.load(list config)", lambda: ModelConfig.load(w.bad_models["config-a-list"] / "config.json"))
    add("ModelConfig.from_dict(backbone=None)", lambda: ModelConfig.from_dict({"head": "fcn", "backbone": None}))
    add("ModelConfig.from_dict(num_classes=0)",
        lambda: ModelConfig.from_dict({"head": "fcn", "backbone": "resnet18", "num_classes": 0}),
        mentions=("num_classes",))
    add("list_models(3)", lambda: segzoo.list_models(3))
    add("list_pretrained(head=3)", lambda: segzoo.list_pretrained(head=3))
    add("get_pretrained('nope')", lambda: segzoo.get_pretrained("nope"), mentions=("nope",))
    add("get_head('nohead')", lambda: segzoo.get_head("nohead"), mentions=("nohead",))
    add("get_neck('nope')", lambda: segzoo.get_neck("nope"), mentions=("nope",))
    add("parse_model_name('')", lambda: segzoo.parse_model_name(""))
    add("model_info('nope_resnet18')", lambda: segzoo.model_info("nope_resnet18"), mentions=("nope",))

    # predict (API)
    def predict(**kwargs):
        inputs = kwargs.pop("inputs", w.image)
        return lambda: segzoo.predict(inputs, model, progress=False, quiet=True, **kwargs)

    def recorded(inputs):  # a batch goes on past an unreadable file: its result carries the error
        def call():
            results = segzoo.predict(inputs, model, progress=False, quiet=True)
            assert results and all(result.error and result.mask is None for result in results), results
        return call

    for bad in ("missing.png", "corrupt/broken.png", "text.png"):
        add(f"predict({bad}) records the error in its result", recorded(w.root / bad), expect="ok")
    add("predict(an empty folder) records the error in its result", recorded(w.empty), expect="ok")
    for kwargs, mentions in (({"scales": [0]}, ("scale",)), ({"scales": []}, ("scale",)),
                             ({"batch_size": 0}, ("batch",)), ({"flip": "yes"}, ("flip",)),
                             ({"save_npy": 1}, ("save_npy",)),
                             ({"precision": "fp8"}, ("fp8",)), ({"runtime": "tensorrt"}, ("tensorrt",)),
                             ({"device": "tpu"}, ("tpu",)), ({"device": "cuda:0"}, ("cuda",)),
                             ({"half": True}, ("half",)), ({"max_size": 0}, ("max",)),
                             ({"out_dir": w.file}, (w.file.name,)), ({"out_dir": w.file / "below"}, (w.file.name,)),
                             ({"num_classes": 0}, ("num_classes",))):
        add(f"predict({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})", predict(**kwargs), mentions=mentions)
    add("predict(one image) works", predict(), expect="ok")

    # predict (CLI)
    cli = ["segzoo", "predict", "--model", model, "--quiet", "--precision", "fp32"]
    for extra, mentions in (([w.root / "missing.png"], ("missing",)), ([w.empty], ("empty",)),
                            ([w.corrupt_png], ("broken",)), ([w.text_png], ("text.png",)),
                            ([w.image, "--out", w.file], (w.file.name,)),
                            ([w.image, "--out", w.file / "below"], (w.file.name,)),
                            ([w.image, "--scales", "0"], ("scales",)), ([w.image, "--scales", "x"], ("scales",)),
                            ([w.image, "--batch-size", "0"], ("batch",)), ([w.image, "--max-size", "-5"], ("max",)),
                            ([w.image, "--device", "tpu"], ("tpu",)), ([w.image, "--device", "cuda"], ("cuda",)),
                            ([w.image, "--half"], ("half",)), ([w.image, "--num-classes", "0"], ("num-classes",)),
                            ([w.image, "--calibration", w.image], ("calibration",)),
                            ([w.image, "--precision", "int8"], ("calibration",)),
                            ([w.image, "--skip-existing", "--overwrite"], ("overwrite",)),
                            ([w.image, "--runtime", "tensorrt"], ("tensorrt",)), ([], ())):
        add(f"segzoo predict {' '.join(map(str, extra))}", [*cli, *extra], mentions=mentions)
    target = new("predict")
    add("segzoo predict a folder works", [*cli, w.images, "--out", target], expect="ok",
        check=lambda: len(list(target.glob("*.png"))) == 4)
    add("segzoo predict the same folder again refuses", [*cli, w.images, "--out", target], mentions=("--overwrite",))
    add("segzoo predict --skip-existing skips", [*cli, w.images, "--out", target, "--skip-existing"], expect="ok")

    # export / benchmark
    exp = ["segzoo", "export", model]
    for extra, mentions in ((["--size", "0", "64"], ("size",)), (["--size", "64"], ("size",)),
                            (["--size", "a", "b"], ("size",)), (["--opset", "0"], ("opset",)),
                            (["--opset", "x"], ("opset",)), (["--format", "tflite"], ("tflite",)),
                            (["--out", w.file / "m.onnx"], (w.file.name,)), (["--out", w.model],
                                                                             ("model",)),
                            (["--out", w.empty], ("empty",)), (["--num-classes", "-2"], ("num-classes",)),
                            (["--format", "torch.export", "--opset", "17"], ("opset",))):
        add(f"segzoo export {' '.join(map(str, extra))}", [*exp, *extra], mentions=mentions)
    add("segzoo export of an unknown name", ["segzoo", "export", "fcnn_resnet18"], mentions=("fcnn_resnet18",))
    bench = ["segzoo", "benchmark", model]
    for extra, mentions in ((["--size", "0", "0"], ("size",)), (["--batch", "0"], ("batch",)),
                            (["--runs", "0"], ("runs",)), (["--rounds", "-1"], ("rounds",)),
                            (["--warmup", "-1"], ("warmup",)), (["--device", "tpu"], ("tpu",)),
                            (["--device", "cuda:3"], ("cuda",)), (["--batch", "x"], ("batch",)),
                            (["--reference", "nope_model"], ("nope_model",)), (["--optimize", "max"], ("max",))):
        add(f"segzoo benchmark {' '.join(extra)}", [*bench, *extra], mentions=mentions)
    add("segzoo benchmark with no model", ["segzoo", "benchmark"], mentions=("NAME",))

    # convert
    conv = ["segzoo", "convert"]
    for extra, mentions in (([w.root / "missing.pth", new("c")], ("missing.pth",)),
                            ([w.not_pth, new("c")], ("not.pth",)), ([w.pth, new("c")], ("plain.pth",)),
                            ([w.image, new("c")], ("0.png",)), ([w.empty, new("c")], ("empty",)),
                            ([w.pth, w.file], (w.file.name,)), ([w.pth, new("c"), "--from", "caffe"], ("caffe",)),
                            ([w.pth, new("c"), "--model", "nope_model"], ("nope_model",)),
                            ([w.pth, new("c"), "--backbone", "resnet1800"], ()),
                            ([w.pth, new("c"), "--num-classes", "0"], ("num-classes",)),
                            ([w.model / "model.safetensors", new("c")], ("safetensors",))):
        add(f"segzoo convert {' '.join(str(p).replace(str(w.root), '') for p in extra)}", [*conv, *extra],
            mentions=mentions)

    # push / pull against a closed port (no network)
    for extra, mentions in ((["push", w.model, "bad id"], ("bad id",)), (["push", w.model, "a/b/c"], ("a/b/c",)),
                            (["push", w.empty, "alice/x"], ("empty",)), (["push", w.file, "alice/x"], ()),
                            (["push", w.model, "alice/x", "--endpoint", w.hub], ("127.0.0.1",)),
                            (["pull", "alice/x", "--endpoint", w.hub], ("alice/x",)),
                            (["pull", "bad id"], ("bad id",)), (["pull", "alice/x@", "--endpoint", w.hub], ()),
                            (["pull", "alice/x", "--local-files-only"], ("alice/x",)),
                            (["pull", "alice/x", "--to", w.file, "--endpoint", w.hub], ()),
                            (["pull", "fcn_resnet18", "--endpoint", w.hub], ("fcn_resnet18",)),
                            (["pull", "fcn_resnet50_voc.nope", "--endpoint", w.hub], ("nope",))):
        add(f"segzoo {' '.join(str(p).replace(str(w.root), '') for p in extra)}", ["segzoo", *extra],
            mentions=mentions)

    # the example scripts (real processes)
    data = ["--dataset", "folder", "--data-root", w.dataset]
    train = ["examples/train.py", "--model", "fcn_resnet18", *data, "--device", "cpu", "--iters", "1",
             "--crop-size", "32", "--batch-size", "2", "--workers", "0"]
    for extra, mentions in ((["--lr", "-1"], ("lr",)), (["--iters", "0"], ("iters",)), (["--batch-size", "0"],
                                                                                          ("batch",)),
                            (["--crop-size", "0"], ("crop",)), (["--dataset", "mars"], ("mars",)),
                            (["--data-root", w.root / "nodata"], ("nodata",)), (["--output", w.file], (w.file.name,)),
                            (["--resume", w.empty], ("empty",)),
                            (["--class-weight", "1", "2"], ("class-weight",)), (["--device", "tpu"], ("tpu",)),
                            (["--loss", "huber"], ("huber",)), (["--loss-option", "gamma"], ("gamma",)),
                            (["--in-chans", "0"], ("in-chans",)), (["--model", "fcnn_resnet18"], ("fcnn_resnet18",)),
                            (["--checkpoint-every", "0"], ("checkpoint-every",))):
        add(f"train.py {' '.join(str(p).replace(str(w.root), '') for p in extra)}",
            [*train, "--output", new("run"), *extra],
            mentions=mentions)
    evaluate = ["examples/evaluate.py", "--model", model, *data, "--device", "cpu", "--workers", "0"]
    for extra, mentions in ((["--scales", "0"], ("scales",)), (["--window", "0"], ("window",)),
                            (["--split", "test"], ("test",)), (["--dataset", "voc", "--data-root", w.empty],
                                                              ("empty",)),
                            (["--json", w.file / "m.json"], (w.file.name,)), (["--json", w.empty], ("empty",)),
                            (["--check-images", "0"], ("check-images",)), (["--precision", "int8"], ("calibration",)),
                            (["--model", f"local-dir:{w.bad_models['truncated-weights']}"], ("model.safetensors",))):
        add(f"evaluate.py {' '.join(str(p).replace(str(w.root), '') for p in extra)}", [*evaluate, *extra],
            mentions=mentions)
    finetune = ["examples/finetune.py", "--model", "fcn_resnet18", "--data", w.dataset, "--device", "cpu",
                "--iters", "1", "--crop-size", "32", "--out", new("f")]
    for extra, mentions in ((["--out", w.file], (w.file.name,)),
                            (["--iters", "0"], ("iters",)), (["--lr", "0"], ("lr",)),
                            (["--data", w.empty], ("empty",)),
                            (["--class-weight", "1"], ("class-weight",)),
                            (["--task", "binary"], ()),
                            (["--device", "cuda"], ("cuda",))):
        add(f"finetune.py {' '.join(str(p).replace(str(w.root), '') for p in extra)}", [*finetune, *extra],
            mentions=mentions)
    del out
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="keyword", help="only the cases whose id contains this")
    parser.add_argument("--all", action="store_true", help="a line per case, fine ones too")
    args = parser.parse_args()
    os.environ.update(HF_HUB_DISABLE_TELEMETRY="1", TQDM_DISABLE="1", SEGZOO_CACHE=tempfile.mkdtemp())
    with tempfile.TemporaryDirectory() as folder:
        workspace = Workspace(Path(folder))
        try:
            selected = [case for case in cases(workspace) if not args.keyword or args.keyword in case.id]
            for case in selected:
                classify(case)
                if args.all or case.result != "fine":
                    print(f"{case.result:9} {case.id}: {case.detail[:300]}", flush=True)
        finally:
            workspace.cleanup()
    counts = {result: sum(case.result == result for case in selected)
              for result in ("fine", "accepted", "traceback", "failed")}
    print(f"{len(selected)} cases: " + ", ".join(f"{count} {result}" for result, count in counts.items()))
    return 0 if counts["fine"] == len(selected) else 1


if __name__ == "__main__":
    sys.exit(main())
