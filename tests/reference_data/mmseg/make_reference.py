"""Reference outputs of mmsegmentation's own models, for segzoo's parity tests.

NOT part of the segzoo package or its test run: run it once, by hand, with the python of a SCRATCH environment
that has mmsegmentation in it (mmseg is never a dependency of segzoo):

    /tmp/mmseg-venv/bin/python tests/reference_data/mmseg/make_reference.py

It writes, beside itself: reference.npz (input + logits/aux outputs, float32), key_layouts.json.gz (each model's
state-dict layout, in order), models.json (what each reference ran) and versions.json. The weights are NOT
stored: every state-dict entry is ``seeded_value(key, shape, dtype)`` from tests/support/seeded_weights.py, which
the test side calls again on the same key layout.

Scratch environment, exactly as it was built:

    python3 -m venv /tmp/mmseg-venv
    /tmp/mmseg-venv/bin/pip install --upgrade pip
    /tmp/mmseg-venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
        # resolved to torch 2.13.0+cpu (from the machine's local wheels) and torchvision 0.28.0; any recent CPU
        # torch serves: the outputs are float32 and compared at a relative 1e-4
    /tmp/mmseg-venv/bin/pip install "mmsegmentation==1.2.2" "mmcv-lite==2.1.0" mmengine ftfy regex
        # mmsegmentation 1.2.2 refuses mmcv 2.2, hence mmcv-lite 2.1.0; numpy 2.x worked, no pin needed

STUB (the only change to installed code): mmcv-lite has no compiled ``mmcv._ext``, and its
``mmcv/ops/__init__.py`` imports every op, so ``import mmcv.ops`` fails, and ``mmseg.utils`` /
``mmseg.models`` import names from it at module level. In the scratch env only,
``<site-packages>/mmcv/ops/__init__.py`` was replaced (original kept as ``__init__.py.orig-mmcv-lite``) by a
file that exports:
  * ``CrissCrossAttention`` -- the REAL class, ``from .cc_attention import CrissCrossAttention`` (pure PyTorch
    since mmcv 1.3.13; CCNet's CCHead uses it);
  * ``point_sample`` -- the REAL pure-PyTorch function, ``from .point_sample import point_sample`` (imported by
    mmseg.utils.mask_classification, mmseg.models.utils.point_sample, san_head; never called here);
  * placeholders that raise RuntimeError when called/instantiated, for names imported but never used by these
    models: ``sigmoid_focal_loss`` (mmseg.models.losses.focal_loss), ``PSAMask`` (psa_head, imported in a
    try), ``DeformConv2d``/``ModulatedDeformConv2d`` (optimizer constructors), ``SyncBatchNorm`` (mmengine's
    revert_sync_batchnorm only imports it when mmcv._ext exists, which it does not).
mmcv/cnn/bricks/transformer.py still warns that MultiScaleDeformableAttention cannot be imported; harmless.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # the repository root
SEEDED = ROOT / "tests" / "support" / "seeded_weights.py"

CONFIGS = [
    "fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024",
    "fcn/fcn_r50-d8_4xb2-40k_cityscapes-769x769",
    "fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024",
    "fcn/fcn-d6_r50-d16_4xb2-40k_cityscapes-512x1024",
    "pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024",
    "pspnet/pspnet_r18b-d8_4xb2-80k_cityscapes-512x1024",
    "pspnet/pspnet_r50b-d32_4xb2-80k_cityscapes-512x1024",
    "deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024",
    "deeplabv3/deeplabv3_r101-d8_4xb4-20k_voc12aug-512x512",
    "danet/danet_r50-d8_4xb2-40k_cityscapes-512x1024",
    "ccnet/ccnet_r50-d8_4xb2-40k_cityscapes-512x1024",
    "bisenetv1/bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024",
    "deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024",
    "upernet/upernet_r50_4xb2-40k_cityscapes-512x1024",
]
INPUT_SHAPE = (1, 3, 23, 31)  # odd on purpose


def load_seeded():
    spec = importlib.util.spec_from_file_location("seeded_weights", SEEDED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def no_pretrained(node, path="model", dropped=None):
    """Set every ``pretrained`` and ``init_cfg`` anywhere in the model config to None (nothing may download);
    return {dotted path: the value it had} for those that were not None already."""
    dropped = {} if dropped is None else dropped
    if isinstance(node, dict):
        for key in ("pretrained", "init_cfg"):
            if key in node:
                if node[key] is not None:
                    dropped[f"{path}.{key}"] = json_safe(node[key])
                node[key] = None
        for key, value in node.items():
            no_pretrained(value, f"{path}.{key}", dropped)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            no_pretrained(value, f"{path}[{i}]", dropped)
    return dropped


def json_safe(node):
    if hasattr(node, "to_dict"):
        node = node.to_dict()
    if isinstance(node, dict):
        return {str(k): json_safe(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [json_safe(v) for v in node]
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    return repr(node)


def main() -> None:
    import mmcv
    import mmengine
    import mmseg
    from mmengine import Config
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    warnings.filterwarnings("ignore")
    register_all_modules()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bitwise-stable reductions run to run
    seeded = load_seeded()
    configs_root = Path(mmseg.__file__).parent / ".mim" / "configs"

    x_np = seeded.seeded_value("input", INPUT_SHAPE).astype(np.float32)
    x = torch.from_numpy(x_np.copy())
    arrays: dict[str, np.ndarray] = {"input": x_np}
    layouts: dict[str, dict] = {}
    models: dict[str, dict] = {}

    for rel in CONFIGS:
        name = rel.split("/")[-1]
        cfg = Config.fromfile(str(configs_root / f"{rel}.py"))
        dropped = no_pretrained(cfg.model)
        model = revert_sync_batchnorm(MODELS.build(cfg.model)).to(device="cpu", dtype=torch.float32)

        reference = model.state_dict()
        state = {
            key: torch.from_numpy(
                np.ascontiguousarray(seeded.seeded_value(key, tuple(t.shape), str(t.dtype).replace("torch.", "")))
            )
            for key, t in reference.items()
        }
        model.load_state_dict(state, strict=True)
        model.eval()
        layouts[name] = {key: [list(t.shape), str(t.dtype).replace("torch.", "")] for key, t in reference.items()}

        meta = [dict(img_shape=INPUT_SHAPE[2:], ori_shape=INPUT_SHAPE[2:], pad_shape=INPUT_SHAPE[2:])]
        with torch.no_grad():
            logits = model.encode_decode(x, meta)
            arrays[f"{name}/logits"] = logits.numpy().astype(np.float32)
            shapes = [f"logits {tuple(logits.shape)}"]
            if model.with_auxiliary_head:
                feats = model.extract_feat(x)
                heads = model.auxiliary_head
                outs = [h.forward(feats) for h in heads] if isinstance(heads, torch.nn.ModuleList) \
                    else heads.forward(feats)
                if isinstance(outs, (list, tuple)):
                    for i, out in enumerate(outs):
                        arrays[f"{name}/aux{i}"] = out.numpy().astype(np.float32)
                        shapes.append(f"aux{i} {tuple(out.shape)}")
                else:
                    arrays[f"{name}/aux"] = outs.numpy().astype(np.float32)
                    shapes.append(f"aux {tuple(outs.shape)}")

        decode = cfg.model.decode_head
        models[name] = {
            "config": f"{rel}.py",
            "decode_head": decode["type"],
            "align_corners": bool(decode.get("align_corners", False)),
            "model": json_safe(cfg.model.to_dict()),  # as built (after pretrained/init_cfg were set to None)
            "dropped_from_config": dropped,
        }
        print(f"{name}: {', '.join(shapes)}; max|logits| = {float(logits.abs().max()):.6g}", flush=True)

    # two runs gave byte-identical files (numpy writes fixed zip timestamps; gzip mtime=0 below)
    np.savez_compressed(HERE / "reference.npz", **arrays)
    with gzip.GzipFile(HERE / "key_layouts.json.gz", "wb", mtime=0) as fh:
        fh.write(json.dumps(layouts, indent=0).encode())
    (HERE / "models.json").write_text(json.dumps(models, indent=1) + "\n")
    versions = {
        "torch": torch.__version__,
        "mmseg": mmseg.__version__,
        "mmcv": mmcv.__version__,
        "mmengine": mmengine.__version__,
        "numpy": np.__version__,
        "mmcv_ops": "stub: real CrissCrossAttention + point_sample, placeholders for the rest (see make_reference.py)",
    }
    (HERE / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")
    for path in ("reference.npz", "key_layouts.json.gz", "models.json", "versions.json"):
        print(f"wrote {path}: {os.path.getsize(HERE / path)} bytes")


if __name__ == "__main__":
    main()
