"""Reference outputs of DINOv2's own segmentation evaluation code (Meta's ViT + ``BNHead``, centre padding to the
patch, logits resized from the padded grid to the input), for segzoo's parity tests
(tests/upstreams/test_dinov2_parity.py).

NOT part of the segzoo package or its test run: run it once, by hand, with the python of a SCRATCH environment that
has mmsegmentation 1.2.2 in it (tests/reference_data/mmseg_transformers/make_reference.py says how to make one) and a
checkout of facebookresearch/dinov2 (pure PyTorch; never a dependency of segzoo):

    git clone https://github.com/facebookresearch/dinov2 /tmp/dinov2-src
    DINOV2_SRC=/tmp/dinov2-src /tmp/up-venv/bin/python tests/reference_data/dinov2/make_reference.py

As run: dinov2 at b8931f7bf91576930313be2c6d6af376033b35f0 (2025-08-14), torch 2.14.1 (versions.json). The backbone is
``dinov2.models.vision_transformer.vit_small`` with the hub's arguments (``dinov2/hub/backbones.py``: img_size 518,
patch 14, init_values 1.0, interpolate_offset 0.1, no antialiasing); the head is Meta's ``BNHead``
(``dinov2/eval/segmentation/models/decode_heads/linear_head.py``, written for mmseg 0.x: its two mmseg 0.x imports are
given mmseg 1.2.2's equivalents, ``HEADS`` -> ``MODELS`` and ``mmseg.ops.resize`` -> ``mmseg.models.utils.resize``)
with the arguments of Meta's linear (last block) and ms (last four blocks) configs for ViT-S/14 on ADE20K. Every
floating-point tensor is ``seeded_value(key, shape, dtype)`` (tests/support/seeded_weights.py; the BatchNorm's
running variance made positive), keys as Meta's files store them: the backbone's as ``dinov2_vits14_pretrain.pth``,
the head's as the head file's ``state_dict``. The forward is Meta's: ``CenterPadding(14)`` on the input,
``get_intermediate_layers(n=..., reshape=True, norm=True)``, the head, and the logits resized to the unpadded input
(bilinear, align_corners=False), as mmseg 0.x's ``encode_decode`` does. Sizes: the linear head at 512x512 (the stored
37x37 grid) and 95x95 (padded to 98, 1 pixel before and 2 after: a 7x7 grid, the position embedding resized), the
ms head at its 640x640 crop
(padded to 644: 46x46). Stored: reference.npz (every 10th class, every k-th row and column) and layouts.json.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
SEEDED = HERE.parents[1] / "support" / "seeded_weights.py"
CLASS_STEP = 10
CASES = {"linear": ([11], [(512, 512), (95, 95)]), "ms": ([8, 9, 10, 11], [(640, 640)])}


def pixel_step(size: tuple[int, int]) -> int:
    """Keep about 1000 pixels of each output."""
    return max(1, math.ceil(math.sqrt(size[0] * size[1] / 1000)))


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bn_head_class(source: Path):
    """Meta's BNHead, its mmseg 0.x imports answered by mmseg 1.2.2."""
    from mmseg.models import utils
    from mmseg.registry import MODELS

    builder = types.ModuleType("mmseg.models.builder")
    builder.HEADS = MODELS
    sys.modules["mmseg.models.builder"] = builder
    ops = types.ModuleType("mmseg.ops")
    ops.resize = utils.resize
    sys.modules["mmseg.ops"] = ops
    return _load("dinov2_linear_head", source / "dinov2/eval/segmentation/models/decode_heads/linear_head.py").BNHead


def _seeded(seeded_value, state: dict) -> dict:
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value
            continue
        array = seeded_value(key, tuple(value.shape), str(value.dtype).replace("torch.", ""))
        if key.endswith("running_var"):
            array = np.abs(array) + 0.5
        out[key] = torch.from_numpy(array)
    return out


def main() -> None:
    source = Path(os.environ.get("DINOV2_SRC", "/tmp/dinov2-src"))
    sys.path.insert(0, str(source))
    from dinov2.hub.utils import CenterPadding
    from dinov2.models.vision_transformer import vit_small

    torch.set_num_threads(1)
    seeded_value = _load("seeded_weights", SEEDED).seeded_value
    backbone = vit_small(img_size=518, patch_size=14, init_values=1.0, ffn_layer="mlp", block_chunks=0,
                         num_register_tokens=0, interpolate_antialias=False, interpolate_offset=0.1).eval()
    backbone_state = _seeded(seeded_value, {f"backbone.{k}": v for k, v in backbone.state_dict().items()})
    backbone.load_state_dict({k[len("backbone."):]: v for k, v in backbone_state.items()})
    BNHead = _bn_head_class(source)
    arrays, layouts = {}, {"backbone": [[k[len("backbone."):], list(v.shape), str(v.dtype).replace("torch.", "")]
                                        for k, v in backbone_state.items()]}
    for case, (blocks, sizes) in CASES.items():
        width = 384 * len(blocks)
        head = BNHead(in_channels=[384] * len(blocks), in_index=list(range(len(blocks))),
                      input_transform="resize_concat", channels=width, dropout_ratio=0, num_classes=150,
                      norm_cfg=dict(type="SyncBN", requires_grad=True), align_corners=False)
        head.bn = torch.nn.BatchNorm2d(width)  # SyncBatchNorm in eval computes the same; it needs a process group
        head = head.eval()
        state = _seeded(seeded_value, {f"decode_head.{k}": v for k, v in head.state_dict().items()})
        head.load_state_dict({k[len("decode_head."):]: v for k, v in state.items()})
        layouts[case] = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in state.items()]
        for size in sizes:
            images = torch.from_numpy(seeded_value(f"dinov2/input/{size[0]}x{size[1]}", (1, 3, *size)) * 0.5)
            with torch.no_grad():
                levels = backbone.get_intermediate_layers(CenterPadding(14)(images), n=blocks, reshape=True,
                                                          norm=True)
                logits = F.interpolate(head(list(levels)), size=size, mode="bilinear", align_corners=False)
            step = pixel_step(size)
            arrays[f"{case}/{size[0]}x{size[1]}"] = logits[:, ::CLASS_STEP, ::step, ::step].numpy()
            print(case, size, tuple(logits.shape), f"max |logits| {float(logits.abs().max()):.4g}", flush=True)
    np.savez_compressed(HERE / "reference.npz", **arrays)
    (HERE / "layouts.json").write_text(json.dumps(layouts) + "\n")
    (HERE / "versions.json").write_text(json.dumps({"torch": torch.__version__, "numpy": np.__version__,
                                                    "dinov2": "b8931f7bf91576930313be2c6d6af376033b35f0"},
                                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
