"""Push and pull through the real huggingface_hub client against the test suite's own Hub server."""
import json
import os
import signal
import socket
import subprocess
import sys
import warnings

import pytest
import torch
from huggingface_hub import HfApi

import segzoo
from segzoo import CheckpointError, WeightsUnavailableError, create_model, push_to_hub

ALICE, BOB = "hf_test_alice", "hf_test_bob"


def tiny_model(seed: int = 0, num_classes: int = 3):
    torch.manual_seed(seed)
    model = create_model("fcn_resnet18", num_classes=num_classes, aux=True)
    with torch.no_grad():  # statistics away from their defaults, so a lost buffer would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
    return model


def pull(server, name, **kwargs):
    return create_model(f"hf-hub:{name}", endpoint=server.endpoint, **kwargs)


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_push_then_pull_is_bit_identical(hub_server, hub_env, images):
    model = tiny_model()
    url = push_to_hub(model, "alice/tiny", token=ALICE, endpoint=hub_server.endpoint)
    assert url.startswith(f"{hub_server.endpoint}/alice/tiny/commit/")
    pulled = pull(hub_server, "alice/tiny", token=ALICE)
    assert_same_weights(model, pulled)
    assert torch.equal(model(images), pulled(images))
    assert pulled.config.provenance["segzoo_version"] == segzoo.__version__
    files = set(HfApi(endpoint=hub_server.endpoint, token=ALICE).list_repo_files("alice/tiny"))
    assert files - {".gitattributes"} == {"README.md", "config.json", "model.safetensors"}  # as the Hub, it adds one


def test_weights_over_10_mb_take_the_lfs_path(hub_server, hub_env):
    model = tiny_model()
    push_to_hub(model, "alice/lfs", token=ALICE, endpoint=hub_server.endpoint)
    entry = {e.path: e for e in HfApi(endpoint=hub_server.endpoint, token=ALICE).list_repo_tree("alice/lfs")}
    weights = entry["model.safetensors"]
    assert weights.size > 10 * 2**20 and weights.lfs is not None
    assert any("/info/lfs/objects/batch" in path for _, path in hub_server.request_log)


def test_repush_without_change_makes_no_commit(hub_server, hub_env):
    model = tiny_model()
    api = HfApi(endpoint=hub_server.endpoint, token=ALICE)
    first = push_to_hub(model, "alice/same", token=ALICE, endpoint=hub_server.endpoint)
    commits = len(api.list_repo_commits("alice/same"))
    again = push_to_hub(model, "alice/same", token=ALICE, endpoint=hub_server.endpoint)
    assert again == first and len(api.list_repo_commits("alice/same")) == commits


def test_tags_branches_and_pinned_commits(hub_server, hub_env):
    api = HfApi(endpoint=hub_server.endpoint, token=ALICE)
    v1, v2, dev = tiny_model(1), tiny_model(2), tiny_model(3)
    first = push_to_hub(v1, "alice/versions", token=ALICE, endpoint=hub_server.endpoint)
    api.create_tag("alice/versions", tag="v1")
    push_to_hub(v2, "alice/versions", token=ALICE, endpoint=hub_server.endpoint)
    push_to_hub(dev, "alice/versions", revision="dev", token=ALICE, endpoint=hub_server.endpoint)
    assert_same_weights(pull(hub_server, "alice/versions@v1", token=ALICE), v1)
    assert_same_weights(pull(hub_server, "alice/versions", token=ALICE), v2)
    assert_same_weights(pull(hub_server, "alice/versions@dev", token=ALICE), dev)
    assert_same_weights(pull(hub_server, "alice/versions", revision="dev", token=ALICE), dev)
    sha = first.rsplit("/", 1)[-1]
    assert len(sha) == 40
    assert_same_weights(pull(hub_server, f"alice/versions@{sha}", token=ALICE), v1)


def test_private_repo_needs_its_owners_token(hub_server, hub_env):
    model = tiny_model()
    push_to_hub(model, "alice/secret", private=True, token=ALICE, endpoint=hub_server.endpoint)
    with pytest.raises(WeightsUnavailableError, match=r"Hub repo alice/secret not found .*private"):
        pull(hub_server, "alice/secret")
    with pytest.raises(WeightsUnavailableError, match=r"Hub repo alice/secret not found"):
        pull(hub_server, "alice/secret", token=BOB)
    assert_same_weights(pull(hub_server, "alice/secret", token=ALICE), model)


def test_missing_repo_revision_and_file_are_clear_errors(hub_server, hub_env, tmp_path):
    push_to_hub(tiny_model(), "alice/exists", token=ALICE, endpoint=hub_server.endpoint)
    with pytest.raises(WeightsUnavailableError, match=r"Hub repo alice/nothing not found"):
        pull(hub_server, "alice/nothing", token=ALICE)
    with pytest.raises(WeightsUnavailableError, match=r"revision 'v9' not found in Hub repo alice/exists"):
        pull(hub_server, "alice/exists@v9", token=ALICE)
    api = HfApi(endpoint=hub_server.endpoint, token=ALICE)
    api.create_repo("alice/not-a-model")
    (tmp_path / "notes.txt").write_text("hello")
    api.upload_file(path_or_fileobj=str(tmp_path / "notes.txt"), path_in_repo="notes.txt", repo_id="alice/not-a-model")
    with pytest.raises(WeightsUnavailableError, match=r"alice/not-a-model has no config.json: not a segzoo model"):
        pull(hub_server, "alice/not-a-model", token=ALICE)


@pytest.mark.parametrize("damage", ["altered", "truncated"])
def test_corrupted_download_is_detected(hub_server, hub_env, damage):
    push_to_hub(tiny_model(), "alice/fragile", token=ALICE, endpoint=hub_server.endpoint)
    data = bytearray(hub_server.file_bytes("alice/fragile", "model.safetensors"))
    if damage == "altered":
        data[-1000] ^= 0xFF
        hub_server.tamper("alice/fragile", "model.safetensors", data=bytes(data))
    else:
        hub_server.tamper("alice/fragile", "model.safetensors", truncate_to=len(data) // 2)
    with pytest.raises(CheckpointError, match=r"model.safetensors"):
        pull(hub_server, "alice/fragile", token=ALICE)


def test_finetune_from_a_pulled_checkpoint(hub_server, hub_env):
    model = tiny_model()
    push_to_hub(model, "alice/base", token=ALICE, endpoint=hub_server.endpoint)
    with pytest.warns(UserWarning, match="another number of classes: re-initialised head.fcn.classifier.weight"):
        tuned = pull(hub_server, "alice/base", token=ALICE, num_classes=7)
    assert tuned.num_classes == 7
    for key, value in tuned.state_dict().items():
        if key not in tuned.classifier_keys():
            assert torch.equal(value, model.state_dict()[key]), key


def test_model_card(hub_server, hub_env, tmp_path):
    push_to_hub(tiny_model(), "alice/card", token=ALICE, endpoint=hub_server.endpoint,
                card_data={"license": "mit", "metrics": {"mIoU": 12.5}, "dataset": "voc"})
    card = (tmp_path / "README.md")
    card.write_bytes(hub_server.file_bytes("alice/card", "README.md"))
    from huggingface_hub import ModelCard

    loaded = ModelCard.load(card)
    assert loaded.data.library_name == "segzoo" and loaded.data.pipeline_tag == "image-segmentation"
    assert loaded.data.license == "mit" and loaded.data.datasets == ["pascal-voc-2012"]
    assert loaded.data.eval_results[0].metric_value == 12.5
    assert 'segzoo.create_model("hf-hub:alice/card")' in loaded.text
    assert "@inproceedings{long2015fcn" in loaded.text


OFFLINE_SCRIPT = """
import sys, torch, segzoo
model = segzoo.create_model("hf-hub:alice/offline", token="hf_test_alice", endpoint=sys.argv[1])
torch.manual_seed(0)
print(repr(model(torch.randn(1, 3, 32, 32)).sum().item()))
"""


def test_offline_after_the_server_is_stopped(hub_server, hub_env):
    model = tiny_model()
    push_to_hub(model, "alice/offline", token=ALICE, endpoint=hub_server.endpoint)
    pull(hub_server, "alice/offline", token=ALICE)  # fills the cache
    torch.manual_seed(0)
    expected = repr(model(torch.randn(1, 3, 32, 32)).sum().item())
    endpoint = hub_server.endpoint
    hub_server.stop()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, endpoint], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
    with pytest.raises(WeightsUnavailableError, match=r"not in the local cache"):
        create_model("hf-hub:alice/never-pulled", endpoint=endpoint, local_files_only=True)


def test_zoo_name_pulls_the_published_revision(hub_server, hub_env, tmp_path, monkeypatch):
    from maintainers.publish_model import publish

    model = create_model("bisenet_resnet18_voc")
    segzoo.save_pretrained(model, tmp_path / "converted")
    manifest = tmp_path / "published.json"
    record = publish(str(tmp_path / "converted"), "bisenet_resnet18_voc", {"mIoU": 66.9, "pixAcc": 92.1},
                     repo_id="alice/bisenet", endpoint=hub_server.endpoint, token=ALICE, manifest=manifest)
    assert json.loads(manifest.read_text())["bisenet_resnet18.ref_voc"] == record  # the zoo name, not the short one
    assert len(record["revision"]) == 40 and len(record["sha256"]) == 64
    # A later push to main must not change what the zoo name pulls: the revision is pinned.
    push_to_hub(tiny_model(), "alice/bisenet", token=ALICE, endpoint=hub_server.endpoint)
    monkeypatch.setenv("SEGZOO_MANIFEST", str(manifest))
    entry = segzoo.get_pretrained("bisenet_resnet18_voc")
    assert entry.published and entry.metrics["mIoU"] == 66.9
    pulled = create_model("bisenet_resnet18_voc", pretrained=True, endpoint=hub_server.endpoint, token=ALICE)
    assert_same_weights(pulled, model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the zoo's own classes: nothing re-initialised
        create_model("bisenet_resnet18_voc", pretrained=True, endpoint=hub_server.endpoint, token=ALICE)


def test_published_sha256_is_checked(hub_server, hub_env, tmp_path, monkeypatch):
    push_to_hub(create_model("bisenet_resnet18_voc"), "alice/bisenet2", token=ALICE, endpoint=hub_server.endpoint)
    sha = HfApi(endpoint=hub_server.endpoint, token=ALICE).model_info("alice/bisenet2").sha
    manifest = tmp_path / "published.json"
    manifest.write_text(json.dumps({"bisenet_resnet18_voc": {"repo_id": "alice/bisenet2", "revision": sha,
                                                             "sha256": "0" * 64, "metrics": {}}}))
    monkeypatch.setenv("SEGZOO_MANIFEST", str(manifest))
    with pytest.raises(CheckpointError, match=r"model.safetensors .* does not have the published sha256 0000"):
        create_model("bisenet_resnet18_voc", pretrained=True, endpoint=hub_server.endpoint, token=ALICE)


def test_cli_push_and_pull(hub_server, hub_env, tmp_path):
    segzoo.save_pretrained(tiny_model(), tmp_path / "model")
    common = ["--token", ALICE, "--endpoint", hub_server.endpoint]
    push = subprocess.run([sys.executable, "-m", "segzoo", "push", str(tmp_path / "model"), "alice/cli", *common],
                          capture_output=True, text=True)
    assert push.returncode == 0, push.stderr
    assert push.stdout.strip().startswith(f"{hub_server.endpoint}/alice/cli/commit/")
    pulled = subprocess.run([sys.executable, "-m", "segzoo", "pull", "alice/cli", "--to", str(tmp_path / "copy"),
                             *common], capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "copy" / name).read_bytes() == (tmp_path / "model" / name).read_bytes()
    missing = subprocess.run([sys.executable, "-m", "segzoo", "pull", "alice/none", *common],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "error: Hub repo alice/none not found" in missing.stderr


DDP_SCRIPT = """
import os, sys, torch.distributed as dist, segzoo
dist.init_process_group("gloo")
path = segzoo.download_model_files("alice/ddp", token="hf_test_alice", endpoint=sys.argv[1])
print(f"rank {dist.get_rank()} {path}", flush=True)
dist.destroy_process_group()
"""


def test_ddp_ranks_download_once(hub_server, hub_env, tmp_path):
    """Two real torchrun processes (gloo): rank 0 downloads, rank 1 waits and reads the cache."""
    push_to_hub(tiny_model(), "alice/ddp", token=ALICE, endpoint=hub_server.endpoint)
    script = tmp_path / "ddp_pull.py"
    script.write_text(DDP_SCRIPT)
    hub_server.request_log.clear()
    with socket.socket() as probe:  # torchrun's --master_port=0 hangs in init_process_group: pick a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={port}", str(script), hub_server.endpoint]
    # Own process group, so that a hang cannot leave worker processes behind.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr[-3000:]
    paths = {line.split(" ", 2)[2] for line in stdout.splitlines() if line.startswith("rank ")}
    assert len(paths) == 1  # both ranks read the same snapshot
    weight_gets = [p for m, p in hub_server.request_log if m == "GET" and p.endswith("/model.safetensors")]
    assert len(weight_gets) == 1


def test_cache_dir_and_hf_endpoint_read_at_call_time(hub_server, hub_env, tmp_path, monkeypatch):
    model = tiny_model()
    push_to_hub(model, "alice/where", token=ALICE, endpoint=hub_server.endpoint)
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)  # set after huggingface_hub was imported
    pulled = create_model("hf-hub:alice/where", token=ALICE, cache_dir=str(tmp_path / "my-cache"))
    assert_same_weights(pulled, model)
    assert (tmp_path / "my-cache" / "models--alice--where" / "snapshots").is_dir()
