"""The multi-level neck of ViT segmentation models (mmsegmentation's ``MultiLevelNeck``): a plain ViT's four
same-stride levels rescaled into a pyramid (x4, x2, x1, x0.5: strides 4, 8, 16, 32 from a stride-16 ViT)."""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..upstream import Upstream
from .base import SegmentationNeck

__all__ = ["MultiLevelNeck"]

_NAMES = ("c1", "c2", "c3", "c4")


class MultiLevelNeck(SegmentationNeck):
    """Per level: a 1x1 convolution to ``out_channels``, a bilinear rescale by ``scales[i]``
    (``align_corners=False``, by scale factor as mmseg resizes), then a 3x3 convolution. The convolutions have
    biases and no norm or activation (mmseg's defaults, which its ViT configs keep).

    Args:
        in_channels: Channels of ``c1`` .. ``c4``.
        out_channels: Channels of every output level (mmseg's ViT-B: 768).
        scales: The rescale factor of each level, ``c1`` first (mmseg's ViT configs: 4, 2, 1, 0.5).
    """

    display_name = "multi-level neck"
    citation = """@article{zheng2021rethinking,
  title={Rethinking Semantic Segmentation from a Sequence-to-Sequence Perspective with Transformers},
  author={Zheng, Sixiao and Lu, Jiachen and Zhao, Hengshuang and others}, journal={CVPR}, year={2021}
}"""
    upstreams = (
        Upstream("mmseg", "multilevel", rules=((r"lateral_convs\.(\d)\.conv", r"lateral_convs.\1"),
                                               (r"convs\.(\d)\.conv", r"convs.\1"))),
    )

    def __init__(self, in_channels: dict[str, int], align_corners: bool = False, out_channels: int = 768,
                 scales: Sequence[float] = (4, 2, 1, 0.5)):
        super().__init__()
        if len(scales) != len(_NAMES) or any(not isinstance(s, (int, float)) or isinstance(s, bool) or s <= 0
                                             for s in scales):
            raise ValueError(f"multilevel neck: scales must be four numbers > 0 (c1 .. c4), got {scales!r}")
        self.scales = tuple(float(s) for s in scales)
        self.lateral_convs = nn.ModuleList(nn.Conv2d(in_channels[name], out_channels, 1) for name in _NAMES)
        self.convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in _NAMES)
        self.out_channels = {name: out_channels for name in _NAMES}

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        out = dict(features)
        for name, lateral, conv, scale in zip(_NAMES, self.lateral_convs, self.convs, self.scales):
            x = lateral(features[name])
            if scale != 1:
                x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            out[name] = conv(x)
        return out
