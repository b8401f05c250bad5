"""mmsegmentation 1.2.2's SETR-Naive and SETR-PUP checkpoints (its metafile in configs/setr; Apache-2.0): ViT-L on
ADE20K (512x512) and Cityscapes (768x768), as zoo entries of the ``setr`` head on timm's ViT-L, each with mmseg's
test recipe (sliding windows of the crop size) and its reported single-scale mIoU. (SETR-MLA, which needs mmseg's
MLA neck, is not in the zoo yet.)"""
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
)


def _spec(config: str, path: str, variant: str, dataset: str, miou: float, miou_ms: float) -> PretrainedSpec:
    ade = dataset == "ade20k"
    crop = 512 if ade else 768
    recipe = {"resize": (2048, 512) if ade else (2048, 1024), "mode": "slide", "crop": (crop, crop),
              "stride": (341, 341) if ade else (512, 512)}
    return PretrainedSpec(
        name=f"setr_vit_large_patch16_224.mmseg_{dataset}_{'160k' if ade else '80k'}_{variant.split('-')[1]}",
        upstream="mmseg", variant=variant, head="setr", backbone="vit_large_patch16_224",
        backbone_kwargs={"img_size": crop}, dataset=f"mmseg_{dataset}", output_stride=32, aux=False,
        align_corners=False, input_size=(crop, crop),
        file=UpstreamFile("openmmlab", f"v0.5/setr/{path}", hash_in_name(path.rsplit("/", 1)[-1])),
        carry_palette=True, inference=recipe,
        metrics={"mIoU": miou, "mIoU_ms_flip": miou_ms, "eval": "single scale (slide)"},
        metrics_source=f"mmsegmentation 1.2.2's metafile for {config}.py",
        config_fields={"feature_indices": (9, 14, 19, 23)})  # SETR's four levels; the heads read the last


def setr_entries() -> tuple[PretrainedSpec, ...]:
    """The 4 entries (Naive and PUP on ADE20K and Cityscapes)."""
    return tuple(_spec(*row) for row in _ROWS)
