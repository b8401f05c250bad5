"""mmsegmentation 1.2.2's SegFormer checkpoints (its metafile in configs/segformer): MiT-B0 .. B5 on ADE20K (512x512,
and B5 at 640x640) and on Cityscapes (1024x1024 crops), as zoo entries of the ``segformer`` head on segzoo's
``mit_b*`` backbones, each with mmseg's test recipe and its reported single-scale mIoU.

Licence: mmseg's metafile says Apache-2.0 (mmseg's code), but every one of these models was trained from the SegFormer
authors' ImageNet MiT weights, which NVIDIA publishes under the NVIDIA Source Code License for SegFormer
(non-commercial use only). segzoo states the stricter terms and flags the entries non-commercial.
"""
from __future__ import annotations

from ...upstream import PretrainedSpec, UpstreamFile, hash_in_name
from ..licence_terms import NVIDIA_SEGFORMER_TERMS

__all__ = ["segformer_entries"]

_ADE = {"resize": (2048, 512), "mode": "whole"}
_ADE_640 = {"resize": (2048, 640), "mode": "whole"}
_CITYSCAPES = {"resize": (2048, 1024), "mode": "slide", "crop": (1024, 1024), "stride": (768, 768)}

# (size, dataset, recipe, folder and file under v0.5/segformer/, mIoU, mIoU with multi-scale + flip)
_ROWS = (
    ("b0", "ade20k", _ADE, "segformer_mit-b0_512x512_160k_ade20k/segformer_mit-b0_512x512_160k_ade20k_20210726_101530-8ffa8fda.pth", 37.41, 38.34),  # noqa: E501
    ("b1", "ade20k", _ADE, "segformer_mit-b1_512x512_160k_ade20k/segformer_mit-b1_512x512_160k_ade20k_20210726_112106-d70e859d.pth", 40.97, 42.54),  # noqa: E501
    ("b2", "ade20k", _ADE, "segformer_mit-b2_512x512_160k_ade20k/segformer_mit-b2_512x512_160k_ade20k_20210726_112103-cbd414ac.pth", 45.58, 47.03),  # noqa: E501
    ("b3", "ade20k", _ADE, "segformer_mit-b3_512x512_160k_ade20k/segformer_mit-b3_512x512_160k_ade20k_20210726_081410-962b98d2.pth", 47.82, 48.81),  # noqa: E501
    ("b4", "ade20k", _ADE, "segformer_mit-b4_512x512_160k_ade20k/segformer_mit-b4_512x512_160k_ade20k_20210728_183055-7f509d7d.pth", 48.46, 49.76),  # noqa: E501
    ("b5", "ade20k", _ADE, "segformer_mit-b5_512x512_160k_ade20k/segformer_mit-b5_512x512_160k_ade20k_20210726_145235-94cedf59.pth", 49.13, 50.22),  # noqa: E501
    ("b5", "ade20k", _ADE_640, "segformer_mit-b5_640x640_160k_ade20k/segformer_mit-b5_640x640_160k_ade20k_20210801_121243-41d2845b.pth", 49.62, 50.36),  # noqa: E501
    ("b0", "cityscapes", _CITYSCAPES, "segformer_mit-b0_8x1_1024x1024_160k_cityscapes/segformer_mit-b0_8x1_1024x1024_160k_cityscapes_20211208_101857-e7f88502.pth", 76.54, 78.22),  # noqa: E501
    ("b1", "cityscapes", _CITYSCAPES, "segformer_mit-b1_8x1_1024x1024_160k_cityscapes/segformer_mit-b1_8x1_1024x1024_160k_cityscapes_20211208_064213-655c7b3f.pth", 78.56, 79.73),  # noqa: E501
    ("b2", "cityscapes", _CITYSCAPES, "segformer_mit-b2_8x1_1024x1024_160k_cityscapes/segformer_mit-b2_8x1_1024x1024_160k_cityscapes_20211207_134205-6096669a.pth", 81.08, 82.18),  # noqa: E501
    ("b3", "cityscapes", _CITYSCAPES, "segformer_mit-b3_8x1_1024x1024_160k_cityscapes/segformer_mit-b3_8x1_1024x1024_160k_cityscapes_20211206_224823-a8f8a177.pth", 81.94, 83.14),  # noqa: E501
    ("b4", "cityscapes", _CITYSCAPES, "segformer_mit-b4_8x1_1024x1024_160k_cityscapes/segformer_mit-b4_8x1_1024x1024_160k_cityscapes_20211207_080709-07f6c333.pth", 81.89, 83.38),  # noqa: E501
    ("b5", "cityscapes", _CITYSCAPES, "segformer_mit-b5_8x1_1024x1024_160k_cityscapes/segformer_mit-b5_8x1_1024x1024_160k_cityscapes_20211206_072934-87a052ec.pth", 82.25, 83.48),  # noqa: E501
)


def _spec(size: str, dataset: str, recipe: dict, path: str, miou: float, miou_ms: float) -> PretrainedSpec:
    crop = (640, 640) if recipe is _ADE_640 else (1024, 1024) if dataset == "cityscapes" else (512, 512)
    tag = f"mmseg_{dataset}_160k" + ("_640x640" if recipe is _ADE_640 else "")
    config = f"segformer_mit-{size}_8xb{1 if dataset == 'cityscapes' else 2}-160k_{dataset}-{crop[0]}x{crop[1]}"
    return PretrainedSpec(
        name=f"segformer_mit_{size}.{tag}", upstream="mmseg", variant="segformer", head="segformer",
        backbone=f"mit_{size}", dataset=f"mmseg_{dataset}", output_stride=32, aux=False, align_corners=False,
        input_size=crop, file=UpstreamFile("openmmlab", f"v0.5/segformer/{path}",
                                                                 hash_in_name(path.rsplit("/", 1)[-1])),
        carry_palette=True, inference=recipe, license="other", terms=NVIDIA_SEGFORMER_TERMS,
        metrics={"mIoU": miou, "mIoU_ms_flip": miou_ms, "eval": f"single scale ({recipe['mode']})"},
        metrics_source=f"mmsegmentation 1.2.2's metafile for {config}.py",
        config_fields={"backbone_norm_eps": 1e-6})  # mmseg's MiT: every LayerNorm 1e-6


def segformer_entries() -> tuple[PretrainedSpec, ...]:
    """The 13 entries (ADE20K: B0 .. B5 at 512, B5 at 640; Cityscapes: B0 .. B5)."""
    return tuple(_spec(*row) for row in _ROWS)
