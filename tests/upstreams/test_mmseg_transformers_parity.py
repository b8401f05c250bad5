"""segzoo's conversions of mmsegmentation's transformer-era checkpoints (UPerNet on Swin, ConvNeXt, BEiT, MAE, ViT;
SegFormer on MiT; Segmenter, SETR and DPT on ViT) reproduce mmseg's own outputs:
reference logits taken by tests/reference_data/mmseg_transformers/make_reference.py in a scratch environment
(mmseg 1.2.2 + mmpretrain 1.2.0), seeded weights on the real configs, an odd size and 128x128 where the model takes
any size, the crop size where its position embedding is tied to it; tolerance 1e-4 of the logits' scale. Each case
converts with the zoo entry of that config, so the entries' structures are what is checked."""
import pytest
import torch

from segzoo import get_pretrained, list_pretrained
from segzoo.weights.convert import _expected, convert_upstream
from support.mmseg_reference import max_difference
from support.mmseg_transformers_reference import (
    CLASS_STEP,
    cases,
    pixel_step,
    reference_logits,
    seeded_input,
    seeded_layout,
    seeded_state_dict,
)

ENTRIES = {  # mmseg config -> the zoo entry made from it
    "swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512":
        "upernet_swin_tiny_patch4_window7_224.mmseg_ade20k_160k",
    "swin-base-patch4-window12-in22k-384x384-pre_upernet_8xb2-160k_ade20k-512x512":
        "upernet_swin_base_patch4_window12_384.mmseg_ade20k_160k_in22k",
    "convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512": "upernet_convnext_tiny.mmseg_ade20k_160k",
    "beit-base_upernet_8xb2-160k_ade20k-640x640":
        "upernet_beit_base_patch16_224_feature2pyramid.mmseg_ade20k_160k_640x640",
    "mae-base_upernet_8xb2-amp-160k_ade20k-512x512":
        "upernet_beit_base_patch16_224_feature2pyramid.mmseg_ade20k_160k_mae",
    "vit_vit-b16-ln_mln_upernet_8xb2-160k_ade20k-512x512":
        "upernet_vit_base_patch16_224_multilevel.mmseg_ade20k_160k_ln",
    "vit_deit-s16_upernet_8xb2-80k_ade20k-512x512": "upernet_deit_small_patch16_224.mmseg_ade20k_80k",
    "segformer_mit-b0_8xb2-160k_ade20k-512x512": "segformer_mit_b0.mmseg_ade20k_160k",
    "segformer_mit-b1_8xb1-160k_cityscapes-1024x1024": "segformer_mit_b1.mmseg_cityscapes_160k",
    "segmenter_vit-t_mask_8xb1-160k_ade20k-512x512": "segmenter_vit_tiny_patch16_224.mmseg_ade20k_160k",
    "segmenter_vit-s_fcn_8xb1-160k_ade20k-512x512": "segmenter_vit_small_patch16_224.mmseg_ade20k_160k_linear",
    "setr_vit-l_naive_8xb2-160k_ade20k-512x512": "setr_vit_large_patch16_224.mmseg_ade20k_160k_naive",
    "setr_vit-l_pup_8xb2-160k_ade20k-512x512": "setr_vit_large_patch16_224.mmseg_ade20k_160k_pup",
    "setr_vit-l_mla_8xb2-160k_ade20k-512x512": "setr_mla_vit_large_patch16_224.mmseg_ade20k_160k",
    "dpt_vit-b16_8xb2-160k_ade20k-512x512": "dpt_vit_base_patch16_224.mmseg_ade20k_160k",
}
# the cheapest cases in the default tier (Swin's window order is also checked there, on transformers' layout:
# test_transformers_parity.py), the rest in the slow tier
DEFAULT_TIER = {("convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512", (97, 131)),
                ("vit_deit-s16_upernet_8xb2-80k_ade20k-512x512", (97, 131)),
                ("segformer_mit-b0_8xb2-160k_ade20k-512x512", (97, 131)),
                ("segmenter_vit-t_mask_8xb1-160k_ade20k-512x512", (97, 131))}


def _convert(name):
    model, converted, report = convert_upstream(seeded_state_dict(name), "mmseg", entry=get_pretrained(ENTRIES[name]))
    model.load_state_dict(converted, strict=True)
    return model.eval(), report


def _logits(model, name, size):
    step = pixel_step(size)
    with torch.no_grad():
        return model(seeded_input(name, size))[:, ::CLASS_STEP, ::step, ::step]


@pytest.mark.slow  # builds 51 models on the meta device (BEiT-L, ConvNeXt-XL among them): 18 s
def test_every_entry_places_every_key_of_its_configs_layout():
    """All 51 transformer-era entries (26 UPerNet, 13 SegFormer, 5 Segmenter, 7 SETR; the references above cover one per
    family and head form): each builds on the meta device and places every key of the layout mmseg's own config has
    (key_layouts.json.gz holds every config of the families' metafiles), every shape checked."""
    names = [name for name in list_pretrained(source="mmseg") if not get_pretrained(name).config.backbone.startswith(
        "resnet")]
    assert len(names) == 52
    for name in names:
        entry = get_pretrained(name)
        config = entry.source.rsplit(" ", 1)[-1].rsplit("/", 1)[-1].removesuffix(".py")
        with torch.device("meta"):
            source = {key: torch.empty(value.shape, dtype=value.dtype) for key, value in seeded_layout(config).items()}
            _, converted, report = convert_upstream(source, "mmseg", entry=entry)
        assert report.placed == len(converted) == len(_expected(entry.config)), name


def test_every_reference_is_an_entry_of_that_config():
    assert {name for name, _ in cases()} == set(ENTRIES)
    for config, zoo_name in ENTRIES.items():
        assert get_pretrained(zoo_name).source.endswith(f"{config}.py"), zoo_name


@pytest.mark.parametrize("name, size", [
    pytest.param(name, size, id=f"{name.split('_')[0]}-{size[0]}x{size[1]}",
                 marks=() if (name, size) in DEFAULT_TIER else (pytest.mark.slow,))
    for name, size in cases()])
def test_converted_model_reproduces_mmseg(name, size):
    model, report = _convert(name)
    # only the aux head (training only) and the relative-position index buffers (timm computes its own)
    assert all(key.startswith("auxiliary_head.") or key.endswith(".relative_position_index") for key in report.dropped)
    difference, allowed = max_difference(_logits(model, name, size), reference_logits(name, size))
    assert difference <= allowed, f"{name} at {size}: logits differ by {difference:.3g} (allowed {allowed:.3g})"


def test_timms_own_position_resize_fails_by_far():
    """timm's antialiased resize of a ViT's position embedding (undone: segzoo's subclass swapped back) does not
    reproduce mmseg at 97x131, where the 32x32 embedding is resized; segzoo's plain bicubic does (above)."""
    from segzoo.backbones import vit_positions

    name = "vit_deit-s16_upernet_8xb2-80k_ade20k-512x512"
    model, _ = _convert(name)
    for module in model.modules():
        if type(module).__module__ == vit_positions.__name__:
            module.__class__ = module.__class__.__mro__[1]
    difference, allowed = max_difference(_logits(model, name, (97, 131)), reference_logits(name, (97, 131)))
    assert difference > 100 * allowed


def test_segformer_with_transformers_epsilon_is_not_mmseg():
    """mmseg's MiT normalises with epsilon 1e-6 everywhere; the entry says so (``backbone_norm_eps``). With timm's
    and transformers' 1e-5 in the patch embeddings and reductions the same weights miss mmseg's logits: the check
    sees a one-constant difference."""
    name = "segformer_mit-b0_8xb2-160k_ade20k-512x512"
    model, _ = _convert(name)
    for module_name, module in model.backbone.named_modules():
        if isinstance(module, torch.nn.LayerNorm) and (module_name.endswith("attn.norm") or "patch_embed" in module_name
                                                       or "downsample" in module_name):
            module.eps = 1e-5
    difference, allowed = max_difference(_logits(model, name, (97, 131)), reference_logits(name, (97, 131)))
    assert difference > allowed


def test_segmenter_without_the_norm_over_classes_fails_by_far():
    """The mask transformer's scores are LayerNorm-ed over the classes of each pixel (mmseg's ``mask_norm``): left
    out, the same weights are far off."""
    name = "segmenter_vit-t_mask_8xb1-160k_ade20k-512x512"
    model, _ = _convert(name)
    model.head.classifier.forward = lambda scores: scores  # the embeddings stay, the LayerNorm goes
    difference, allowed = max_difference(_logits(model, name, (97, 131)), reference_logits(name, (97, 131)))
    assert difference > 100 * allowed


def test_a_vit_without_class_token_loses_the_token_and_its_position():
    """SETR-MLA's mmseg ViT (``with_cls_token=False``) adds the whole position embedding, then drops the token: its
    conversion onto a timm ViT without a class token keeps the patches' positions only; other ViTs keep both."""
    from segzoo.upstreams import get_upstream

    mmseg = get_upstream("mmseg")
    state = {"backbone.cls_token": torch.zeros(1, 1, 8), "backbone.pos_embed": torch.arange(5.0)[None, :, None]
             .expand(1, 5, 8), "backbone.layers.0.attn.attn.in_proj_weight": torch.zeros(24, 8)}
    mla = get_pretrained("setr_mla_vit_large_patch16_224.mmseg_ade20k_160k").config
    out = mmseg.prepare_for(state, mla, "mmseg-vit")
    assert "backbone.cls_token" not in out and out["backbone.pos_embed"][0, :, 0].tolist() == [1, 2, 3, 4]
    naive = get_pretrained("setr_vit_large_patch16_224.mmseg_ade20k_160k_naive").config
    assert mmseg.prepare_for(state, naive, "mmseg-vit")["backbone.pos_embed"].shape[1] == 5
