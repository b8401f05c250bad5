"""The zoo entries of DINOv2's segmentation heads (Meta, facebookresearch/dinov2; Apache-2.0 for code and weights
since 2023-08-31, before these heads were published): the linear head on the last block and the "multi-scale" (ms)
head on the last four, on ADE20K and Pascal VOC 2012 (trained on train + aug), for ViT-S/14, B/14, L/14 and g/14 (no
heads were published for the models with registers). Each needs two files: the backbone's
(``dinov2_<arch>_pretrain.pth``) and the head's.

Recipes are Meta's configs': the image's short side resized to 512 (linear) or 640 (ms), windows of that size every
341 or 320 pixels, each centre-padded to the patch (14) and the logits resized from the padded grid to the window.
Meta's ms results add test-time augmentation (the short side at 1, 1.32, 1.73, 2.28 and 3 times 640, each flipped):
``segzoo predict --scales 1 1.32 1.73 2.28 3 --flip`` runs the like. mIoU is the DINOv2 paper's (Table 10): the
linear heads single scale, the ms heads with that augmentation only. Meta publishes no hashes for these files.
"""
from __future__ import annotations

from ...upstream import PretrainedSpec, UpstreamFile

__all__ = ["ENTRIES", "ARCHS"]

# Meta's architecture -> (timm backbone, mIoU: ADE20K linear, ADE20K ms, VOC linear, VOC ms)
ARCHS = {
    "vits14": ("vit_small_patch14_dinov2", (44.3, 47.2, 81.1, 82.6)),
    "vitb14": ("vit_base_patch14_dinov2", (47.3, 51.3, 82.5, 84.9)),
    "vitl14": ("vit_large_patch14_dinov2", (47.7, 53.1, 82.1, 86.0)),
    "vitg14": ("vit_giant_patch14_dinov2", (49.0, 53.0, 83.0, 86.2)),
}
_TERMS = ("Apache-2.0, as DINOv2's LICENSE and model card state (code and weights); the training data's terms apply "
          "(ADE20K: research use, MIT CSAIL's terms; Pascal VOC: Flickr's terms of use).")


def _entry(arch: str, dataset: str, head: str) -> PretrainedSpec:
    backbone, mious = ARCHS[arch]
    ade, linear = dataset == "ade20k", head == "linear"
    miou = mious[(0 if ade else 2) + (0 if linear else 1)]
    crop, stride = (512, 341) if linear else (640, 320)
    return PretrainedSpec(
        name=f"linear_probe_{backbone}.dinov2_{dataset}" + ("" if linear else "_ms"), upstream="dinov2", variant=head,
        head="linear_probe",
        backbone=backbone, dataset="mmseg_ade20k" if ade else "mmseg_voc_aug", output_stride=32, aux=False,
        align_corners=False, input_size=(crop, crop), carry_palette=True,
        file=UpstreamFile("fbaipublicfiles", f"dinov2_{arch}/dinov2_{arch}_{dataset}_{head}_head.pth"),
        backbone_file=UpstreamFile("fbaipublicfiles", f"dinov2_{arch}/dinov2_{arch}_pretrain.pth"),
        short_names=(f"linear_probe_dinov2_{arch}_{dataset}" + ("" if linear else "_ms"),), license="apache-2.0",
        terms=_TERMS,
        base_model=f"timm/{backbone}.lvd142m",
        inference={"resize": (99999999, crop), "mode": "slide", "crop": (crop, crop), "stride": (stride, stride)},
        metrics={"mIoU": miou, "eval": "single scale (slide)"} if linear else {
            "mIoU": None, "mIoU_ms_flip": miou, "eval": "5 scales + flip (slide)"},
        metrics_source="the DINOv2 paper (Oquab et al., TMLR 2024), Table 10",
        # the last block (linear) or the last four (ms), each normalised by the ViT's final LayerNorm; DINOv2's
        # position resize and its centre padding
        config_fields={"feature_norms": ("c4",) if linear else ("c1", "c2", "c3", "c4"), "feature_norm_eps": 1e-6,
                       "position_resize": "dinov2", "patch_padding": "center"})


ENTRIES = tuple(_entry(arch, dataset, head) for arch in ARCHS for dataset in ("ade20k", "voc2012")
                for head in ("linear", "ms"))
