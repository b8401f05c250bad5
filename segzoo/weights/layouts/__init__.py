"""Upstream checkpoint layouts: where each upstream keeps a model's backbone, neck, aux head and head in its
checkpoints. Each module offers ``SOURCE``, ``VARIANTS``, ``detect(keys)``, ``infer_backbone(keys, variant)``,
``rules(form, config, variant)``, ``dropped(variant)`` and ``prepare(state_dict)`` (value-preserving fixes of an
upstream's storage, applied before the keys are placed); the heads' own key rules come from their ``upstreams``."""
from types import ModuleType

from ...errors import CheckpointError
from . import mmseg, reference, torchvision

__all__ = ["LAYOUTS", "get_layout"]

LAYOUTS: dict[str, ModuleType] = {reference.SOURCE: reference, torchvision.SOURCE: torchvision, mmseg.SOURCE: mmseg}


def get_layout(source: str) -> ModuleType:
    """The layout module of an upstream (``"reference"``, ``"torchvision"``, ``"mmseg"``)."""
    if source not in LAYOUTS:
        raise CheckpointError(f"no checkpoint layout is known for the upstream {source!r}; known: "
                              f"{', '.join(LAYOUTS)}")
    return LAYOUTS[source]
