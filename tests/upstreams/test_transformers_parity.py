"""segzoo's conversion of transformers' UperNetForSemanticSegmentation (ConvNeXt, Swin), BeitForSemanticSegmentation
and SegformerForSemanticSegmentation reproduces transformers' own outputs: reference logits taken by
tests/reference_data/transformers/make_reference.py in a scratch environment (transformers 4.57.6), seeded weights,
an odd size and 128x128 (BEiT: its grid; SegFormer also the 512x512 training crop), tolerance 1e-4 of the logits'
scale."""
import json

import pytest
import torch
from safetensors.torch import save_file

from segzoo import create_model, get_pretrained
from segzoo.weights.convert import _expected, convert_file, convert_upstream
from support.mmseg_reference import max_difference
from support.transformers_reference import (
    CASES,
    SIZES,
    full_layout,
    hf_config,
    pixel_step,
    reference_logits,
    seeded_input,
    seeded_state_dict,
    sizes_of,
)


def _logits(model, case, size):
    step = pixel_step(size)
    with torch.no_grad():
        return model.eval()(seeded_input(case, size))[..., ::step, ::step]


@pytest.mark.parametrize("case", CASES)
def test_converted_upernet_reproduces_transformers(case):
    model, converted, report = convert_upstream(seeded_state_dict(case), "transformers")
    assert report.placed == len(model.state_dict())
    # the aux head only; BEiT's relative-position index buffers too (timm computes its own) and its blocks 10 and 11,
    # which transformers runs and reads nothing from (its out_indices end at block 9): timm prunes them
    assert all(key.startswith(("auxiliary_head.", "beit.encoder.layer.10.", "beit.encoder.layer.11."))
               or key.endswith("relative_position_index") for key in report.dropped)
    assert (case == "beit") == any(key.startswith("beit.encoder.layer.11.") for key in report.dropped)
    model.load_state_dict(converted, strict=True)
    assert not model.config.aux
    assert model.config.feature_norms == (() if case in ("beit", "segformer") else ("c1", "c2", "c3", "c4"))
    assert model.config.head == ("segformer" if case == "segformer" else "upernet")
    for size in sizes_of(case):
        difference, allowed = max_difference(_logits(model, case, size), reference_logits(case, size))
        assert difference <= allowed, f"{case} at {size}: logits differ by {difference:.3g} (allowed {allowed:.3g})"


def test_a_wrong_structure_fails_by_far(monkeypatch):
    """timm's own window order (shift, then pad) on the same weights: far outside the tolerance at both sizes,
    which is what the upstreams' order (pad, then shift) fixes."""
    from segzoo.backbones import swin_windows

    model, converted, _ = convert_upstream(seeded_state_dict("swin_window7"), "transformers")
    model.load_state_dict(converted)
    for module in model.modules():  # back to timm's own class
        if type(module).__module__ == swin_windows.__name__:
            module.__class__ = module.__class__.__mro__[1]
    for size in SIZES:
        difference, allowed = max_difference(_logits(model, "swin_window7", size),
                                             reference_logits("swin_window7", size))
        assert difference > 100 * allowed, size


def test_segformer_fusion_in_transformers_order_fails_by_far():
    """transformers concatenates SegFormer's levels top level first; segzoo's head c1 first, with the fusion's input
    channels reordered by the conversion. The fusion left in transformers' order is far off."""
    model, converted, _ = convert_upstream(seeded_state_dict("segformer"), "transformers")
    weight = converted["head.fusion.conv.weight"]
    converted["head.fusion.conv.weight"] = torch.cat(weight.chunk(4, dim=1)[::-1], dim=1)
    model.load_state_dict(converted)
    difference, allowed = max_difference(_logits(model, "segformer", SIZES[0]), reference_logits("segformer", SIZES[0]))
    assert difference > 100 * allowed


def test_a_segformer_with_other_attention_heads_is_refused(tmp_path):
    from segzoo.errors import CheckpointError

    save_file({key: value.contiguous() for key, value in seeded_state_dict("segformer").items()},
              tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(dict(hf_config("segformer"), num_attention_heads=[2, 2, 5, 8])))
    with pytest.raises(CheckpointError, match=r"\[2, 2, 5, 8\] attention heads per stage; segzoo converts MiT's"):
        convert_file(tmp_path, tmp_path / "out", source="transformers")


def test_convert_reads_a_transformers_directory(tmp_path):
    """``segzoo convert --from transformers DIR OUT``: config.json + model.safetensors as transformers writes them
    (here in two shards with their index); the class names come from id2label."""
    source = tmp_path / "upernet"
    source.mkdir()
    state = seeded_state_dict("convnext")
    keys = list(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for shard, names in shards.items():
        save_file({key: state[key].contiguous() for key in names}, source / shard)
    (source / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {key: shard for shard, names in shards.items() for key in names}}))
    config = dict(hf_config("convnext"), id2label={"0": "sky", "1": "tree", "2": "road"})
    (source / "config.json").write_text(json.dumps(config))
    report = convert_file(source, tmp_path / "out", source="transformers")
    model = create_model(f"local-dir:{tmp_path / 'out'}")
    assert report.config.class_names == ("sky", "tree", "road") == model.config.class_names
    difference, allowed = max_difference(_logits(model, "convnext", SIZES[0]), reference_logits("convnext", SIZES[0]))
    assert difference <= allowed


def test_a_directory_with_pickled_weights_only_is_refused(tmp_path):
    from segzoo.errors import CheckpointError

    (tmp_path / "config.json").write_text(json.dumps(hf_config("convnext")))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match=r"holds only pytorch_model\.bin \(pickled weights\).*model\.safetensors"):
        convert_file(tmp_path, tmp_path / "out", source="transformers")


@pytest.mark.parametrize("layout, entries", [
    ("segformer-b0", ("segformer_mit_b0.nvidia_ade20k_512x512",)),
    ("segformer-b2", ("segformer_mit_b2.nvidia_ade20k_512x512", "segformer_mit_b2.nvidia_cityscapes_1024x1024")),
])
def test_the_nvidia_entries_place_every_key_of_their_repos_layout(layout, entries):
    """The full-size layouts of nvidia/segformer-b0 and -b2 (B2 .. B5 have a 768-wide head), on the meta device:
    every key placed onto the entry's model, every shape checked (the classes differ by dataset: 150 or 19)."""
    for name in entries:
        entry = get_pretrained(name)
        with torch.device("meta"):
            source = {key: torch.empty(shape) for key, shape in full_layout(layout).items()}
            width = source["decode_head.classifier.weight"].shape[1]
            source["decode_head.classifier.weight"] = torch.empty(entry.config.num_classes, width, 1, 1)
            source["decode_head.classifier.bias"] = torch.empty(entry.config.num_classes)
            _, converted, report = convert_upstream(source, "transformers", entry=entry)
        assert report.placed == len(converted) == len(_expected(entry.config)), name
