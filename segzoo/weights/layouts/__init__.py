"""Upstream checkpoint layouts: where each upstream keeps a model's backbone, neck, aux head and head in its
checkpoints. Each module offers ``SOURCE``, ``VARIANTS``, ``detect(keys)``, ``infer_backbone(keys, variant)``,
``rules(form, config, variant)`` and ``dropped(variant)``; the heads' own key rules come from their ``upstreams``."""
from types import ModuleType

from ...errors import CheckpointError
from . import reference, torchvision

__all__ = ["LAYOUTS", "get_layout"]

LAYOUTS: dict[str, ModuleType] = {reference.SOURCE: reference, torchvision.SOURCE: torchvision}


def get_layout(source: str) -> ModuleType:
    """The layout module of an upstream (``"reference"``, ``"torchvision"``)."""
    if source not in LAYOUTS:
        raise CheckpointError(f"no checkpoint layout is known for the upstream {source!r}; known: "
                              f"{', '.join(LAYOUTS)}")
    return LAYOUTS[source]
