"""The linear head of DINOv2's segmentation evaluation (Oquab et al., "DINOv2: Learning Robust Visual Features without
Supervision", 2023; its ``BNHead``): a BatchNorm and a 1x1 convolution over the backbone's last level (DINOv2's
"linear" heads) or over its last four levels concatenated (the "multi-scale" heads' network). It measures how
linearly separable a backbone's features are, so it adds nothing else."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import concat_channels
from ..upstream import Upstream
from .base import SegmentationHead
from .options import check_choice, check_fraction

__all__ = ["LinearProbeHead"]

_LEVELS = ("c1", "c2", "c3", "c4")


class LinearProbeHead(SegmentationHead):
    """A BatchNorm over the channels and a 1x1 classifier, on c4 (``levels=1``) or on c1 .. c4 concatenated
    (``levels=4``, c1 first: DINOv2's oldest block first), each level resized to c1's size first (bilinear, the
    model's ``align_corners``; a ViT's levels share one size). Logits at that level's stride.

    Args:
        in_channels: Channels per feature; reads ``c4``, or ``c1`` .. ``c4``.
        num_classes: Number of classes.
        align_corners: Bilinear resizing mode (DINOv2: False).
        levels: 1 (the last level) or 4 (all four).
        dropout: Dropout2d before the classifier (DINOv2's heads: 0).
    """

    citation = """@article{oquab2023dinov2,
  title={DINOv2: Learning Robust Visual Features without Supervision},
  author={Oquab, Maxime and Darcet, Timoth{\\'e}e and Moutakanni, Th{\\'e}o and others},
  journal={Transactions on Machine Learning Research}, year={2024}
}"""

    in_features = _LEVELS
    upstreams = (
        # Meta's head files: decode_head.bn (a SyncBatchNorm) and decode_head.conv_seg
        Upstream("dinov2", "linear", options={"levels": 1}, classifier="decode_head.conv_seg.weight",
                 rules=((r"decode_head\.bn", "head.bn"), (r"decode_head\.conv_seg", "head.classifier"))),
        Upstream("dinov2", "ms", options={"levels": 4}, classifier="decode_head.conv_seg.weight",
                 rules=((r"decode_head\.bn", "head.bn"), (r"decode_head\.conv_seg", "head.classifier"))),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = False,
                 levels: int = 1, dropout: float = 0.0):
        super().__init__()
        check_choice("linear_probe head", "levels", levels, (1, 4))
        check_fraction("linear_probe head", dropout=dropout)
        self.align_corners = align_corners
        self.levels = _LEVELS[-levels:]
        channels = sum(in_channels[name] for name in self.levels)
        self.bn = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        size = features[self.levels[0]].shape[-2:]
        maps = [features[name] if features[name].shape[-2:] == size else
                F.interpolate(features[name], size=size, mode="bilinear", align_corners=self.align_corners)
                for name in self.levels]
        x = maps[0] if len(maps) == 1 else concat_channels(maps)
        return self.classifier(self.dropout(self.bn(x)))
