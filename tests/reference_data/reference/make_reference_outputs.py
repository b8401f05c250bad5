"""Outputs of the reference zoo's own model code, for segzoo's parity test (tests/heads/test_reference_parity.py).

The ``*.ref_*`` zoo entries come from the README table of AceCoooool/segmentation (written for PyTorch 1.1).
This script is NOT part of segzoo or its test run, and nothing of the reference code is copied into the project:
run it once, by hand, with the python of a SCRATCH environment, on a checkout of the reference code:

    python3 -m venv /work/scratch-ref/.venv
    /work/scratch-ref/.venv/bin/pip install torch numpy       # resolved to torch 2.14.1+cu130, numpy 2.4.6; run on CPU
    git --git-dir=<a clone of github.com/AceCoooool/segmentation> archive 2f4d5ac193cab580eb8ba789e79db6dadcfecfd0 \\
        | tar -x -C /work/scratch-ref/segmentation            # its newest commit (2019-05-15)
    /work/scratch-ref/.venv/bin/python tests/reference_data/reference/make_reference_outputs.py \
        /work/scratch-ref/segmentation

It writes, beside itself: reference_outputs.npz (float32; see tests/support/reference_zoo.py's ``output_samples``
for what is kept of each output), key_layouts.json.gz (each reference model's state-dict layout, in order) and
models.json (what each reference model was, its output shapes and scales, the versions). The weights are NOT
stored: every state-dict entry is ``seeded_reference_value(key, shape, dtype)`` (tests/support/reference_zoo.py),
which the test calls again on the committed layout; the input is ``seeded_input()``.

The reference code ran UNMODIFIED on torch 2.14.1: no compatibility shim was needed. How the models are built:
  * with the model classes (``FCN``, ``PSPNet``, ``DeepLabV3``, ``DANet``, ``OCNet``) and the arguments its
    ``scripts/eval_segmentation.py`` passes (``pretrained_base=False``, ``aux=True``, ``dilated``/``jpu`` as the
    README table's row; ``backbone='resnet101'``, 21 classes = Pascal VOC), not through its ``get_*`` functions,
    which only add the dataset's class count (importing its dataset modules) and the download of the weights;
  * ``model.keep_shape = True`` after construction, as eval_segmentation.py's testval mode does (the output is
    upsampled to the input's size, and DeepLabV3's pooling branch to ceil(size / 8));
  * ``model.evaluate(x)`` (eval mode, ``torch.no_grad``): the main output, as the reference evaluates it; the aux
    head's logits are taken with a forward hook on ``auxlayer``, before the reference upsamples them.
Before filling it, each model's layout is checked against the real checkpoints' key lists in
tests/reference_data/reference-keys (ResNet-50 there; ResNet-101 adds layer3 blocks base2.6 .. base2.22 shaped like
base2.5).
"""
from __future__ import annotations

import gzip
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # the repository root
REFERENCE_COMMIT = "2f4d5ac193cab580eb8ba789e79db6dadcfecfd0"
NUM_CLASSES = 21
# family -> (reference class, its constructor arguments besides nclass/backbone/aux/pretrained_base;
#            the real checkpoint's key list in tests/reference_data/reference-keys)
MODELS = {
    "fcn_jpu": ("FCN", dict(dilated=False, jpu=True), "fcn_r50_jpu_aux"),
    "psp_jpu": ("PSPNet", dict(dilated=False, jpu=True), "psp_r50_jpu_aux"),
    "psp_d8": ("PSPNet", dict(dilated=True, jpu=False), "psp_r50_d8_aux"),
    "deeplabv3_jpu": ("DeepLabV3", dict(dilated=False, jpu=True), "deeplabv3_r50_jpu_aux"),
    "danet_jpu": ("DANet", dict(dilated=False, jpu=True), "danet_r50_jpu_aux"),
    "ocnet_base_jpu": ("OCNet", dict(oc="base", dilated=False, jpu=True), "ocnet_base_r50_jpu_aux"),
    "ocnet_asp_jpu": ("OCNet", dict(oc="asp", dilated=False, jpu=True), "ocnet_asp_r50_jpu_aux"),
}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def expected_layout(name: str) -> dict[str, list]:
    """The real ResNet-50 checkpoint's key list, extended to ResNet-101's 23 layer3 blocks."""
    layout = json.loads((ROOT / "tests" / "reference_data" / "reference-keys" / f"{name}.keys.json").read_text())
    layout = {key: [shape, dtype.replace("torch.", "")] for key, (shape, dtype) in layout.items()}
    extra = {key.replace("base2.5.", f"base2.{i}.", 1): spec for i in range(6, 23)
             for key, spec in layout.items() if key.startswith("base2.5.")}
    return {**layout, **extra}


def main(reference_root: str) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(Path(reference_root).resolve()))
    from model.seg_models.danet import DANet
    from model.seg_models.deeplabv3 import DeepLabV3
    from model.seg_models.fcn import FCN
    from model.seg_models.ocnet import OCNet
    from model.seg_models.pspnet import PSPNet

    from support.reference_zoo import FAMILIES, INPUT_SHAPE, output_samples, seeded_input, seeded_reference_value

    classes = {"FCN": FCN, "PSPNet": PSPNet, "DeepLabV3": DeepLabV3, "DANet": DANet, "OCNet": OCNet}
    assert list(MODELS) == list(FAMILIES)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bitwise-stable reductions run to run

    x_np = seeded_input()
    x = torch.from_numpy(x_np.copy())
    arrays: dict[str, np.ndarray] = {}
    layouts: dict[str, dict] = {}
    models: dict[str, dict] = {}
    for family, (class_name, kwargs, keys_file) in MODELS.items():
        model = classes[class_name](NUM_CLASSES, backbone="resnet101", aux=True, pretrained_base=False, **kwargs)
        model.keep_shape = True
        model.eval()
        reference = model.state_dict()
        layout = {key: [list(t.shape), dtype_name(t.dtype)] for key, t in reference.items()}
        expected = expected_layout(keys_file)
        if layout != expected:
            raise SystemExit(f"{family}: the reference code's layout is not the real checkpoint's: "
                             f"{sorted(set(layout) ^ set(expected))[:10]}")
        state = {key: torch.from_numpy(seeded_reference_value(key, shape, dtype)) for key, (shape, dtype) in
                 layout.items()}
        model.load_state_dict(state, strict=True)
        loaded = model.state_dict()
        assert all(torch.equal(loaded[key], state[key]) for key in state), family  # f_query is f_key: equal values
        layouts[family] = layout

        captured = {}
        def keep_aux(module, args, out, captured=captured):
            captured["aux"] = out.clone()  # returns None: the output is not replaced

        hook = model.auxlayer.register_forward_hook(keep_aux)
        with torch.no_grad():
            logits = model.evaluate(x)
        hook.remove()
        assert tuple(logits.shape) == (1, NUM_CLASSES, *INPUT_SHAPE[2:]), logits.shape
        for part, value in output_samples(logits.numpy().astype(np.float32)).items():
            arrays[f"{family}/{part}"] = value
        arrays[f"{family}/aux"] = captured["aux"].numpy().astype(np.float32)
        models[family] = {
            "zoo_entry": FAMILIES[family],
            "reference": f"{class_name}({NUM_CLASSES}, backbone='resnet101', aux=True, pretrained_base=False, "
                         + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + "); keep_shape = True; evaluate(x)",
            "checkpoint_keys": f"tests/reference_data/reference-keys/{keys_file}.keys.json "
                               "(ResNet-101: base2.0 .. base2.22)",
            "logits_shape": list(logits.shape),
            "aux_shape": list(captured["aux"].shape),
            "max_abs_logits": float(logits.abs().max()),
            "max_abs_aux": float(captured["aux"].abs().max()),
        }
        print(f"{family}: logits {tuple(logits.shape)} max|.| {float(logits.abs().max()):.6g}; aux "
              f"{tuple(captured['aux'].shape)} max|.| {float(captured['aux'].abs().max()):.6g}", flush=True)

    meta = {
        "input": {"shape": list(INPUT_SHAPE), "value": "seeded_input() (tests/support/reference_zoo.py)",
                  "sum": float(x_np.astype(np.float64).sum())},
        "reference": f"github.com/AceCoooool/segmentation @ {REFERENCE_COMMIT}, unmodified",
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "models": models,
    }
    # two runs give byte-identical files (numpy writes fixed zip timestamps; gzip mtime=0 below)
    np.savez_compressed(HERE / "reference_outputs.npz", **arrays)
    with gzip.GzipFile(HERE / "key_layouts.json.gz", "wb", mtime=0) as fh:
        fh.write(json.dumps(layouts, indent=0).encode())
    (HERE / "models.json").write_text(json.dumps(meta, indent=1) + "\n")
    for path in ("reference_outputs.npz", "key_layouts.json.gz", "models.json"):
        print(f"wrote {path}: {os.path.getsize(HERE / path)} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} <checkout of AceCoooool/segmentation>")
    main(sys.argv[1])
