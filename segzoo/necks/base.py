"""The interface every neck, built-in or third-party, implements."""
from __future__ import annotations

from typing import ClassVar, Optional

from torch import Tensor, nn

from ..upstream import Upstream

__all__ = ["SegmentationNeck"]


class SegmentationNeck(nn.Module):
    """Base class of necks: modules between the backbone and the head that rewrite some feature maps.

    A neck is constructed by ``SegmentationModel`` as ``NeckClass(in_channels, align_corners=...)``, where
    ``in_channels`` maps each backbone feature name (``"c1"`` .. ``"c4"``) to its channel count. After
    construction ``out_channels`` maps every feature name to its channels as the neck returns it.
    ``forward(features)`` receives the dict of backbone feature maps and returns the dict the head reads (the
    aux head always reads the backbone's raw ``c3``). Necks are plug-ins of the ``segzoo.necks`` entry-point
    group, like heads.

    Class attributes:
        output_stride: The backbone output stride the neck is built for (JPU: 32), or None for any.
        display_name: How the neck is named in texts (``"JPU"``).
        citation: BibTeX of the neck's paper (written into model cards).
        upstreams: Its forms in upstream checkpoints (key rules relative to the neck), see ``segzoo.upstream``.
    """

    output_stride: ClassVar[Optional[int]] = None
    display_name: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    upstreams: ClassVar[tuple[Upstream, ...]] = ()
    out_channels: dict[str, int]

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError
