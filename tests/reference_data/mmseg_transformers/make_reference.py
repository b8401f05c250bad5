"""Reference outputs of mmsegmentation's own transformer-era models (UPerNet on Swin, ConvNeXt from mmpretrain, BEiT,
ViT / DeiT, MAE; SegFormer on MiT; Segmenter, SETR and DPT on ViT), for segzoo's parity tests
(tests/upstreams/test_mmseg_transformers_parity.py).

NOT part of the segzoo package or its test run: run it once, by hand, with the python of a SCRATCH environment that
has mmsegmentation and mmpretrain in it (never dependencies of segzoo):

    python3 -m venv /tmp/up-venv
    /tmp/up-venv/bin/pip install "mmsegmentation==1.2.2" "mmcv-lite==2.1.0" mmengine ftfy regex
    /tmp/up-venv/bin/pip install --no-deps "mmpretrain==1.2.0"
    /tmp/up-venv/bin/pip install einops mat4py modelindex rich importlib-metadata
    /tmp/up-venv/bin/python tests/reference_data/mmseg_transformers/make_reference.py

As run: torch 2.14.1 and numpy from segzoo's own venv (a .pth file in the scratch venv points there), mmseg 1.2.2,
mmcv-lite 2.1.0, mmpretrain 1.2.0 (versions.json). mmcv-lite has no compiled ops and ``import mmcv.ops`` fails; in
the scratch env only, ``mmcv/ops/__init__.py`` is replaced by a stub exporting the real pure-PyTorch
``CrissCrossAttention`` and ``point_sample`` and placeholders that raise when used (none of these models uses one);
see tests/reference_data/mmseg/make_reference.py, which did the same.

Every model is built from mmseg's own config file (pretrained / init_cfg set to None), its state dict filled with
``seeded_value(key, shape, dtype)`` (tests/support/seeded_weights.py; integer buffers keep mmseg's values), and run
with ``encode_decode`` (logits at the input size, bilinear, align_corners=False) at the sizes below: an odd size
and 128x128 where the model takes any size, its crop size where its position embedding is tied to it (BEiT, MAE).
Stored: reference.npz (every ``k``-th class, row and column of the logits, float32, so the file stays small; a
wrong structure still fails by far), key_layouts.json.gz and models.json (also for every other config of the
families' metafiles: the zoo entries' layouts). Weights are not stored.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SEEDED = HERE.parents[1] / "support" / "seeded_weights.py"
ODD, SQUARE = (97, 131), (128, 128)
CASES = {
    "swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512": [ODD, SQUARE],
    "swin/swin-base-patch4-window12-in22k-384x384-pre_upernet_8xb2-160k_ade20k-512x512": [ODD],
    "convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512": [ODD, SQUARE],
    "beit/beit-base_upernet_8xb2-160k_ade20k-640x640": [(640, 640)],
    "mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512": [(512, 512)],
    "vit/vit_vit-b16-ln_mln_upernet_8xb2-160k_ade20k-512x512": [(512, 512), ODD],
    "vit/vit_deit-s16_upernet_8xb2-80k_ade20k-512x512": [(512, 512), ODD],
    "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512": [ODD, (512, 512)],
    "segformer/segformer_mit-b1_8xb1-160k_cityscapes-1024x1024": [ODD],
    "segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512": [(512, 512), ODD],
    "segmenter/segmenter_vit-s_fcn_8xb1-160k_ade20k-512x512": [(512, 512)],
    "setr/setr_vit-l_naive_8xb2-160k_ade20k-512x512": [(512, 512)],
    "setr/setr_vit-l_pup_8xb2-160k_ade20k-512x512": [(512, 512)],
    "setr/setr_vit-l_mla_8xb2-160k_ade20k-512x512": [(512, 512)],
    "dpt/dpt_vit-b16_8xb2-160k_ade20k-512x512": [(512, 512), ODD],
}
CLASS_STEP = 10
# every config of their metafiles: its key layout
FAMILIES = ("swin", "convnext", "beit", "vit", "mae", "segformer", "segmenter", "setr", "dpt")


def pixel_step(size: tuple[int, int]) -> int:
    """Keep about 1000 pixels of each output."""
    return max(1, math.ceil(math.sqrt(size[0] * size[1] / 1000)))


def _seeded():
    spec = importlib.util.spec_from_file_location("seeded_weights", SEEDED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.seeded_value


def _no_pretrained(node):
    if isinstance(node, dict):
        for key in ("pretrained", "init_cfg"):
            if key in node:
                node[key] = None
        for value in node.values():
            _no_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _no_pretrained(value)


def main() -> None:
    import mmengine
    import mmpretrain  # noqa: F401  (registers mmpretrain.ConvNeXt)
    import mmseg
    from mmengine import Config
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    warnings.filterwarnings("ignore")
    register_all_modules()
    torch.set_num_threads(1)
    seeded_value = _seeded()
    root = Path(mmseg.__file__).parent / ".mim" / "configs"
    arrays, layouts, models = {}, {}, {}
    for rel, sizes in CASES.items():
        name = rel.split("/")[-1]
        cfg = Config.fromfile(str(root / f"{rel}.py"))
        _no_pretrained(cfg.model)
        model = revert_sync_batchnorm(MODELS.build(cfg.model)).float()
        reference = model.state_dict()
        state = {key: value if not value.is_floating_point() else
                 torch.from_numpy(seeded_value(key, tuple(value.shape), str(value.dtype).replace("torch.", "")))
                 for key, value in reference.items()}
        model.load_state_dict(state, strict=True)
        model.eval()
        layouts[name] = [[key, list(v.shape), str(v.dtype).replace("torch.", "")] for key, v in reference.items()
                         if v.is_floating_point()]
        for size in sizes:
            x = torch.from_numpy(seeded_value(f"{name}/input/{size[0]}x{size[1]}", (1, 3, *size)) * 0.5)
            meta = [dict(img_shape=size, ori_shape=size, pad_shape=size)]
            with torch.no_grad():
                logits = model.encode_decode(x, meta)
            step = pixel_step(size)
            arrays[f"{name}/{size[0]}x{size[1]}"] = logits[:, ::CLASS_STEP, ::step, ::step].numpy()
            print(name, size, tuple(logits.shape), f"max |logits| {float(logits.abs().max()):.4g}", flush=True)
        models[name] = {"config": f"{rel}.py", "backbone": str(cfg.model.backbone["type"]),
                        "integer_buffers": [key for key, v in reference.items() if not v.is_floating_point()]}
    import yaml

    for family in FAMILIES:  # the layouts (keys and shapes) of every other config
        for record in yaml.safe_load((root / family / "metafile.yaml").read_text())["Models"]:
            if record["Name"] in layouts:
                continue
            cfg = Config.fromfile(str(root / family / f"{record['Name']}.py"))
            _no_pretrained(cfg.model)
            state = revert_sync_batchnorm(MODELS.build(cfg.model)).state_dict()
            layouts[record["Name"]] = [[key, list(v.shape), str(v.dtype).replace("torch.", "")]
                                       for key, v in state.items() if v.is_floating_point()]
            models[record["Name"]] = {"config": f"{family}/{record['Name']}.py",
                                      "backbone": str(cfg.model.backbone["type"]),
                                      "integer_buffers": [k for k, v in state.items() if not v.is_floating_point()]}
    np.savez_compressed(HERE / "reference.npz", **arrays)
    with gzip.GzipFile(HERE / "key_layouts.json.gz", "wb", mtime=0) as file:
        file.write(json.dumps(layouts).encode())
    (HERE / "models.json").write_text(json.dumps(models, indent=1) + "\n")
    versions = {"torch": torch.__version__, "mmseg": mmseg.__version__, "mmengine": mmengine.__version__,
                "mmpretrain": mmpretrain.__version__, "numpy": np.__version__,
                "mmcv_ops": "stub: real CrissCrossAttention + point_sample, placeholders for the rest"}
    (HERE / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")


if __name__ == "__main__":
    main()
