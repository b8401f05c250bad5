"""pretrained=True for mmsegmentation's zoo entries, end to end: an mmseg-layout checkpoint (``meta``,
``state_dict`` and optimizer state, as mmseg saves them) downloaded from a local server standing in for
download.openmmlab.com, hash-checked, read with torch.load(weights_only=True), converted with the head's mmseg key
rules, cached as safetensors, and reproducing mmsegmentation's own outputs.

The entries are made by segzoo's own generator (``segzoo.upstreams.mmseg.mmseg_spec``) from real records of mmseg's
zoo, declared by a plug-in distribution whose heads subclass the built-in ones: only the file (made here from the
reference key layout, so its hash is known) differs from the real entry."""
from __future__ import annotations

import hashlib
import io
import json
import textwrap

import pytest
import torch

import segzoo
from segzoo import create_model
from segzoo.upstreams.mmseg import BASE_URL, records
from support.file_server import FileServer
from support.mmseg_reference import max_difference, reference_outputs, seeded_state_dict

# (plug-in head, built-in class, mmseg record name, reference model of tests/reference_data/mmseg with that key layout)
CASES = {
    "mmfcn": ("segzoo.heads.fcn:FCNHead", "fcn_r18-d8_4xb2-80k_cityscapes-512x1024",
              "fcn_r18-d8_4xb2-80k_cityscapes-512x1024"),
    "mmpspnet": ("segzoo.heads.pspnet:PSPHead", "pspnet_r18b-d8_4xb2-80k_cityscapes-512x1024",
                 "pspnet_r18b-d8_4xb2-80k_cityscapes-512x1024"),
    "mmdeeplabv3": ("segzoo.heads.deeplabv3:DeepLabV3Head", "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024",
                    "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024"),
    "mmdanet": ("segzoo.heads.danet:DANetHead", "danet_r50-d8_4xb2-40k_cityscapes-512x1024",
                "danet_r50-d8_4xb2-40k_cityscapes-512x1024"),
    "mmccnet": ("segzoo.heads.ccnet:CCNetHead", "ccnet_r50-d8_4xb2-40k_cityscapes-512x1024",
                "ccnet_r50-d8_4xb2-40k_cityscapes-512x1024"),
}
PLUGIN = """
import importlib

from segzoo.upstreams.mmseg import mmseg_spec


def _head(target, name, record):
    module, cls = target.split(":")
    base = getattr(importlib.import_module(module), cls)
    spec, why = mmseg_spec(record, name, base, usual_crop="512x1024")
    assert spec is not None, why
    return type(name, (base,), {{"aliases": (), "pretrained": (spec,)}})


RECORDS = {records!r}
TARGETS = {targets!r}
HEADS = {{name: _head(TARGETS[name], name, record) for name, record in RECORDS.items()}}
{assignments}
"""


def _mmseg_file(reference_name: str) -> bytes:
    """An mmseg checkpoint as mmcv's save_checkpoint writes it: meta (primitives), state_dict, optimizer."""
    state = seeded_state_dict(reference_name)
    buffer = io.BytesIO()
    torch.save({"meta": {"mmcv_version": "1.3.0", "CLASSES": ["road", "sidewalk"], "PALETTE": [[128, 64, 128]],
                         "config": "model = dict(type='EncoderDecoder')", "epoch": 1, "iter": 40000,
                         "hook_msgs": {"last_ckpt": "work_dirs/iter_40000.pth"}},
                "state_dict": state,
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}}, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mmseg_files():
    """{plug-in head: (record with the test file's URL, file path on the server, bytes)}."""
    records_by_name = {record["name"]: record for record in records()}
    files = {}
    for head, (_, record_name, reference) in CASES.items():
        data = _mmseg_file(reference)
        stem = record_name.replace("-", "_")
        path = f"v0.5/test/{stem}/{stem}_20200101_000000-{hashlib.sha256(data).hexdigest()[:8]}.pth"
        record = json.loads(json.dumps(records_by_name[record_name]))
        record["weights"] = BASE_URL + path
        files[head] = (record, path, data)
    return files


def install(make_plugin, files):
    records = {head: record for head, (record, _, _) in files.items()}
    targets = {head: CASES[head][0] for head in files}
    assignments = "\n".join(f"{head.upper()} = HEADS[{head!r}]" for head in files)
    source = PLUGIN.format(records=records, targets=targets, assignments=assignments)
    make_plugin("mmseg-heads", "mmseg_heads", textwrap.dedent(source),
                {head: f"mmseg_heads:{head.upper()}" for head in files})


# The ResNet-18 files run by default; the three ResNet-50 ones (100-200 MB each) with `pytest -m slow`.
@pytest.mark.parametrize("head", [pytest.param(head, marks=() if head in ("mmfcn", "mmpspnet") else pytest.mark.slow)
                                  for head in sorted(CASES)])
def test_an_mmseg_entry_downloads_converts_caches_and_matches_mmseg(head, mmseg_files, make_plugin, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("SEGZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    install(make_plugin, {head: mmseg_files[head]})
    record, path, data = mmseg_files[head]
    name = [n for n in segzoo.list_pretrained(f"{head}_*")][0]
    with FileServer() as server:
        monkeypatch.setenv("SEGZOO_OPENMMLAB_URL", server.url)
        server.files[path] = data
        model = create_model(name, pretrained=True)
        assert server.requests == [path]
    reference = CASES[head][2]
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(reference_outputs()["input"]))
    difference, allowed = max_difference(logits, reference_outputs()[f"{reference}/logits"])
    assert difference <= allowed
    # the recipe came with it: mmseg's classes and palette, its align_corners; the server is gone, the cache serves
    assert model.config.class_names[:2] == ("road", "sidewalk") and model.config.palette[0] == (128, 64, 128)
    assert model.config.align_corners is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = create_model(name, pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
