"""The zoo entries of transformers' segmentation repos on the Hub: UPerNet (``openmmlab/upernet-*``: transformers'
conversions of mmsegmentation's ADE20K checkpoints, whose model cards state the MIT licence), BEiT
(``microsoft/beit-*-finetuned-ade-640-640``, Apache-2.0) and SegFormer (``nvidia/segformer-b*-finetuned-*``: the
authors' checkpoints, under NVIDIA's non-commercial licence) and DPT (``Intel/dpt-large-ade``: the DPT authors'
ADE20K model, Apache-2.0).

Each entry names its repo's file at ``main``: the commit ids and the files' sha256 could not be read where these
entries were written (no network), so the revision is not pinned and no hash is checked; the first download is
converted and cached, and the cached copy's own sha256 is checked from then on. Pinning them is one line per entry
(``revision`` in the path, ``sha256``) where the Hub can be reached. The accuracy is mmsegmentation's for the
checkpoint each repo converts (single scale; the large Swin's is not in mmseg's metafile). transformers evaluates
them at 512x512 (``SegformerImageProcessor``: the image resized to 512x512, ImageNet's mean and std, labels as they
are); segzoo's entries run the whole image, as mmseg's test pipeline does after its resize.
"""
from __future__ import annotations

from typing import Optional

from ...upstream import PretrainedSpec, UpstreamFile
from ..licence_terms import NVIDIA_SEGFORMER_TERMS

__all__ = ["ENTRIES"]

_METRICS_SOURCE = ("mmsegmentation's metafile for the checkpoint the repo converts (transformers' "
                   "convert_{convnext,swin}_upernet_to_pytorch.py names it)")


def _entry(repo: str, backbone: str, miou: Optional[float], crop: int) -> PretrainedSpec:
    size = repo.rpartition("-")[2]
    family = "convnext" if "convnext" in repo else "swin"
    return PretrainedSpec(
        name=f"upernet_{backbone}.openmmlab_ade20k", upstream="transformers", variant="upernet", head="upernet",
        backbone=backbone, dataset="mmseg_ade20k", output_stride=32, aux=False, align_corners=False,
        input_size=(crop, crop), file=UpstreamFile("hub", f"{repo}/resolve/main/model.safetensors"),
        short_names=(f"upernet_{family}_{size}_ade20k",), license="mit",
        terms=f"MIT, as the model card of {repo} states; trained on ADE20K (research use, MIT CSAIL's terms).",
        metrics={"mIoU": miou, "eval": "single scale"}, metrics_source=_METRICS_SOURCE,
        config_fields={"feature_norms": ("c1", "c2", "c3", "c4"),
                       "feature_norm_eps": 1e-6 if family == "convnext" else 1e-5})


ENTRIES = (
    _entry("openmmlab/upernet-convnext-tiny", "convnext_tiny", 46.11, 512),
    _entry("openmmlab/upernet-convnext-small", "convnext_small", 48.56, 512),
    _entry("openmmlab/upernet-convnext-base", "convnext_base", 48.71, 512),
    _entry("openmmlab/upernet-convnext-large", "convnext_large", 53.16, 640),
    _entry("openmmlab/upernet-convnext-xlarge", "convnext_xlarge", 53.58, 640),
    _entry("openmmlab/upernet-swin-tiny", "swin_tiny_patch4_window7_224", 44.41, 512),
    _entry("openmmlab/upernet-swin-small", "swin_small_patch4_window7_224", 47.72, 512),
    _entry("openmmlab/upernet-swin-base", "swin_base_patch4_window12_384", 50.76, 512),
    _entry("openmmlab/upernet-swin-large", "swin_large_patch4_window12_384", None, 512),
)



def _beit(repo: str, backbone: str, indices: tuple[int, ...], channels: int) -> PretrainedSpec:
    size = "base" if "base" in repo else "large"
    return PretrainedSpec(
        name=f"upernet_{backbone}_feature2pyramid.microsoft_ade20k_640x640", upstream="transformers", variant="upernet",
        head="upernet", backbone=backbone, backbone_kwargs={"img_size": 640}, dataset="mmseg_ade20k",
        neck="feature2pyramid", output_stride=32, aux=False, align_corners=False, input_size=(640, 640),
        file=UpstreamFile("hub", f"{repo}/resolve/main/model.safetensors"),
        short_names=(f"upernet_beit_{size}_ade20k",),
        license="apache-2.0", options={"channels": channels},
        terms=f"Apache-2.0, as the model card of {repo} states; trained on ADE20K (research use, MIT CSAIL's terms).",
        metrics={"mIoU": None, "eval": "single scale (slide)"},
        metrics_source=f"none recorded: {repo}'s card could not be read where this entry was written",
        inference={"resize": (2560, 640), "mode": "slide", "crop": (640, 640), "stride": (426, 426)},
        config_fields={"feature_indices": indices, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
                       "backbone_norm_eps": 1e-12})


# BEiT fine-tuned on ADE20K by its authors (microsoft/unilm), in transformers' layout: BEiT normalises images with
# mean and std 0.5; transformers' BEiT LayerNorms use BeitConfig's default epsilon 1e-12; it reads the default
# out_indices [3, 5, 7, 11] (large: [7, 11, 15, 23]) as blocks 1, 3, 5, 9 (5, 9, 13, 21), see layout.py; the recipe
# is the BEiT authors' (640 windows after a 2560x640 resize)
ENTRIES = ENTRIES + (
    _beit("microsoft/beit-base-finetuned-ade-640-640", "beit_base_patch16_224", (1, 3, 5, 9), 768),
    _beit("microsoft/beit-large-finetuned-ade-640-640", "beit_large_patch16_224", (5, 9, 13, 21), 1024),
)


def _segformer(size: str, dataset: str, crop: int, miou: float) -> PretrainedSpec:
    """SegFormer as its authors trained it (NVlabs/SegFormer), converted to transformers' layout by transformers."""
    ade = dataset == "ade"
    repo = f"nvidia/segformer-{size}-finetuned-{dataset}-{crop}-{crop}"
    recipe = ({"resize": (2048, crop), "mode": "whole"} if ade else
              {"resize": (2048, 1024), "mode": "slide", "crop": (1024, 1024), "stride": (768, 768)})
    return PretrainedSpec(
        name=f"segformer_mit_{size}.nvidia_{'ade20k' if ade else 'cityscapes'}_{crop}x{crop}", upstream="transformers",
        variant="segformer", head="segformer", backbone=f"mit_{size}",
        dataset="mmseg_ade20k" if ade else "mmseg_cityscapes", output_stride=32, aux=False, align_corners=False,
        input_size=(crop, crop), file=UpstreamFile("hub", f"{repo}/resolve/main/model.safetensors"),
        short_names=(f"segformer_{size}_{'ade20k' if ade else 'cityscapes'}" + ("_640" if crop == 640 else ""),),
        license="other", terms=NVIDIA_SEGFORMER_TERMS, inference=recipe,
        options={"channels": 256 if size in ("b0", "b1") else 768, "projection": "linear"},
        metrics={"mIoU": miou, "eval": f"single scale ({recipe['mode']})"},
        metrics_source="the SegFormer paper (Xie et al., NeurIPS 2021), Table 1, for the authors' checkpoint the repo "
                       "converts",
        config_fields={"backbone_norm_eps": 1e-5})  # transformers' MiT: PyTorch's default in every LayerNorm


# SegFormer by its authors in transformers' layout: ADE20K (B0 .. B4 at 512x512 crops, B5 at 640x640) and Cityscapes
# (1024x1024 crops). transformers' SegformerImageProcessor resizes to the crop size with ImageNet's mean and std (and
# reduces ADE20K's labels by one: its 150 classes are mmseg's); segzoo's entries follow the authors' test recipe (mmseg
# 0.x configs: ADE20K whole image after a 2048x512 resize, Cityscapes 1024 windows every 768 pixels)
ENTRIES = ENTRIES + tuple(_segformer(size, "ade", 640 if size == "b5" else 512, miou) for size, miou in (
    ("b0", 37.4), ("b1", 42.2), ("b2", 46.5), ("b3", 49.4), ("b4", 50.3), ("b5", 51.0))) + tuple(
    _segformer(size, "cityscapes", 1024, miou) for size, miou in (
        ("b0", 76.2), ("b1", 78.5), ("b2", 81.0), ("b3", 81.7), ("b4", 82.3), ("b5", 82.4)))


# DPT-Large by its authors (isl-org/DPT) in transformers' layout: ViT-L/16 at 384 (its position embedding's grid,
# resized bilinearly to other sizes as transformers does), the outputs of blocks 6, 12, 18 and 24, readout "project",
# BatchNorms in the fusion's residual units (the authors' segmentation model), logits upsampled x2 in the head;
# DPTImageProcessor's mean and std 0.5. The DPT paper trains ADE20K at 480x480 crops; segzoo's recipe evaluates the
# whole image with its short side at 480 (the repo's preprocessor_config.json could not be read where this was written)
ENTRIES = ENTRIES + (PretrainedSpec(
    name="dpt_vit_large_patch16_224.intel_ade20k", upstream="transformers", variant="dpt", head="dpt",
    backbone="vit_large_patch16_224", backbone_kwargs={"img_size": 384}, dataset="mmseg_ade20k", output_stride=32,
    aux=False, align_corners=False, input_size=(480, 480),
    file=UpstreamFile("hub", "Intel/dpt-large-ade/resolve/main/model.safetensors"),
    short_names=("dpt_large_ade20k",), license="apache-2.0",
    terms="Apache-2.0, as the model card of Intel/dpt-large-ade states; trained on ADE20K (research use, MIT CSAIL's "
          "terms).",
    options={"channels": 256, "post_process_channels": (256, 512, 1024, 1024), "readout": "project",
             "residual_norm": True},
    inference={"resize": (2048, 480), "mode": "whole"},
    metrics={"mIoU": 47.63, "eval": "the authors' (DPT paper)"},
    metrics_source="the DPT paper (Ranftl et al., ICCV 2021), Table 4, DPT-Large on ADE20K val",
    config_fields={"feature_indices": (5, 11, 17, 23), "position_resize": "bilinear", "backbone_norm_eps": 1e-12,
                   "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}),)


_MASK2FORMER_TERMS = (
    "CC BY-NC 4.0 (non-commercial): Mask2Former's model zoo (github.com/facebookresearch/Mask2Former, MODEL_ZOO.md) "
    "licenses its checkpoints under it, and {repo} converts one of them (its model card states the licence 'other'); "
    "the training data's terms apply as well ({data}).")
_MASK2FORMER_DATA = {"ade": "ADE20K: MIT CSAIL's research terms",
                     "cityscapes": "Cityscapes: non-commercial research only"}
# Mask2Former's model zoo (MODEL_ZOO.md), semantic segmentation, single scale. ADE20K Swin-B: the zoo has an ImageNet-1k
# (52.4) and an ImageNet-21k (53.9) checkpoint, both at 640 crops with the same network; which one
# facebook/mask2former-swin-base-ade-semantic converts could not be read where this was written (no network), so None
_MASK2FORMER_MIOU = {("tiny", "ade"): 47.7, ("small", "ade"): 51.3, ("base", "ade"): None, ("large", "ade"): 56.1,
                     ("tiny", "cityscapes"): 82.1, ("small", "cityscapes"): 82.6, ("base", "cityscapes"): 83.3,
                     ("large", "cityscapes"): 83.3}
_MASK2FORMER_SWINS = {"tiny": "swin_tiny_patch4_window7_224", "small": "swin_small_patch4_window7_224",
                      "base": "swin_base_patch4_window12_384", "large": "swin_large_patch4_window12_384"}


def _mask2former(size: str, dataset: str) -> PretrainedSpec:
    """Mask2Former as its authors trained it (facebookresearch/Mask2Former, semantic segmentation), converted to
    transformers' layout by transformers (convert_mask2former_original_pytorch_checkpoint_to_pytorch.py: Swin-T and
    Swin-S at window 7, Swin-B and Swin-L at window 12, the 384 ImageNet-21k Swins' structure). The authors evaluate the
    whole image: ADE20K with its short side at the training crop (512 for Swin-T and -S; 640 for -B and -L, their
    res640 configs), Cityscapes at its own 1024x2048."""
    ade = dataset == "ade"
    repo = f"facebook/mask2former-swin-{size}-{dataset}-semantic"
    short = 640 if ade and size in ("base", "large") else 512
    recipe = {"resize": (2560 if short == 640 else 2048, short), "mode": "whole"} if ade else {
        "resize": (2048, 1024), "mode": "whole"}
    tag = "ade20k" if ade else "cityscapes"
    miou = _MASK2FORMER_MIOU[size, dataset]
    backbone = _MASK2FORMER_SWINS[size]
    return PretrainedSpec(
        name=f"mask2former_{backbone}.facebook_{tag}", upstream="transformers", variant="mask2former",
        head="mask2former", backbone=backbone, dataset="mmseg_ade20k" if ade else "mmseg_cityscapes",
        output_stride=32, aux=False, align_corners=False, input_size=(short, short) if ade else (1024, 2048),
        file=UpstreamFile("hub", f"{repo}/resolve/main/model.safetensors"),
        short_names=(f"mask2former_swin_{size}_{tag}",),
        license="cc-by-nc-4.0", terms=_MASK2FORMER_TERMS.format(repo=repo, data=_MASK2FORMER_DATA[dataset]),
        inference=recipe, metrics={"mIoU": miou, "eval": "single scale (whole)"},
        metrics_source=("Mask2Former's model zoo (MODEL_ZOO.md) and paper (Cheng et al., CVPR 2022), semantic "
                        "segmentation, single scale, for the authors' checkpoint the repo converts" if miou is not None
                        else "none recorded: Mask2Former's model zoo has two ADE20K Swin-B checkpoints (ImageNet-1k: "
                             "52.4, ImageNet-21k: 53.9 mIoU) and which one the repo converts could not be read"),
        config_fields={"feature_norms": ("c1", "c2", "c3", "c4"), "feature_norm_eps": 1e-5})


# Mask2Former (Swin) by its authors in transformers' layout: ADE20K (150 classes) and Cityscapes (19), semantic models;
# Mask2Former's defaults (100 queries, 10 decoder predictions, 6 deformable layers, 256 wide) are the head's, as every
# one of these repos has them (a differing one fails its conversion on the shapes, naming the keys)
ENTRIES = ENTRIES + tuple(_mask2former(size, dataset) for dataset in ("ade", "cityscapes")
                          for size in ("tiny", "small", "base", "large"))
