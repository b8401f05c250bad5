"""mmsegmentation 1.2.2's DPT checkpoint (its metafile in configs/dpt; Apache-2.0): DPT on ViT-B/16, ADE20K, as a zoo
entry of the ``dpt`` head on timm's ViT-B, with mmseg's test recipe (the whole image, short side 512) and its
reported single-scale mIoU."""
from __future__ import annotations

from ...upstream import PretrainedSpec, UpstreamFile, hash_in_name

__all__ = ["dpt_entries"]

_PATH = "v0.5/dpt/dpt_vit-b16_512x512_160k_ade20k/dpt_vit-b16_512x512_160k_ade20k-db31cf52.pth"


def dpt_entries() -> tuple[PretrainedSpec, ...]:
    """The one entry."""
    return (PretrainedSpec(
        name="dpt_vit_base_patch16_224.mmseg_ade20k_160k", upstream="mmseg", variant="dpt", head="dpt",
        backbone="vit_base_patch16_224", dataset="mmseg_ade20k", output_stride=32, aux=False, align_corners=False,
        input_size=(512, 512), file=UpstreamFile("openmmlab", _PATH, hash_in_name(_PATH.rsplit("/", 1)[-1])),
        carry_palette=True, inference={"resize": (2048, 512), "mode": "whole"},
        metrics={"mIoU": 46.97, "mIoU_ms_flip": 48.34, "eval": "single scale"},
        metrics_source="mmsegmentation 1.2.2's metafile for dpt_vit-b16_8xb2-160k_ade20k-512x512.py",
        # the outputs of blocks 3, 6, 9 and 12, without the ViT's final LayerNorm (mmseg's final_norm=False); the
        # config leaves the ViT's norm_cfg at mmseg's default, a LayerNorm with PyTorch's epsilon (timm's ViT: 1e-6)
        config_fields={"feature_indices": (2, 5, 8, 11), "backbone_norm_eps": 1e-5}),)
