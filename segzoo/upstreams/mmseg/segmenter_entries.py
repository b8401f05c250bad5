"""mmsegmentation 1.2.2's Segmenter checkpoints (its metafile in configs/segmenter; Apache-2.0): the mask transformer
on ViT-T, S, B and L and the linear decoder on ViT-S, ADE20K, as zoo entries of the ``segmenter`` head on timm's
ViTs, each with mmseg's test recipe (sliding windows of the training crop) and its reported single-scale mIoU."""
from __future__ import annotations

from ...upstream import PretrainedSpec, UpstreamFile, hash_in_name

__all__ = ["segmenter_entries"]

# (config, file under v0.5/segmenter/, timm ViT, crop, form variant, mIoU, mIoU with multi-scale + flip)
_ROWS = (
    ("segmenter_vit-t_mask_8xb1-160k_ade20k-512x512",
     "segmenter_vit-t_mask_8x1_512x512_160k_ade20k/segmenter_vit-t_mask_8x1_512x512_160k_ade20k_20220105_151706-ffcf7509.pth",  # noqa: E501
     "vit_tiny_patch16_224", 512, "segmenter", 39.99, 40.83),
    ("segmenter_vit-s_fcn_8xb1-160k_ade20k-512x512",
     "segmenter_vit-s_linear_8x1_512x512_160k_ade20k/segmenter_vit-s_linear_8x1_512x512_160k_ade20k_20220105_151713-39658c46.pth",  # noqa: E501
     "vit_small_patch16_224", 512, "segmenter-linear", 45.75, 46.82),
    ("segmenter_vit-s_mask_8xb1-160k_ade20k-512x512",
     "segmenter_vit-s_mask_8x1_512x512_160k_ade20k/segmenter_vit-s_mask_8x1_512x512_160k_ade20k_20220105_151706-511bb103.pth",  # noqa: E501
     "vit_small_patch16_224", 512, "segmenter", 46.19, 47.85),
    ("segmenter_vit-b_mask_8xb1-160k_ade20k-512x512",
     "segmenter_vit-b_mask_8x1_512x512_160k_ade20k/segmenter_vit-b_mask_8x1_512x512_160k_ade20k_20220105_151706-bc533b08.pth",  # noqa: E501
     "vit_base_patch16_224", 512, "segmenter", 49.6, 51.07),
    ("segmenter_vit-l_mask_8xb1-160k_ade20k-512x512",  # the name says 512; the config trains and tests at 640
     "segmenter_vit-l_mask_8x1_512x512_160k_ade20k/segmenter_vit-l_mask_8x1_512x512_160k_ade20k_20220105_162750-7ef345be.pth",  # noqa: E501
     "vit_large_patch16_224", 640, "segmenter", 52.16, 53.65),
)


def _spec(config: str, path: str, backbone: str, crop: int, variant: str, miou: float, miou_ms: float
          ) -> PretrainedSpec:
    linear = variant == "segmenter-linear"
    recipe = {"resize": (2048 if crop == 512 else 2560, crop), "mode": "slide", "crop": (crop, crop),
              "stride": (crop - 32, crop - 32)}
    return PretrainedSpec(
        name=f"segmenter_{backbone}.mmseg_ade20k_160k" + ("_linear" if linear else "") + (
            "_640x640" if crop == 640 else ""),
        upstream="mmseg", variant=variant, head="segmenter", backbone=backbone, backbone_kwargs={"img_size": crop},
        dataset="mmseg_ade20k", output_stride=32, aux=False, align_corners=False, input_size=(crop, crop),
        file=UpstreamFile("openmmlab", f"v0.5/segmenter/{path}", hash_in_name(path.rsplit("/", 1)[-1])),
        carry_palette=True, inference=recipe,
        metrics={"mIoU": miou, "mIoU_ms_flip": miou_ms, "eval": "single scale (slide)"},
        metrics_source=f"mmsegmentation 1.2.2's metafile for {config}.py",
        # the ViT's last block with its final LayerNorm; Segmenter normalises images with mean and std 0.5
        config_fields={"feature_norms": ("c4",), "feature_norm_eps": 1e-6, "mean": (0.5,) * 3, "std": (0.5,) * 3})


def segmenter_entries() -> tuple[PretrainedSpec, ...]:
    """The 5 entries (mask transformer on ViT-T, S, B, L; linear on ViT-S)."""
    return tuple(_spec(*row) for row in _ROWS)
