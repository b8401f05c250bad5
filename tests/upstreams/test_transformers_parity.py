"""segzoo's conversion of transformers' UperNetForSemanticSegmentation (ConvNeXt, Swin), BeitForSemanticSegmentation,
SegformerForSemanticSegmentation, DPTForSemanticSegmentation and Mask2FormerForUniversalSegmentation (Swin) reproduces
transformers' own outputs: reference logits (Mask2Former: semantic scores) taken by
tests/reference_data/transformers/make_reference.py in a scratch environment (transformers 4.57.6), seeded weights, an
odd size and 128x128 (BEiT: its grid; SegFormer also the 512x512 training crop; DPT 128x128 and its 480x480 crop),
tolerance 1e-4 of the logits' scale."""
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
    # DPT's final LayerNorm (never read) and its first fusion layer's residual unit (never used); Mask2Former's loss
    # weights
    assert all(key.startswith(("auxiliary_head.", "beit.encoder.layer.10.", "beit.encoder.layer.11.", "dpt.layernorm.",
                               "neck.fusion_stage.layers.0.residual_layer1.", "criterion."))
               or key.endswith("relative_position_index") for key in report.dropped)
    assert (case == "beit") == any(key.startswith("beit.encoder.layer.11.") for key in report.dropped)
    model.load_state_dict(converted, strict=True)
    assert not model.config.aux
    assert model.config.feature_norms == (() if case in ("beit", "segformer", "dpt") else ("c1", "c2", "c3", "c4"))
    assert model.config.head == {"segformer": "segformer", "dpt": "dpt",
                                 "mask2former": "mask2former"}.get(case, "upernet")
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


def test_the_dpt_entry_places_every_key_of_its_repos_layout():
    """The full-size layout of Intel/dpt-large-ade (ViT-L/16 at 384, readout "project", BatchNorms in the fusion), on
    the meta device: every key placed onto the entry's model, every shape checked; left out: the aux head, the final
    LayerNorm and the first fusion layer's residual unit, none of which the logits read."""
    entry = get_pretrained("dpt_large_ade20k")
    with torch.device("meta"):
        source = {key: torch.empty(shape) for key, shape in full_layout("dpt-large-ade").items()}
        _, converted, report = convert_upstream(source, "transformers", entry=entry)
    assert report.placed == len(converted) == len(_expected(entry.config))
    assert {key.split(".")[0] for key in report.dropped} == {"auxiliary_head", "dpt", "neck"}


def test_dpt_with_bicubic_position_resize_fails_by_far():
    """transformers' DPT resizes its position embedding bilinearly; segzoo's ViT default (mmseg's bicubic) on the same
    weights is far outside the tolerance at the 480x480 crop (the embedding is for 64x64)."""
    model, converted, _ = convert_upstream(seeded_state_dict("dpt"), "transformers")
    assert model.config.position_resize == "bilinear"
    from segzoo.model import SegmentationModel

    wrong = SegmentationModel(model.config.replace(position_resize="bicubic"))
    wrong.load_state_dict(converted)
    difference, allowed = max_difference(_logits(wrong, "dpt", (480, 480)), reference_logits("dpt", (480, 480)))
    assert difference > 100 * allowed


@pytest.mark.parametrize("change, message", [
    ({"is_hybrid": True}, "DPT-Hybrid"),
    ({"num_attention_heads": 4}, "4 attention heads for 64 channels"),
    ({"readout_type": "add"}, "readout_type 'add'"),
])
def test_dpt_configs_the_weights_cannot_tell_are_refused(tmp_path, change, message):
    from segzoo.errors import CheckpointError

    save_file({key: value.contiguous() for key, value in seeded_state_dict("dpt").items()},
              str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(dict(hf_config("dpt"), **change)))
    with pytest.raises(CheckpointError, match=message):
        convert_file(tmp_path, tmp_path / "out", source="transformers")


def test_convert_reads_a_dpt_directory_and_its_blocks_from_config_json(tmp_path):
    """A DPT's blocks are its config's ``backbone_out_indices`` (here not the evenly spaced ones the keys suggest),
    its epsilon ``layer_norm_eps``; its class names come from id2label as for any transformers repo."""
    save_file({key: value.contiguous() for key, value in seeded_state_dict("dpt").items()},
              str(tmp_path / "model.safetensors"))
    config = dict(hf_config("dpt"), backbone_out_indices=[0, 2, 4, 6], layer_norm_eps=1e-6,
                  id2label={"0": "sky", "1": "tree", "2": "road"})
    (tmp_path / "config.json").write_text(json.dumps(config))
    report = convert_file(tmp_path, tmp_path / "out", source="transformers")
    assert report.config.feature_indices == (0, 2, 4, 6) and report.config.backbone_norm_eps == 1e-6
    assert report.config.class_names == ("sky", "tree", "road") and report.config.head == "dpt"


def test_the_mask2former_entry_places_every_key_of_its_repos_layout():
    """The full-size layout of facebook/mask2former-swin-tiny-ade-semantic (Swin-T, 100 queries, 9 masked-attention
    layers, 6 deformable layers), on the meta device: every key placed onto the entry's model, every shape checked (the
    class predictor's 151 rows: 150 classes, the head's classifier, and no object); left out: the loss's class weights
    only."""
    entry = get_pretrained("mask2former_swin_tiny_ade20k")
    with torch.device("meta"):
        source = {key: torch.empty(shape) for key, shape in full_layout("mask2former-swin-tiny-ade").items()}
        _, converted, report = convert_upstream(source, "transformers", entry=entry)
    assert report.placed == len(converted) == len(_expected(entry.config))
    assert [key for key in report.dropped if not key.endswith("relative_position_index")] == ["criterion.empty_weight"]
    assert entry.config.num_classes == 150 and converted["head.classifier.weight"].shape == (150, 256)
    assert converted["head.no_object.weight"].shape == (1, 256)


def _mask2former(**config_changes):
    from segzoo.model import SegmentationModel

    model, converted, _ = convert_upstream(seeded_state_dict("mask2former"), "transformers")
    model = SegmentationModel(model.config.replace(**config_changes)) if config_changes else model
    model.load_state_dict(converted)
    return model.eval()


def test_mask2former_without_its_attention_mask_fails_by_far(monkeypatch):
    """Masked attention is what makes Mask2Former: the same weights with every token open to every query are far
    outside the tolerance at both sizes."""
    import segzoo.heads.mask2former as mask2former

    model = _mask2former()
    monkeypatch.setattr(mask2former._CrossAttention, "forward", lambda self, q, k, v, blocked: _unmasked(self, q, k, v))
    for size in SIZES:
        difference, allowed = max_difference(_logits(model, "mask2former", size), reference_logits("mask2former", size))
        assert difference > 100 * allowed, size


def _unmasked(attention, query, key, value):
    weights, biases = attention.in_proj_weight.chunk(3), attention.in_proj_bias.chunk(3)
    q, k, v = (torch.nn.functional.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))
    return attention.out_proj(torch.nn.functional.scaled_dot_product_attention(
        *(x.unflatten(-1, (attention.heads, -1)).transpose(1, 2) for x in (q, k, v))).transpose(1, 2).flatten(2))


def test_mask2former_sampling_with_align_corners_fails_by_far(monkeypatch):
    """The deformable attention samples with ``align_corners=False`` (0 and 1 are the maps' outer edges), as
    transformers and the authors' kernel do; ``align_corners=True`` on the same weights is far off."""
    import segzoo.layers.deformable_attention as deformable

    model = _mask2former()
    grid_sample = torch.nn.functional.grid_sample
    monkeypatch.setattr(deformable.F, "grid_sample",
                        lambda *args, **kwargs: grid_sample(*args, **{**kwargs, "align_corners": True}))
    difference, allowed = max_difference(_logits(model, "mask2former", SIZES[0]),
                                         reference_logits("mask2former", SIZES[0]))
    assert difference > 100 * allowed


def test_convert_reads_a_mask2former_directory(tmp_path):
    """Its classes are the class predictor's rows less the no-object class, named by id2label."""
    save_file({key: value.contiguous() for key, value in seeded_state_dict("mask2former").items()},
              str(tmp_path / "model.safetensors"))
    config = dict(hf_config("mask2former"), id2label={"0": "sky", "1": "tree", "2": "road"})
    (tmp_path / "config.json").write_text(json.dumps(config))
    report = convert_file(tmp_path, tmp_path / "out", source="transformers")
    assert report.config.head == "mask2former" and report.config.num_classes == 3
    assert report.config.class_names == ("sky", "tree", "road")
    assert report.config.head_kwargs["decoder_layers"] == 5 and report.config.head_kwargs["num_heads"] == 4


@pytest.mark.parametrize("change, message", [
    ({"pre_norm": True}, "pre_norm true"),
    ({"enforce_input_projection": True}, "an input projection between its decoders"),
])
def test_mask2former_configs_the_weights_cannot_tell_are_refused(tmp_path, change, message):
    from segzoo.errors import CheckpointError

    save_file({key: value.contiguous() for key, value in seeded_state_dict("mask2former").items()},
              str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(dict(hf_config("mask2former"), **change)))
    with pytest.raises(CheckpointError, match=message):
        convert_file(tmp_path, tmp_path / "out", source="transformers")
