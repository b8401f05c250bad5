"""mmsegmentation 1.2.2's SETR checkpoints (its metafile in configs/setr; Apache-2.0): SETR-Naive, SETR-PUP (the
``setr`` head) and SETR-MLA (the ``setr_mla`` head) on ViT-L, ADE20K (512x512) and Cityscapes (768x768), as zoo
entries on timm's ViT-L, each with mmseg's test recipe (sliding windows of the crop size) and its reported
single-scale mIoU."""
from __future__ import annotations

from ...upstream import PretrainedSpec, UpstreamFile, hash_in_name

__all__ = ["setr_entries"]

# (config, file under v0.5/setr/, form variant, dataset, mIoU, mIoU with multi-scale + flip)
_ROWS = (
    ("setr_vit-l_naive_8xb2-160k_ade20k-512x512",
     "setr_naive_512x512_160k_b16_ade20k/setr_naive_512x512_160k_b16_ade20k_20210619_191258-061f24f5.pth",
     "setr-naive", "ade20k", 48.28, 49.56),
    ("setr_vit-l_pup_8xb2-160k_ade20k-512x512",
     "setr_pup_512x512_160k_b16_ade20k/setr_pup_512x512_160k_b16_ade20k_20210619_191343-7e0ce826.pth",
     "setr-pup", "ade20k", 48.24, 49.99),
    ("setr_vit-l_naive_8xb1-80k_cityscapes-768x768",
     "setr_naive_vit-large_8x1_768x768_80k_cityscapes/setr_naive_vit-large_8x1_768x768_80k_cityscapes_20211123_000505-20728e80.pth",  # noqa: E501
     "setr-naive", "cityscapes", 78.1, 80.22),
    ("setr_vit-l_pup_8xb1-80k_cityscapes-768x768",
     "setr_pup_vit-large_8x1_768x768_80k_cityscapes/setr_pup_vit-large_8x1_768x768_80k_cityscapes_20211122_155115-f6f37b8f.pth",  # noqa: E501
     "setr-pup", "cityscapes", 79.21, 81.02),
    ("setr_vit-l_mla_8xb2-160k_ade20k-512x512",
     "setr_mla_512x512_160k_b16_ade20k/setr_mla_512x512_160k_b16_ade20k_20210619_191057-f9741de7.pth",
     "setr-mla", "ade20k", 47.39, 49.37),
    ("setr_vit-l-mla_8xb1-160k_ade20k-512x512",  # the same recipe at batch size 8
     "setr_mla_512x512_160k_b8_ade20k/setr_mla_512x512_160k_b8_ade20k_20210619_191118-c6d21df0.pth",
     "setr-mla", "ade20k", 47.34, 49.05),
    ("setr_vit-l_mla_8xb1-80k_cityscapes-768x768",
     "setr_mla_vit-large_8x1_768x768_80k_cityscapes/setr_mla_vit-large_8x1_768x768_80k_cityscapes_20211119_101003-7f8dccbe.pth",  # noqa: E501
     "setr-mla", "cityscapes", 77.0, 79.59),
)


def _spec(config: str, path: str, variant: str, dataset: str, miou: float, miou_ms: float) -> PretrainedSpec:
    ade = dataset == "ade20k"
    crop = 512 if ade else 768
    recipe = {"resize": (2048, 512) if ade else (2048, 1024), "mode": "slide", "crop": (crop, crop),
              "stride": (341, 341) if ade else (512, 512)}
    mla = variant == "setr-mla"
    tag = f"mmseg_{dataset}_{'160k' if ade else '80k'}" + ("" if mla else f"_{variant.split('-')[1]}") + (
        "_8xb1" if "8xb1-160k" in config else "")
    return PretrainedSpec(
        name=f"{'setr_mla' if mla else 'setr'}_vit_large_patch16_224.{tag}",
        upstream="mmseg", variant=variant, head="setr_mla" if mla else "setr", backbone="vit_large_patch16_224",
        # SETR-MLA's ViT runs its blocks without the class token (mmseg's with_cls_token=False)
        backbone_kwargs={"img_size": crop, **({"class_token": False, "global_pool": "avg"} if mla else {})},
        dataset=f"mmseg_{dataset}", output_stride=32, aux=False,
        align_corners=False, input_size=(crop, crop),
        file=UpstreamFile("openmmlab", f"v0.5/setr/{path}", hash_in_name(path.rsplit("/", 1)[-1])),
        carry_palette=True, inference=recipe,
        metrics={"mIoU": miou, "mIoU_ms_flip": miou_ms, "eval": "single scale (slide)"},
        metrics_source=f"mmsegmentation 1.2.2's metafile for {config}.py",
        # SETR's four levels: Naive and PUP read the last, MLA all four
        config_fields={"feature_indices": (5, 11, 17, 23) if mla else (9, 14, 19, 23)})


def setr_entries() -> tuple[PretrainedSpec, ...]:
    """The 7 entries (Naive, PUP and MLA on ADE20K and Cityscapes; MLA on ADE20K twice, at batch sizes 16 and 8)."""
    return tuple(_spec(*row) for row in _ROWS)
