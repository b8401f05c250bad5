"""Which ResNet a checkpoint holds, told by how many blocks its layer3 has (every layout keys them by index)."""
from __future__ import annotations

import re
from typing import Iterable

from ..errors import CheckpointError

__all__ = ["resnet_by_depth"]


def resnet_by_depth(keys: Iterable[str], layer3_block: re.Pattern, backbones: dict[int, str], hint: str = "") -> str:
    """The timm backbone in ``backbones`` (layer3 block count -> name) whose layer3 has as many blocks as the
    keys matching ``layer3_block`` (its group 1 is the block index); ``CheckpointError`` naming the count."""
    blocks = {int(match.group(1)) for key in keys if (match := layer3_block.match(key))}
    depth = max(blocks) + 1 if blocks else 0
    if depth not in backbones:
        raise CheckpointError(f"cannot infer the backbone from {depth} layer3 blocks (known: "
                              f"{', '.join(f'{n} -> {name}' for n, name in backbones.items())}){hint}")
    return backbones[depth]
