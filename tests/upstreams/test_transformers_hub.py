"""``hf-hub:`` names of transformers repos, over the Hub's own protocol (the local Hub-compatible server of
tests/hub_test_server, the real huggingface_hub client): a repo is recognised by its config.json, its safetensors
pulled, converted once and cached, and read offline afterwards; a repo with pickled weights only is refused."""
import json

import pytest
import torch
from huggingface_hub import HfApi
from safetensors.torch import save_file

from segzoo import create_model
from segzoo.errors import CheckpointError
from segzoo.weights import sources
from support.mmseg_reference import max_difference
from support.transformers_reference import SIZES, hf_config, reference_logits, seeded_input, seeded_state_dict

ALICE = "hf_test_alice"


def _upload(server, tmp_path, repo, files):
    api = HfApi(endpoint=server.endpoint, token=ALICE)
    api.create_repo(repo)
    folder = tmp_path / repo.replace("/", "_")
    folder.mkdir()
    for name, write in files.items():
        write(folder / name)
    api.upload_folder(repo_id=repo, folder_path=folder)


def test_a_transformers_repo_is_converted_once_and_read_offline(hub_server, hub_env, tmp_path, monkeypatch):
    config = dict(hf_config("swin_window7"), id2label={"0": "wall", "1": "sky", "2": "floor"})
    state = {key: value.contiguous() for key, value in seeded_state_dict("swin_window7").items()}
    _upload(hub_server, tmp_path, "alice/upernet-swin-mini", {
        "config.json": lambda path: path.write_text(json.dumps(config)),
        "model.safetensors": lambda path: save_file(state, path)})
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)
    model = create_model("hf-hub:alice/upernet-swin-mini")
    assert model.config.class_names == ("wall", "sky", "floor") and model.config.backbone.startswith("swin_")
    with torch.no_grad():
        logits = model(seeded_input("swin_window7", SIZES[0]))[..., ::4, ::4]
    difference, allowed = max_difference(logits, reference_logits("swin_window7", SIZES[0]))
    assert difference <= allowed

    # offline, and without converting again: the cached conversion is read
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(sources, "convert_upstream", lambda *a, **k: pytest.fail("converted twice"))
    again = create_model("hf-hub:alice/upernet-swin-mini")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_a_repo_with_pickled_weights_only_is_refused(hub_server, hub_env, tmp_path, monkeypatch):
    _upload(hub_server, tmp_path, "alice/upernet-pickled", {
        "config.json": lambda path: path.write_text(json.dumps(hf_config("convnext"))),
        "pytorch_model.bin": lambda path: path.write_bytes(b"never unpickled")})
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)
    with pytest.raises(CheckpointError, match=r"^Hub repo alice/upernet-pickled is a transformers repo without "
                                              r"model\.safetensors \(pickled weights only\?\)[^\n]*$"):
        create_model("hf-hub:alice/upernet-pickled")


def test_hf_hub_name_of_a_zoo_repo_is_the_zoo_entry():
    from segzoo.weights.resolver import UpstreamRepoName, resolve_model_name

    resolved = resolve_model_name("hf-hub:openmmlab/upernet-convnext-tiny")
    assert isinstance(resolved, UpstreamRepoName) and resolved.loads_weights(pretrained=False)
    assert resolved.entry.name == "upernet_convnext_tiny.openmmlab_ade20k"
    assert resolved.config.feature_norms == ("c1", "c2", "c3", "c4") and resolved.config.num_classes == 150
    # another revision is not the entry's file: the repo itself
    assert not isinstance(resolve_model_name("hf-hub:openmmlab/upernet-convnext-tiny@refs/pr/1"), UpstreamRepoName)


@pytest.mark.slow  # builds, uploads and converts a full-size ConvNeXt-T UPerNet (240 MB)
def test_the_zoo_entry_downloads_from_its_repo_converts_and_caches(hub_env, tmp_path, monkeypatch):
    """``create_model("hf-hub:openmmlab/upernet-convnext-tiny")``: the entry's file fetched from the repo's
    ``/resolve/`` URL at the endpoint HF_ENDPOINT names, converted onto the entry's config, cached; the second
    load reads the cache without a request."""
    from hub_test_server import HubServer

    with HubServer(tokens={ALICE: "alice"}, orgs={"openmmlab": ["alice"]}) as server:
        _upload(server, tmp_path, "openmmlab/upernet-convnext-tiny", {
            "config.json": lambda path: path.write_text(json.dumps(hf_config("upernet-convnext-tiny"))),
            "model.safetensors": lambda path: save_file(
                {k: v.contiguous() for k, v in seeded_state_dict("upernet-convnext-tiny").items()}, path)})
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        model = create_model("hf-hub:openmmlab/upernet-convnext-tiny")
        assert model.config.backbone == "convnext_tiny" and model.config.num_classes == 150
        with torch.no_grad():
            assert model(torch.randn(1, 3, 97, 131)).shape == (1, 150, 97, 131)
        requests = len(server.request_log)
        again = create_model("upernet_convnext_tiny.openmmlab_ade20k", pretrained=True)
        assert len(server.request_log) == requests  # from segzoo's cache
        assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
        assert not server.errors


def test_a_segformer_repo_is_recognised_and_converted(hub_server, hub_env, tmp_path, monkeypatch):
    """An unlisted SegformerForSemanticSegmentation repo: recognised by its config.json, converted to the
    ``segformer`` head on segzoo's MiT (its sizes read from the shapes), transformers' logits reproduced."""
    config = dict(hf_config("segformer"), id2label={"0": "wall", "1": "sky", "2": "floor"})
    state = {key: value.contiguous() for key, value in seeded_state_dict("segformer").items()}
    _upload(hub_server, tmp_path, "alice/segformer-mini", {
        "config.json": lambda path: path.write_text(json.dumps(config)),
        "model.safetensors": lambda path: save_file(state, path)})
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)
    model = create_model("hf-hub:alice/segformer-mini")
    assert (model.config.head, model.config.backbone, model.config.backbone_norm_eps) == ("segformer", "mit_b0", 1e-5)
    assert model.config.backbone_kwargs["embed_dims"] == (16, 32, 40, 64)
    with torch.no_grad():
        logits = model(seeded_input("segformer", SIZES[0]))[..., ::4, ::4]
    difference, allowed = max_difference(logits, reference_logits("segformer", SIZES[0]))
    assert difference <= allowed
