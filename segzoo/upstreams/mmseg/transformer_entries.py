"""mmsegmentation 1.2.2's transformer-era UPerNet checkpoints on ADE20K (its metafiles in configs/{swin,convnext,
beit,vit,mae}; Apache-2.0), as zoo entries: the timm backbone and the structure around it that reproduce each
config (per-level norms, feature levels, necks), the checkpoint file with the sha256 prefix in its name, the
evaluation recipe (test resize, whole image or slide windows) and the reported single-scale mIoU."""
from __future__ import annotations

from typing import Any, Optional

from ...upstream import PretrainedSpec, UpstreamFile, hash_in_name

__all__ = ["transformer_entries"]

_NORMS = {"feature_norms": ("c1", "c2", "c3", "c4")}
_SWIN = {**_NORMS, "feature_norm_eps": 1e-5}
_CONVNEXT = {**_NORMS, "feature_norm_eps": 1e-6}
_PYRAMID = {"neck": "feature2pyramid", "feature_indices": (3, 5, 7, 11)}
_VIT = {"feature_indices": (2, 5, 8, 11)}
_FINAL_NORM = {"feature_norms": ("c4",), "feature_norm_eps": 1e-6}
_WHOLE = {"resize": (2048, 512), "mode": "whole"}
_SLIDE_512 = {"resize": (2048, 512), "mode": "slide", "crop": (512, 512), "stride": (341, 341)}
_SLIDE_640 = {"resize": (2560, 640), "mode": "slide", "crop": (640, 640), "stride": (426, 426)}


def _multilevel(channels: int) -> dict[str, Any]:
    return {"neck": "multilevel", "neck_kwargs": {"out_channels": channels, "scales": (4, 2, 1, 0.5)}}


# (mmseg config, its file under v0.5/, zoo name, timm backbone, backbone_kwargs, config fields, head channels,
#  recipe, mIoU, mIoU with multi-scale + flip)
_ROWS = (
    ("swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512",
     "swin/upernet_swin_tiny_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K/upernet_swin_tiny_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K_20210531_112542-e380ad3e.pth",  # noqa: E501
     "upernet_swin_tiny_patch4_window7_224.mmseg_ade20k_160k", "swin_tiny_patch4_window7_224", {}, _SWIN, 512,
     _WHOLE, 44.41, 45.79),
    ("swin-small-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512",
     "swin/upernet_swin_small_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K/upernet_swin_small_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K_20210526_192015-ee2fff1c.pth",  # noqa: E501
     "upernet_swin_small_patch4_window7_224.mmseg_ade20k_160k", "swin_small_patch4_window7_224", {}, _SWIN, 512,
     _WHOLE, 47.72, 49.24),
    ("swin-base-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512",
     "swin/upernet_swin_base_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K/upernet_swin_base_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K_20210526_192340-593b0e13.pth",  # noqa: E501
     "upernet_swin_base_patch4_window7_224.mmseg_ade20k_160k", "swin_base_patch4_window7_224", {}, _SWIN, 512,
     _WHOLE, 47.99, 49.57),
    ("swin-base-patch4-window7-in22k-pre_upernet_8xb2-160k_ade20k-512x512",
     "swin/upernet_swin_base_patch4_window7_512x512_160k_ade20k_pretrain_224x224_22K/upernet_swin_base_patch4_window7_512x512_160k_ade20k_pretrain_224x224_22K_20210526_211650-762e2178.pth",  # noqa: E501
     "upernet_swin_base_patch4_window7_224.mmseg_ade20k_160k_in22k", "swin_base_patch4_window7_224", {}, _SWIN,
     512, _WHOLE, 50.13, 51.9),
    ("swin-base-patch4-window12-in1k-384x384-pre_upernet_8xb2-160k_ade20k-512x512",
     "swin/upernet_swin_base_patch4_window12_512x512_160k_ade20k_pretrain_384x384_1K/upernet_swin_base_patch4_window12_512x512_160k_ade20k_pretrain_384x384_1K_20210531_132020-05b22ea4.pth",  # noqa: E501
     "upernet_swin_base_patch4_window12_384.mmseg_ade20k_160k", "swin_base_patch4_window12_384", {}, _SWIN, 512,
     _WHOLE, 48.35, 49.65),
    ("swin-base-patch4-window12-in22k-384x384-pre_upernet_8xb2-160k_ade20k-512x512",
     "swin/upernet_swin_base_patch4_window12_512x512_160k_ade20k_pretrain_384x384_22K/upernet_swin_base_patch4_window12_512x512_160k_ade20k_pretrain_384x384_22K_20210531_125459-429057bf.pth",  # noqa: E501
     "upernet_swin_base_patch4_window12_384.mmseg_ade20k_160k_in22k", "swin_base_patch4_window12_384", {}, _SWIN,
     512, _WHOLE, 50.76, 52.4),
    ("convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512",
     "convnext/upernet_convnext_tiny_fp16_512x512_160k_ade20k/upernet_convnext_tiny_fp16_512x512_160k_ade20k_20220227_124553-cad485de.pth",  # noqa: E501
     "upernet_convnext_tiny.mmseg_ade20k_160k", "convnext_tiny", {}, _CONVNEXT, 512, _SLIDE_512, 46.11, 46.62),
    ("convnext-small_upernet_8xb2-amp-160k_ade20k-512x512",
     "convnext/upernet_convnext_small_fp16_512x512_160k_ade20k/upernet_convnext_small_fp16_512x512_160k_ade20k_20220227_131208-1b1e394f.pth",  # noqa: E501
     "upernet_convnext_small.mmseg_ade20k_160k", "convnext_small", {}, _CONVNEXT, 512, _SLIDE_512, 48.56, 49.02),
    ("convnext-base_upernet_8xb2-amp-160k_ade20k-512x512",
     "convnext/upernet_convnext_base_fp16_512x512_160k_ade20k/upernet_convnext_base_fp16_512x512_160k_ade20k_20220227_181227-02a24fc6.pth",  # noqa: E501
     "upernet_convnext_base.mmseg_ade20k_160k", "convnext_base", {}, _CONVNEXT, 512, _SLIDE_512, 48.71, 49.54),
    ("convnext-base_upernet_8xb2-amp-160k_ade20k-640x640",
     "convnext/upernet_convnext_base_fp16_640x640_160k_ade20k/upernet_convnext_base_fp16_640x640_160k_ade20k_20220227_182859-9280e39b.pth",  # noqa: E501
     "upernet_convnext_base.mmseg_ade20k_160k_640x640", "convnext_base", {}, _CONVNEXT, 512, _SLIDE_640, 52.13,
     52.66),
    ("convnext-large_upernet_8xb2-amp-160k_ade20k-640x640",
     "convnext/upernet_convnext_large_fp16_640x640_160k_ade20k/upernet_convnext_large_fp16_640x640_160k_ade20k_20220226_040532-e57aa54d.pth",  # noqa: E501
     "upernet_convnext_large.mmseg_ade20k_160k_640x640", "convnext_large", {}, _CONVNEXT, 512, _SLIDE_640, 53.16,
     53.38),
    ("convnext-xlarge_upernet_8xb2-amp-160k_ade20k-640x640",
     "convnext/upernet_convnext_xlarge_fp16_640x640_160k_ade20k/upernet_convnext_xlarge_fp16_640x640_160k_ade20k_20220226_080344-95fc38c2.pth",  # noqa: E501
     "upernet_convnext_xlarge.mmseg_ade20k_160k_640x640", "convnext_xlarge", {}, _CONVNEXT, 512, _SLIDE_640, 53.58,
     54.11),
    ("beit-base_upernet_8xb2-160k_ade20k-640x640",
     "beit/upernet_beit-base_8x2_640x640_160k_ade20k/upernet_beit-base_8x2_640x640_160k_ade20k-eead221d.pth",
     "upernet_beit_base_patch16_224_feature2pyramid.mmseg_ade20k_160k_640x640", "beit_base_patch16_224",
     {"img_size": 640}, _PYRAMID, 768, _SLIDE_640, 53.08, 53.84),
    ("beit-large_upernet_8xb1-amp-160k_ade20k-640x640",
     "beit/upernet_beit-large_fp16_8x1_640x640_160k_ade20k/upernet_beit-large_fp16_8x1_640x640_160k_ade20k-8fc0dd5d.pth",  # noqa: E501
     "upernet_beit_large_patch16_224_feature2pyramid.mmseg_ade20k_160k_640x640", "beit_large_patch16_224",
     {"img_size": 640}, {**_PYRAMID, "feature_indices": (7, 11, 15, 23)}, 1024, _SLIDE_640, 56.33, 56.84),
    ("mae-base_upernet_8xb2-amp-160k_ade20k-512x512",
     "mae/upernet_mae-base_fp16_8x2_512x512_160k_ade20k/upernet_mae-base_fp16_8x2_512x512_160k_ade20k_20220426_174752-f92a2975.pth",  # noqa: E501
     "upernet_beit_base_patch16_224_feature2pyramid.mmseg_ade20k_160k_mae", "beit_base_patch16_224",
     {"img_size": 512, "use_abs_pos_emb": True, "init_values": 1.0}, _PYRAMID, 768, _SLIDE_512, 48.13, 48.7),
    ("vit_vit-b16_mln_upernet_8xb2-80k_ade20k-512x512",
     "vit/upernet_vit-b16_mln_512x512_80k_ade20k/upernet_vit-b16_mln_512x512_80k_ade20k_20210624_130547-0403cee1.pth",
     "upernet_vit_base_patch16_224_multilevel.mmseg_ade20k_80k", "vit_base_patch16_224", {"img_size": 512},
     {**_VIT, **_multilevel(768)}, 512, _WHOLE, 47.71, 49.51),
    ("vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512",
     "vit/upernet_vit-b16_mln_512x512_160k_ade20k/upernet_vit-b16_mln_512x512_160k_ade20k_20210624_130547-852fa768.pth",  # noqa: E501
     "upernet_vit_base_patch16_224_multilevel.mmseg_ade20k_160k", "vit_base_patch16_224", {"img_size": 512},
     {**_VIT, **_multilevel(768)}, 512, _WHOLE, 46.75, 48.46),
    ("vit_vit-b16-ln_mln_upernet_8xb2-160k_ade20k-512x512",
     "vit/upernet_vit-b16_ln_mln_512x512_160k_ade20k/upernet_vit-b16_ln_mln_512x512_160k_ade20k_20210621_172828-f444c077.pth",  # noqa: E501
     "upernet_vit_base_patch16_224_multilevel.mmseg_ade20k_160k_ln", "vit_base_patch16_224", {"img_size": 512},
     {**_VIT, **_multilevel(768), **_FINAL_NORM}, 512, _WHOLE, 47.73, 49.95),
    ("vit_deit-s16_upernet_8xb2-80k_ade20k-512x512",
     "vit/upernet_deit-s16_512x512_80k_ade20k/upernet_deit-s16_512x512_80k_ade20k_20210624_095228-afc93ec2.pth",
     "upernet_deit_small_patch16_224.mmseg_ade20k_80k", "deit_small_patch16_224", {"img_size": 512}, _VIT, 512,
     _WHOLE, 42.96, 43.79),
    ("vit_deit-s16_upernet_8xb2-160k_ade20k-512x512",
     "vit/upernet_deit-s16_512x512_160k_ade20k/upernet_deit-s16_512x512_160k_ade20k_20210621_160903-5110d916.pth",
     "upernet_deit_small_patch16_224.mmseg_ade20k_160k", "deit_small_patch16_224", {"img_size": 512}, _VIT, 512,
     _WHOLE, 42.87, 43.79),
    ("vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512",
     "vit/upernet_deit-s16_mln_512x512_160k_ade20k/upernet_deit-s16_mln_512x512_160k_ade20k_20210621_161021-fb9a5dfb.pth",  # noqa: E501
     "upernet_deit_small_patch16_224_multilevel.mmseg_ade20k_160k", "deit_small_patch16_224", {"img_size": 512},
     {**_VIT, **_multilevel(384)}, 512, _WHOLE, 43.82, 45.07),
    ("vit_deit-s16-ln_mln_upernet_8xb2-160k_ade20k-512x512",
     "vit/upernet_deit-s16_ln_mln_512x512_160k_ade20k/upernet_deit-s16_ln_mln_512x512_160k_ade20k_20210621_161021-c0cd652f.pth",  # noqa: E501
     "upernet_deit_small_patch16_224_multilevel.mmseg_ade20k_160k_ln", "deit_small_patch16_224", {"img_size": 512},
     {**_VIT, **_multilevel(384), **_FINAL_NORM}, 512, _WHOLE, 43.52, 45.01),
    ("vit_deit-b16_upernet_8xb2-80k_ade20k-512x512",
     "vit/upernet_deit-b16_512x512_80k_ade20k/upernet_deit-b16_512x512_80k_ade20k_20210624_130529-1e090789.pth",
     "upernet_deit_base_patch16_224.mmseg_ade20k_80k", "deit_base_patch16_224", {"img_size": 512}, _VIT, 512,
     _WHOLE, 45.24, 46.73),
    ("vit_deit-b16_upernet_8xb2-160k_ade20k-512x512",
     "vit/upernet_deit-b16_512x512_160k_ade20k/upernet_deit-b16_512x512_160k_ade20k_20210621_180100-828705d7.pth",
     "upernet_deit_base_patch16_224.mmseg_ade20k_160k", "deit_base_patch16_224", {"img_size": 512}, _VIT, 512,
     _WHOLE, 45.36, 47.16),
    ("vit_deit-b16_mln_upernet_8xb2-160k_ade20k-512x512",
     "vit/upernet_deit-b16_mln_512x512_160k_ade20k/upernet_deit-b16_mln_512x512_160k_ade20k_20210621_191949-4e1450f3.pth",  # noqa: E501
     "upernet_deit_base_patch16_224_multilevel.mmseg_ade20k_160k", "deit_base_patch16_224", {"img_size": 512},
     {**_VIT, **_multilevel(768)}, 512, _WHOLE, 45.46, 47.16),
    ("vit_deit-b16-ln_mln_upernet_8xb2-160k_ade20k-512x512",
     "vit/upernet_deit-b16_ln_mln_512x512_160k_ade20k/upernet_deit-b16_ln_mln_512x512_160k_ade20k_20210623_153535-8a959c14.pth",  # noqa: E501
     "upernet_deit_base_patch16_224_multilevel.mmseg_ade20k_160k_ln", "deit_base_patch16_224", {"img_size": 512},
     {**_VIT, **_multilevel(768), **_FINAL_NORM}, 512, _WHOLE, 45.37, 47.23),
)


def _spec(config: str, path: str, name: str, backbone: str, backbone_kwargs: dict, fields: dict, channels: int,
          recipe: dict, miou: float, miou_ms: Optional[float]) -> PretrainedSpec:
    crop = recipe.get("crop", (512, 512))
    fields = dict(fields)
    neck = fields.pop("neck", None)
    return PretrainedSpec(
        name=name, upstream="mmseg", variant="upernet", head="upernet", backbone=backbone,
        backbone_kwargs=backbone_kwargs, dataset="mmseg_ade20k", neck=neck, output_stride=32, aux=False,
        align_corners=False, input_size=crop, file=UpstreamFile("openmmlab", f"v0.5/{path}",
                                                                hash_in_name(path.rsplit("/", 1)[-1])),
        options={"channels": channels}, carry_palette=True, inference=recipe,
        metrics={"mIoU": miou, "mIoU_ms_flip": miou_ms, "eval": f"single scale ({recipe['mode']})"},
        metrics_source=f"mmsegmentation 1.2.2's metafile for {config}.py", config_fields=fields)


def transformer_entries() -> tuple[PretrainedSpec, ...]:
    """The 26 entries (Swin 6, ConvNeXt 6, BEiT 2, MAE 1, ViT and DeiT 11: every ADE20K UPerNet of those metafiles)."""
    return tuple(_spec(*row) for row in _ROWS)
