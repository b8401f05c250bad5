"""BEiT's feature pyramid (mmsegmentation's ``Feature2Pyramid``, transformers' ``fpn1`` .. ``fpn4``): a plain
ViT's four same-stride levels turned into strides 4, 8, 16 and 32 by transposed convolutions and max-pooling."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ..upstream import Upstream
from .base import SegmentationNeck

__all__ = ["Feature2Pyramid"]

_NAMES = ("c1", "c2", "c3", "c4")


def _rescale(scale: float, channels: int) -> nn.Module:
    """x4: two 2x2 stride-2 transposed convolutions with BN and GELU between them; x2: one; x1: identity;
    x0.5 and x0.25: max-pooling."""
    if scale == 4:
        return nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, stride=2), nn.BatchNorm2d(channels),
                             nn.GELU(), nn.ConvTranspose2d(channels, channels, 2, stride=2))
    if scale == 2:
        return nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, stride=2))
    if scale == 1:
        return nn.Identity()
    return nn.MaxPool2d(int(round(1 / scale)), stride=int(round(1 / scale)))


class Feature2Pyramid(SegmentationNeck):
    """Rescale level ``i`` by ``rescales[i]`` (each of 4, 2, 1, 0.5, 0.25); channels are kept.

    Args:
        in_channels: Channels of ``c1`` .. ``c4`` (a ViT's embedding width at every level).
        rescales: One factor per level, ``c1`` first (BEiT and MAE: 4, 2, 1, 0.5).
    """

    display_name = "feature pyramid"
    citation = """@inproceedings{bao2022beit,
  title={BEiT: BERT Pre-Training of Image Transformers},
  author={Bao, Hangbo and Dong, Li and Piao, Songhao and Wei, Furu}, booktitle={ICLR}, year={2022}
}"""
    upstreams = (
        Upstream("mmseg", "feature2pyramid", rules=((r"upsample_4x", "rescale.0"), (r"upsample_2x", "rescale.1"))),
        Upstream("transformers", "feature2pyramid", rules=((r"fpn1", "rescale.0"), (r"fpn2", "rescale.1"))),
    )

    def __init__(self, in_channels: dict[str, int], align_corners: bool = False,
                 rescales: Sequence[float] = (4, 2, 1, 0.5)):
        super().__init__()
        if len(rescales) != len(_NAMES) or any(r not in (4, 2, 1, 0.5, 0.25) for r in rescales):
            raise ValueError(f"feature2pyramid neck: rescales must be four of 4, 2, 1, 0.5, 0.25 (c1 .. c4), "
                             f"got {rescales!r}")
        self.rescales = tuple(float(r) for r in rescales)
        self.rescale = nn.ModuleList(_rescale(r, in_channels[name]) for r, name in zip(self.rescales, _NAMES))
        self.out_channels = dict(in_channels)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        out = dict(features)
        for name, module in zip(_NAMES, self.rescale):
            out[name] = module(features[name])
        return out
