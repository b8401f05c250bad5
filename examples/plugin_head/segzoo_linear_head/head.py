"""A linear probe head: BatchNorm + 1x1 conv on c4, the usual way to judge a frozen backbone's features."""
from torch import Tensor, nn

from segzoo.heads import SegmentationHead


class LinearHead(SegmentationHead):
    """BatchNorm2d then a 1x1 convolution to the classes.

    Args:
        in_channels: Channels per feature; this head reads ``c4``.
        num_classes: Number of classes.
        align_corners: Unused (no resampling here).
    """

    in_features = ("c4",)

    def __init__(self, in_channels: dict, num_classes: int, align_corners: bool = True):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels["c4"])
        self.classifier = nn.Conv2d(in_channels["c4"], num_classes, kernel_size=1)

    def forward(self, features: dict, image: Tensor | None = None) -> Tensor:
        return self.classifier(self.norm(features["c4"]))
