"""ResNet styles by their usual names, as timm builds them.

Segmentation codebases name ResNets by style: v1b (torchvision's: 7x7 stem, stride on the 3x3 conv), v1c (a deep
stem of three 3x3 convs, 32-32-64, with no average-pool downsampling) and v1s (a 64-64-128 deep stem). timm has
v1b at every depth and v1c from ResNet-50 up (``resnet50c``); a v1c ResNet-18 / 34 is timm's ``resnet18`` /
``resnet34`` with the deep stem's options.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from torch import nn

from ..errors import ConfigError

__all__ = ["resnet_style", "RESNET_STYLES", "set_block_dilations", "contracted_dilations"]

RESNET_STYLES = ("b", "c")
_DEEP_STEM = {"stem_type": "deep", "stem_width": 32}


def resnet_style(depth: int, style: str) -> tuple[str, dict[str, Any]]:
    """The timm model name and ``backbone_kwargs`` of a ResNet of ``depth`` (18, 34, 50, 101, 152) in ``style``
    (``"b"`` or ``"c"``)."""
    if depth not in (18, 34, 50, 101, 152) or style not in RESNET_STYLES:
        raise ConfigError(f"no ResNet-{depth} v1{style}: depth must be 18, 34, 50, 101 or 152 and style one of "
                          f"{', '.join(RESNET_STYLES)}")
    if style == "b":
        return f"resnet{depth}", {}
    return (f"resnet{depth}c", {}) if depth >= 50 else (f"resnet{depth}", dict(_DEEP_STEM))


def set_block_dilations(backbone: nn.Module, dilations: Mapping[str, Sequence[int]]) -> None:
    """Give each block of the named ResNet stages its dilation, on the block's first 3x3 convolution (its other 3x3
    convolutions undilated), as mmsegmentation's ResNet dilates; ``ConfigError`` when a stage or its block count
    does not match. Padding follows the dilation, so every size is kept."""
    for stage, rates in dilations.items():
        layer = getattr(backbone, stage, None)
        blocks = list(layer.children()) if isinstance(layer, nn.Module) else []
        if len(blocks) != len(rates):
            raise ConfigError(f"block_dilations[{stage!r}] gives {len(rates)} dilations, but the backbone's "
                              f"{stage} has {len(blocks) or 'no'} blocks")
        for block, rate in zip(blocks, rates):
            convs = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
            for index, conv in enumerate(convs):
                dilation = rate if index == 0 else 1
                conv.dilation, conv.padding = (dilation, dilation), (dilation, dilation)


_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def contracted_dilations(depth: int, stage_dilations: Sequence[int], output_stride: int,
                         multi_grid: Optional[Sequence[int]] = None) -> dict[str, tuple[int, ...]]:
    """``block_dilations`` of mmsegmentation's dilated ResNet (``contract_dilation=True``: a dilated stage's first
    block at half its dilation; ``multi_grid``: the last stage's blocks at those dilations) for the stages where
    timm's ResNet at ``output_stride`` dilates otherwise: every dilated stage of a BasicBlock ResNet (timm dilates
    both its 3x3 convolutions), multi-grid, and dilations beyond the output stride (mmseg's ``r50b-d32``, which
    strides *and* dilates); {} where timm's own dilation is mmseg's."""
    dilations = {}
    timm_rate = 1  # timm dilates the stages past the output stride; each first block keeps the previous rate
    net_stride = 4
    for index, (stage, rate) in enumerate(zip(("layer1", "layer2", "layer3", "layer4"), stage_dilations)):
        blocks = _BLOCKS[depth][index]
        stride = 1 if index == 0 else 2
        previous = timm_rate
        if net_stride >= output_stride:
            timm_rate *= stride
        else:
            net_stride *= stride
        timm = (previous,) + (timm_rate,) * (blocks - 1)
        mmseg = tuple(multi_grid) if stage == "layer4" and multi_grid else \
            ((rate // 2 if rate > 1 else rate),) + (rate,) * (blocks - 1)
        if mmseg != timm or (depth < 50 and rate > 1):
            dilations[stage] = mmseg
    return dilations
