"""pretrained=True from the upstreams' own files: downloaded from a local HTTP server, hash-checked, read with
torch.load(weights_only=True), converted with the heads' key rules, cached as safetensors, equal to the upstream's
own model. The entries under test are declared by a real plug-in distribution (their files are made here, so
their hashes are too); the real entries' facts are checked against torchvision's own weights enums."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision

import segzoo
from segzoo import CheckpointError, WeightsUnavailableError, create_model
from segzoo.testing import randomize_batch_norm
from segzoo.weights.convert import convert_state_dict
from support.file_server import FileServer
from support.reference_checkpoints import random_state

TORCHVISION_MODELS = {"fcn": torchvision.models.segmentation.fcn_resnet50,
                      "deeplabv3": torchvision.models.segmentation.deeplabv3_resnet50}
PLUGIN = """
from segzoo.heads.deeplabv3 import DeepLabV3Head
from segzoo.heads.fcn import FCNHead
from segzoo.heads.ocnet import OCNetHead
from segzoo.heads.pspnet import PSPHead
from segzoo.upstream import PretrainedSpec


class TvFCN(FCNHead):
    pretrained = tuple(PretrainedSpec.torchvision(name, "fcn", {fcn_backbone!r}, 60.5, 91.4, file)
                       for name, file in {fcn!r}.items())


class TvDeepLab(DeepLabV3Head):
    aliases = ()
    pretrained = (PretrainedSpec.torchvision("tvdeeplab_resnet50.tv_coco_voc", "deeplabv3", "resnet50", 66.4, 92.4,
                                             {deeplab!r}),)


class RefPSP(PSPHead):
    aliases = ()
    pretrained = (PretrainedSpec.reference("refpsp_resnet50s_jpu.ref_voc", "psp", "voc", 78.48,
                                           short_name="refpsp_resnet50_voc", drive_id="psp_jpu", backbone="resnet50s"),
                  PretrainedSpec.reference("refpsp_resnet50s_d8.ref_voc", "psp", "voc", 78.57, dilated=True,
                                           short_name="refpsp_resnet50_dilated_voc", drive_id="psp_d8",
                                           backbone="resnet50s"))


class RefOCNet(OCNetHead):
    pretrained = (PretrainedSpec.reference("refocnet_resnet50s_jpu.ref_voc", "ocnet_base", "voc", 79.07,
                                           short_name="refocnet_resnet50_voc", drive_id="ocnet_base_jpu",
                                           backbone="resnet50s"),)
"""
HEADS = {"tvfcn": "upstream_heads:TvFCN", "tvdeeplab": "upstream_heads:TvDeepLab", "refpsp": "upstream_heads:RefPSP",
         "refocnet": "upstream_heads:RefOCNet"}


def saved(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def published_name(stem: str, data: bytes) -> str:
    """torchvision's convention: the file name ends in the first 8 hex digits of the file's sha256."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"


@pytest.fixture(scope="module")
def torchvision_files():
    """torchvision's FCN and DeepLabV3 ResNet-50 (aux) with random weights and BatchNorm statistics, saved as
    torchvision publishes them (a plain state dict): {head: (model, file name, bytes)}."""
    files = {}
    for seed, (head, builder) in enumerate(TORCHVISION_MODELS.items()):
        torch.manual_seed(seed)
        model = builder(weights=None, weights_backbone=None, aux_loss=True, num_classes=21)
        model = randomize_batch_norm(model, seed=seed).eval()
        data = saved(model.state_dict())
        files[head] = (model, published_name(f"{head}_resnet50_coco", data), data)
    return files


class BadFiles:
    """Files that go wrong in every way a download can, each under a name with its own published hash."""

    def __init__(self, tmp_path):
        self.marker = tmp_path / "payload-ran"
        evil = saved({"state_dict": {}, "payload": _RunsCode(str(self.marker))})
        junk = os.urandom(4096)
        good = saved({"backbone.conv1.weight": torch.zeros(1)})
        self.cases = {  # case -> (file name, bytes served, server behaviour)
            "wrong_hash": ("wrong_hash-deadbeef.pth", junk, None),
            "truncated": (published_name("truncated", good), good, "truncate"),
            "not_a_checkpoint": (published_name("not_a_checkpoint", junk), junk, None),
            "runs_code": (published_name("runs_code", evil), evil, None),
            "missing": ("missing-00000000.pth", None, None),
        }

    def entries(self) -> dict[str, str]:
        return {f"tvfcn_resnet50.{case}": file for case, (file, _, _) in self.cases.items()}


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    """A file server standing in for download.pytorch.org and for a Google Drive mirror, and an empty cache."""
    monkeypatch.setenv("SEGZOO_CACHE", str(tmp_path / "segzoo-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FileServer() as server:
        monkeypatch.setenv("SEGZOO_TORCHVISION_URL", server.url)
        monkeypatch.setenv("SEGZOO_GDRIVE_URL", server.url + "/drive")
        yield server


def install_heads(make_plugin, fcn: dict[str, str], deeplab: str = "unused-00000000.pth", fcn_backbone="resnet50"):
    """The plug-in distribution declaring the entries under test; returns its site folder."""
    source = PLUGIN.format(fcn=fcn, deeplab=deeplab, fcn_backbone=fcn_backbone)
    return make_plugin("upstream-heads", "upstream_heads", textwrap.dedent(source), HEADS)


def cache_files(tmp_path, cache: str = "segzoo-cache") -> list[str]:
    root = tmp_path / cache
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_matches_torchvision(model, torchvision_model):
    """Equal outputs at two odd sizes: exactly the upstream's in the same memory format (a different format only
    rounds the convolutions differently)."""
    model = model.set_channels_last(False)
    for size in ((97, 131), (65, 79)):
        images = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        with torch.no_grad():
            torch.testing.assert_close(model(images), torchvision_model(images)["out"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("head", ["fcn", "deeplabv3"])
def test_torchvision_checkpoints_convert_exactly_and_are_cached(head, torchvision_files, upstream, make_plugin,
                                                                 tmp_path, monkeypatch):
    torchvision_model, file, data = torchvision_files[head]
    upstream.files[file] = data
    install_heads(make_plugin, fcn={"tvfcn_resnet50.tv_coco_voc": file}, deeplab=file)
    name = {"fcn": "tvfcn_resnet50.tv_coco_voc", "deeplabv3": "tvdeeplab_resnet50.tv_coco_voc"}[head]
    model = create_model(name, pretrained=True)
    assert upstream.requests == [file]
    assert model.config.align_corners is False and model.config.input_size == (520, 520)
    assert_matches_torchvision(model, torchvision_model)
    # only the converted tensors are kept, with where they came from (the config is always the entry's)
    assert cache_files(tmp_path) == [f"models/{name}/{f}" for f in ("model.safetensors", "source.json")]
    record = json.loads((tmp_path / "segzoo-cache" / "models" / name / "source.json").read_text())
    assert record["url"] == f"{upstream.url}/{file}" and record["file"] == file
    assert record["upstream_sha256"] == hashlib.sha256(data).hexdigest()
    assert record["segzoo_version"] == segzoo.__version__
    # the second call reads the cache: the server is gone, and offline mode is honoured
    upstream.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_matches_torchvision(create_model(name, pretrained=True), torchvision_model)


def test_real_torchvision_entries_are_torchvision_s_own_facts():
    """File names (with their sha256 prefixes), metrics, parameter counts and recipe, from torchvision's enums."""
    from torchvision.models import segmentation as tv

    enums = {"fcn_resnet50": tv.FCN_ResNet50_Weights, "fcn_resnet101": tv.FCN_ResNet101_Weights,
             "deeplabv3_resnet50": tv.DeepLabV3_ResNet50_Weights,
             "deeplabv3_resnet101": tv.DeepLabV3_ResNet101_Weights}
    for architecture, enum in enums.items():
        weights = enum.COCO_WITH_VOC_LABELS_V1
        entry = segzoo.get_pretrained(f"{architecture}.tv_coco_voc")
        assert entry.file.host == "torchvision" and weights.url.endswith("/" + entry.file.path)
        assert entry.file.sha256 == entry.file.path.rsplit("-", 1)[1][:8]
        reported = weights.meta["_metrics"]["COCO-val2017-VOC-labels"]
        assert (entry.metrics["mIoU"], entry.metrics["pixAcc"]) == (reported["miou"], reported["pixel_acc"])
        with torch.device("meta"):
            model = create_model(entry.name)
        assert sum(p.numel() for p in model.parameters()) == weights.meta["num_params"]
        assert entry.config.class_names[1:] == tuple(weights.meta["categories"][1:])
        assert weights.transforms().resize_size == [entry.config.input_size[0]]
        assert list(weights.transforms().mean) == list(entry.config.mean)


@pytest.fixture
def builds(monkeypatch):
    """Counts the SegmentationModels built with real tensors and those built as meta-device skeletons."""
    from segzoo.model import SegmentationModel

    counts = {"real": 0, "meta": 0}
    original = SegmentationModel.__init__

    def counting(self, *args, **kwargs):
        original(self, *args, **kwargs)
        counts["meta" if next(self.parameters()).is_meta else "real"] += 1

    monkeypatch.setattr(SegmentationModel, "__init__", counting)
    return counts


def test_the_first_fetch_builds_the_model_once(torchvision_files, upstream, make_plugin, builds):
    """Download, conversion and caching build no model (the converter lays keys out on a meta-device skeleton);
    create_model builds it once, on the first call as on the cached ones."""
    torchvision_model, file, data = torchvision_files["fcn"]
    upstream.files[file] = data
    install_heads(make_plugin, fcn={"tvfcn_resnet50.tv_coco_voc": file})
    create_model("tvfcn_resnet50.tv_coco_voc", pretrained=True)
    assert builds == {"real": 1, "meta": 1} and upstream.requests == [file]
    assert_matches_torchvision(create_model("tvfcn_resnet50.tv_coco_voc", pretrained=True), torchvision_model)
    assert builds == {"real": 2, "meta": 1} and upstream.requests == [file]


def test_a_corrected_recipe_reaches_a_filled_cache(torchvision_files, upstream, make_plugin, monkeypatch):
    """A new release that corrects an entry's recipe (here its evaluation size and test-time resize) reaches a user
    whose cache already holds the weights: the config is the entry's, never a cached copy. A new file is fetched
    anew."""
    import dataclasses

    torchvision_model, file, data = torchvision_files["fcn"]
    upstream.files[file] = data
    install_heads(make_plugin, fcn={"tvfcn_resnet50.tv_coco_voc": file})
    first = create_model("tvfcn_resnet50.tv_coco_voc", pretrained=True)
    head = sys.modules["upstream_heads"].TvFCN
    corrected = dataclasses.replace(head.pretrained[0], input_size=(480, 640),
                                    inference={"resize": (640, 480), "mode": "whole"})
    monkeypatch.setattr(head, "pretrained", (corrected,))
    segzoo.refresh_heads()  # what a new segzoo release is to the zoo table
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = create_model("tvfcn_resnet50.tv_coco_voc", pretrained=True)
    assert first.config.input_size == (520, 520) and first.config.inference == {}
    assert again.config.input_size == (480, 640) and again.config.inference == {"resize": (640, 480), "mode": "whole"}
    assert_matches_torchvision(again, torchvision_model)
    assert upstream.requests == [file]  # from the cache
    # an entry pointing at another file is another conversion: the cached one is not used for it
    moved = dataclasses.replace(corrected, file=dataclasses.replace(corrected.file, path="moved-" + file))
    monkeypatch.setattr(head, "pretrained", (moved,))
    segzoo.refresh_heads()
    with pytest.raises(WeightsUnavailableError, match="not in segzoo's cache"):
        create_model("tvfcn_resnet50.tv_coco_voc", pretrained=True)


def test_bad_downloads_are_one_line_errors_and_leave_nothing(upstream, make_plugin, tmp_path, monkeypatch):
    bad = BadFiles(tmp_path)
    for file, data, behaviour in bad.cases.values():
        if data is not None:
            upstream.files[file] = data
        if behaviour:
            upstream.behaviour[file] = behaviour
    install_heads(make_plugin, fcn=bad.entries())
    expected = {
        "wrong_hash": (CheckpointError, r"wrong_hash: .* has sha256 [0-9a-f]{64}, not the published deadbeef"),
        "truncated": (CheckpointError, r"the download from http://127.0.0.1:\d+/truncated-\w+\.pth "
                                       r"(ended after \d+ of \d+ bytes|broke off after \d+ bytes)"),
        "not_a_checkpoint": (CheckpointError, r"is not a (readable )?PyTorch checkpoint"),  # random bytes
        "runs_code": (CheckpointError, r"is not a plain state dict: torch.load\(weights_only=True\) refuses it"),
        "missing": (WeightsUnavailableError, r"answered HTTP 404"),
    }
    for case, (error, message) in expected.items():
        with pytest.raises(error, match=message) as info:
            create_model(f"tvfcn_resnet50.{case}", pretrained=True)
        assert "\n" not in str(info.value) and "weights_only=False" not in str(info.value), case
        assert not cache_files(tmp_path), (case, cache_files(tmp_path))  # nothing half-written, nothing kept
    assert not bad.marker.exists()  # the pickled payload never ran


def test_unreachable_host_and_server_dying_mid_download(upstream, make_plugin, tmp_path, monkeypatch):
    data = saved({"backbone.conv1.weight": torch.zeros(50_000)})
    file = published_name("dies", data)
    upstream.files[file], upstream.behaviour[file] = data, "die"
    install_heads(make_plugin, fcn={"tvfcn_resnet50.dies": file})
    with pytest.raises(CheckpointError, match=r"tvfcn_resnet50.dies: the download from .* (broke off|ended after)"):
        create_model("tvfcn_resnet50.dies", pretrained=True)
    assert not cache_files(tmp_path)
    # the server is gone now: nothing listens at its address
    with pytest.raises(WeightsUnavailableError, match=r"tvfcn_resnet50.dies: cannot reach http://127.0.0.1:\d+/dies-"):
        create_model("tvfcn_resnet50.dies", pretrained=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"not in segzoo's cache .* downloads are off"):
        create_model("tvfcn_resnet50.dies", pretrained=True)


def _nothing_listening() -> str:
    """A local address where no server listens: a connection is refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("where", ["unresolvable host", "nothing listening"])
def test_an_unreachable_upstream_fails_at_once_and_says_how_to_get_the_weights(where, tmp_path, monkeypatch):
    """No network: one attempt, and the error says how to get the file another way (it said only 'cannot reach')."""
    import time

    from segzoo.upstreams.http import http_download

    base = "http://nonexistent.invalid/models" if where == "unresolvable host" else _nothing_listening()
    monkeypatch.setenv("SEGZOO_TORCHVISION_URL", base)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as raised:
        create_model("fcn_resnet50.tv_coco_voc", pretrained=True)
    assert time.perf_counter() - start < 10  # no retry back-off
    message = str(raised.value)
    assert "\n" not in message
    expected = (rf"fcn_resnet50.tv_coco_voc: cannot reach {re.escape(base)}/fcn_resnet50_coco-\w+\.pth \(.+\); "
                r"to get the weights without it, download it on a machine that can reach it, run `segzoo convert "
                r"--from torchvision --model fcn_resnet50.tv_coco_voc FILE DIR` and load local-dir:DIR \(or set "
                r"SEGZOO_TORCHVISION_URL to a mirror that serves fcn_resnet50_coco-\w+\.pth\)$")
    assert re.search(expected, message), message
    # http_download on its own: the same one attempt, a general way out
    with pytest.raises(WeightsUnavailableError, match=r"x: cannot reach .*; to get the weights without it, download "
                                                      r"the file on a machine that can reach it, run `segzoo "
                                                      r"convert FILE DIR` and load local-dir:DIR$"):
        http_download(f"{base}/x.pth", tmp_path / "x.pth", "x", progress=False)
    assert not (tmp_path / "x.pth").exists()


def test_a_corrupt_cache_entry_is_rebuilt_never_used(torchvision_files, upstream, make_plugin, tmp_path,
                                                      monkeypatch):
    torchvision_model, file, data = torchvision_files["fcn"]
    upstream.files[file] = data
    install_heads(make_plugin, fcn={"tvfcn_resnet50.tv_coco_voc": file})
    create_model("tvfcn_resnet50.tv_coco_voc", pretrained=True)
    weights = tmp_path / "segzoo-cache" / "models" / "tvfcn_resnet50.tv_coco_voc" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped bit in a weight: safetensors itself would load it
    weights.write_bytes(bytes(blob))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="not in segzoo's cache"):
        create_model("tvfcn_resnet50.tv_coco_voc", pretrained=True)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert_matches_torchvision(create_model("tvfcn_resnet50.tv_coco_voc", pretrained=True), torchvision_model)
    assert upstream.requests == [file, file]  # rebuilt from the upstream file


def test_pull_command_fetches_a_zoo_model_into_the_cache(torchvision_files, upstream, make_plugin, tmp_path,
                                                        capsys):
    from segzoo.tools.cli import main

    torchvision_model, file, data = torchvision_files["fcn"]
    upstream.files[file] = data
    install_heads(make_plugin, fcn={"tvfcn_resnet50.tv_coco_voc": file})
    assert main(["pull", "tvfcn_resnet50.tv_coco_voc", "--to", str(tmp_path / "copy")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "copy")
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["config.json", "model.safetensors"]
    assert_matches_torchvision(create_model(f"local-dir:{tmp_path / 'copy'}"), torchvision_model)
    assert main(["pull", "tvfcn_resnet50.tv_coco_voc"]) == 0  # already cached: prints where, downloads nothing
    assert capsys.readouterr().out.strip().endswith("models/tvfcn_resnet50.tv_coco_voc")
    assert upstream.requests == [file]
    assert main(["pull", "ccnet_resnet101_voc"]) == 1
    assert "has no trained weights anywhere" in capsys.readouterr().err


@pytest.mark.parametrize("kind, short_name", [
    ("psp_jpu", "refpsp_resnet50_voc"), ("ocnet_base_jpu", "refocnet_resnet50_voc"),
    pytest.param("psp_d8", "refpsp_resnet50_dilated_voc", marks=pytest.mark.slow)])
def test_reference_checkpoints_from_a_drive_mirror_convert_as_segzoo_convert_does(kind, short_name, upstream,
                                                                                   make_plugin):
    """The reference key layouts (random weights over the real checkpoints' key lists), through the source
    mechanism: a Google Drive mirror serves them by Drive id."""
    state = random_state(kind)
    upstream.files[f"drive/{kind}"] = saved(state)
    install_heads(make_plugin, fcn={})
    model = create_model(short_name, pretrained=True)
    config, converted = convert_state_dict(state, kind)
    assert model.config.replace(provenance={}) == segzoo.get_pretrained(short_name).config
    assert all(torch.equal(value, converted[key]) for key, value in model.state_dict().items())
    assert upstream.requests == [f"drive/{kind}"]


def test_convert_command_takes_torchvision_files(torchvision_files, tmp_path):
    from segzoo.tools.cli import main

    torchvision_model, file, data = torchvision_files["deeplabv3"]
    (tmp_path / file).write_bytes(data)
    assert main(["convert", str(tmp_path / file), str(tmp_path / "inferred"), "--from", "torchvision"]) == 0
    inferred = create_model(f"local-dir:{tmp_path / 'inferred'}")
    config = inferred.config
    assert (config.head, config.backbone, config.num_classes) == ("deeplabv3", "resnet50", 21)
    assert_matches_torchvision(inferred, torchvision_model)
    assert main(["convert", str(tmp_path / file), str(tmp_path / "entry"), "--from", "torchvision",
                 "--model", "deeplabv3_resnet50.tv_coco_voc"]) == 0
    entry = create_model(f"local-dir:{tmp_path / 'entry'}")
    assert entry.config.replace(provenance={}) == segzoo.get_pretrained("deeplabv3_resnet50.tv_coco_voc").config


def test_mirror_command_publishes_the_zoo_then_pretrained_pulls_the_mirror(torchvision_files, upstream, make_plugin,
                                                                           hub_server, hub_env, tmp_path, monkeypatch):
    """maintainers.mirror_zoo: fetch, convert, push with the card, record in the manifest; then a fresh machine (empty
    cache, upstream unreachable) gets the model from the Hub mirror."""
    from maintainers.mirror_zoo import mirror, mirrorable

    torchvision_model, file, data = torchvision_files["fcn"]
    upstream.files[file] = data
    install_heads(make_plugin, fcn={"tvfcn_resnet50.tv_coco_voc": file})
    name, manifest = "tvfcn_resnet50.tv_coco_voc", tmp_path / "published.json"
    assert name in mirrorable(["tvfcn_*"]) and "ccnet_resnet101s_jpu.ref_voc" not in mirrorable()
    record = mirror(name, organisation="alice", endpoint=hub_server.endpoint, token="hf_test_alice",
                    manifest=manifest)
    repo = f"alice/{name}"
    assert record["repo_id"] == repo and len(record["revision"]) == 40
    pushed = hub_server.file_bytes(repo, "model.safetensors")
    assert record["sha256"] == hashlib.sha256(pushed).hexdigest()
    card = hub_server.file_bytes(repo, "README.md").decode()
    assert "license: bsd-3-clause" in card and "base_model: timm/resnet50.tv_in1k" in card
    assert f"Converted by segzoo, key by key, from the torchvision checkpoint `{file}`" in card
    assert "mean_iou" in card and "60.5" in card

    upstream.stop()
    monkeypatch.setenv("SEGZOO_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.setenv("SEGZOO_MANIFEST", str(manifest))
    entry = segzoo.get_pretrained(name)
    assert entry.published and entry.hf_hub_id == repo
    pulled = create_model(name, pretrained=True, endpoint=hub_server.endpoint, token="hf_test_alice")
    assert_matches_torchvision(pulled, torchvision_model)
    assert not cache_files(tmp_path, "fresh-cache")  # nothing came through segzoo's upstream cache


DDP_SCRIPT = """
import torch.distributed as dist, segzoo
dist.init_process_group("gloo")
model = segzoo.create_model("tvfcn_resnet18.ddp", pretrained=True)
print(f"rank {dist.get_rank()} {float(sum(p.double().sum() for p in model.state_dict().values())):.6f}", flush=True)
dist.destroy_process_group()
"""
# segzoo's FCN keys -> torchvision's, to write a torchvision-layout file of a small model
_TO_TORCHVISION = {"head.fcn.block.conv": "classifier.0", "head.fcn.block.bn": "classifier.1",
                   "head.fcn.classifier": "classifier.4", "aux_head.block.conv": "aux_classifier.0",
                   "aux_head.block.bn": "aux_classifier.1", "aux_head.classifier": "aux_classifier.4"}


# rank0_first itself runs under torchrun in the default run: tests/weights/test_hub_push_pull.py (DDP download)
@pytest.mark.slow
def test_ddp_rank_0_downloads_and_converts_the_others_read_the_cache(upstream, make_plugin, tmp_path):
    from support.scripts import free_port, script_env

    model = randomize_batch_norm(create_model("fcn_resnet18", aux=True))
    state = {}
    for key, value in model.state_dict().items():
        prefix = next((p for p in _TO_TORCHVISION if key.startswith(p + ".")), None)
        state[_TO_TORCHVISION[prefix] + key[len(prefix):] if prefix else key] = value
    data = saved(state)
    file = published_name("fcn_resnet18_coco", data)
    upstream.files[file] = data
    site = install_heads(make_plugin, fcn={"tvfcn_resnet18.ddp": file}, fcn_backbone="resnet18")
    script = tmp_path / "ddp_pretrained.py"
    script.write_text(DDP_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", str(script)]
    env = {**script_env(nproc=2), "PYTHONPATH": str(site)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    sums = {line.split()[2] for line in result.stdout.splitlines() if line.startswith("rank ")}
    assert len(sums) == 1 and upstream.requests == [file]  # one download, both ranks the same weights
