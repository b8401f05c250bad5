"""segzoo's conversion of DINOv2's segmentation heads (a backbone file and a head file) reproduces Meta's own code:
reference logits taken by tests/reference_data/dinov2/make_reference.py in a scratch environment (Meta's ViT-S/14 and
BNHead, centre padding, logits resized from the padded grid), seeded weights in the layouts of Meta's files, the real
zoo entries' configs; tolerance 1e-4 of the logits' scale. DINOv2's position resize and centre padding are each
needed: timm's resize or corner padding fails by far."""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from segzoo import get_pretrained
from segzoo.model import SegmentationModel
from segzoo.weights.convert import convert_entry
from support.mmseg_reference import max_difference
from support.seeded_weights import seeded_value

DATA = Path(__file__).resolve().parents[1] / "reference_data" / "dinov2"
ENTRIES = {"linear": "linear_probe_dinov2_vits14_ade20k", "ms": "linear_probe_dinov2_vits14_ade20k_ms"}
CLASS_STEP = 10


@lru_cache(maxsize=None)
def _layouts() -> dict:
    return json.loads((DATA / "layouts.json").read_text())


def _reference(case: str, size) -> np.ndarray:
    with np.load(DATA / "reference.npz") as data:
        return data[f"{case}/{size[0]}x{size[1]}"]


def _seeded(layout, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for key, shape, dtype in layout:
        if not dtype.startswith("float"):  # BatchNorm's counter: the module's own value, as the reference kept it
            out[key] = torch.zeros(shape, dtype=getattr(torch, dtype))
            continue
        array = seeded_value(prefix + key, tuple(shape), dtype)
        out[key] = torch.from_numpy(np.abs(array) + 0.5 if key.endswith("running_var") else array)
    return out


@lru_cache(maxsize=None)
def _backbone_state() -> dict[str, torch.Tensor]:
    """Meta's ViT-S/14 file's tensors, seeded (22 M values: made once per process; not to be modified)."""
    return _seeded(_layouts()["backbone"], "backbone.")


def _converted(case: str, **changes) -> SegmentationModel:
    entry = get_pretrained(ENTRIES[case])
    head = _seeded(_layouts()[case])
    _, converted = convert_entry(head, entry, backbone=_backbone_state())
    model = SegmentationModel(entry.config.replace(**changes))
    model.load_state_dict(converted, strict=True)
    return model.eval()


def _logits(model, size) -> torch.Tensor:
    images = torch.from_numpy(seeded_value(f"dinov2/input/{size[0]}x{size[1]}", (1, 3, *size)) * 0.5)
    step = max(1, math.ceil(math.sqrt(size[0] * size[1] / 1000)))
    with torch.no_grad():
        return model(images)[:, ::CLASS_STEP, ::step, ::step]


@pytest.mark.parametrize("case, size", [  # 95x95 in the default tier: the download test below
    pytest.param("linear", (95, 95), marks=pytest.mark.slow),
    pytest.param("linear", (512, 512), marks=pytest.mark.slow),
    pytest.param("ms", (640, 640), marks=pytest.mark.slow),
])
def test_converted_heads_reproduce_dinov2(case, size):
    difference, allowed = max_difference(_logits(_converted(case), size), _reference(case, size))
    assert difference <= allowed, f"{case} at {size}: logits differ by {difference:.3g} (allowed {allowed:.3g})"


@pytest.mark.slow  # ViT-S/14's 22 M seeded values take seconds; the default tier has the download test's parity
@pytest.mark.parametrize("change", [{"position_resize": "bicubic"}, {"patch_padding": "corner"}])
def test_timms_resize_or_corner_padding_fails_by_far(change):
    """At 95x95 (a 7x7 grid, the embedding resized; padded by 1 pixel before and 2 after): either difference is far
    outside the tolerance."""
    difference, allowed = max_difference(_logits(_converted("linear", **change), (95, 95)),
                                         _reference("linear", (95, 95)))
    assert difference > 20 * allowed, change


@lru_cache(maxsize=None)
def _meta_files() -> dict[str, bytes]:
    """The two files of the ViT-S/14 ADE20K linear entry as Meta publishes them: the backbone's state dict at the top
    level, the head's under ``state_dict`` with mmcv's ``meta``; seeded as the reference's."""
    import io

    def saved(obj) -> bytes:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    return {"dinov2_vits14/dinov2_vits14_pretrain.pth": saved(_backbone_state()),
            "dinov2_vits14/dinov2_vits14_ade20k_linear_head.pth": saved(
                {"meta": {"mmcv_version": "1.5.0", "iter": 40000}, "state_dict": _seeded(_layouts()["linear"])})}


def test_an_entry_downloads_both_files_converts_caches_and_matches_dinov2(tmp_path, monkeypatch):
    """pretrained=True fetches the backbone's file and the head's from the host (a local server standing in for
    dl.fbaipublicfiles.com), converts them into one model, caches it; offline the cache serves it."""
    from segzoo import create_model
    from support.file_server import FileServer

    monkeypatch.setenv("SEGZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FileServer() as server:
        monkeypatch.setenv("SEGZOO_DINOV2_URL", server.url)
        server.files.update(_meta_files())
        model = create_model("linear_probe_dinov2_vits14_ade20k", pretrained=True)
        assert sorted(server.requests) == sorted(_meta_files())
    difference, allowed = max_difference(_logits(model.eval(), (95, 95)), _reference("linear", (95, 95)))
    assert difference <= allowed
    record = json.loads(next((tmp_path / "cache").rglob("source.json")).read_text())
    assert record["backbone_file"] == "dinov2_vits14/dinov2_vits14_pretrain.pth"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = create_model("linear_probe_dinov2_vits14_ade20k", pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_a_missing_backbone_file_is_one_line_and_caches_nothing(tmp_path, monkeypatch):
    from segzoo import WeightsUnavailableError, create_model
    from support.file_server import FileServer

    monkeypatch.setenv("SEGZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FileServer() as server:
        monkeypatch.setenv("SEGZOO_DINOV2_URL", server.url)
        server.files.update({path: data for path, data in _meta_files().items() if "head" in path})
        with pytest.raises((WeightsUnavailableError, OSError), match="dinov2_vits14_pretrain.pth"):
            create_model("linear_probe_dinov2_vits14_ade20k", pretrained=True)
    assert not list((tmp_path / "cache").rglob("model.safetensors"))
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.suffix == ".pth"]


@pytest.mark.slow
def test_segzoo_convert_takes_the_backbone_file_beside_the_head_file(tmp_path):
    """``segzoo convert --from dinov2 --model NAME HEAD.pth OUT --backbone-weights PRETRAIN.pth``; without the
    backbone's file the head file alone is refused in one line naming it."""
    from segzoo import create_model
    from segzoo.tools.cli import main

    for path, data in _meta_files().items():
        (tmp_path / path.split("/")[-1]).write_bytes(data)
    head, pretrain = tmp_path / "dinov2_vits14_ade20k_linear_head.pth", tmp_path / "dinov2_vits14_pretrain.pth"
    assert main(["convert", "--from", "dinov2", "--model", ENTRIES["linear"], str(head), str(tmp_path / "out"),
                 "--backbone-weights", str(pretrain)]) == 0
    model = create_model(f"local-dir:{tmp_path / 'out'}")
    difference, allowed = max_difference(_logits(model.eval(), (95, 95)), _reference("linear", (95, 95)))
    assert difference <= allowed
    from segzoo import CheckpointError
    from segzoo.weights.convert import convert_file

    with pytest.raises(CheckpointError, match="holds the head only: give the backbone's weights too"):
        convert_file(head, tmp_path / "alone", ENTRIES["linear"], source="dinov2")
