"""FLOPs and parameters of a model, counted with torch's FLOP counter on the meta device (nothing is computed;
a multiply-add counts as 2 FLOPs; resampling and elementwise ops are not counted)."""
from __future__ import annotations

from typing import Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..factory import create_model
from ..model import input_channels

__all__ = ["TORCHVISION_PREFIX", "SMP_PREFIX", "HF_PREFIX", "HF_PEERS", "build_for_benchmark", "count_flops",
           "count_model_flops", "is_peer"]

TORCHVISION_PREFIX = "tv:"
SMP_PREFIX = "smp:"
HF_PREFIX = "hf:"
# transformers' UperNetForSemanticSegmentation as the openmmlab/upernet-* repos build it (transformers'
# convert_{convnext,swin}_upernet_to_pytorch.py) and its SegFormer: family, its sizes, the aux head's input channels
HF_PEERS = {
    **{f"upernet-convnext-{size}": ("convnext", {"hidden_sizes": [width * 2 ** i for i in range(4)], "depths": depths},
                                    width * 4)
       for size, width, depths in (("tiny", 96, [3, 3, 9, 3]), ("small", 96, [3, 3, 27, 3]),
                                   ("base", 128, [3, 3, 27, 3]), ("large", 192, [3, 3, 27, 3]),
                                   ("xlarge", 256, [3, 3, 27, 3]))},
    **{f"upernet-swin-{size}": ("swin", {"embed_dim": width, "depths": depths, "window_size": window,
                                         "num_heads": [width // 32 * 2 ** i for i in range(4)]}, width * 4)
       for size, width, depths, window in (("tiny", 96, [2, 2, 6, 2], 7), ("small", 96, [2, 2, 18, 2], 7),
                                           ("base", 128, [2, 2, 18, 2], 12), ("large", 192, [2, 2, 18, 2], 12))},
    # SegformerForSemanticSegmentation as the nvidia/segformer-b* repos build it (no aux head)
    **{f"segformer-{size}": ("segformer", {"hidden_sizes": [width, width * 2, width * 5, width * 8],
                                           "depths": list(depths), "decoder_hidden_size": decoder}, 0)
       for size, width, depths, decoder in (("b0", 32, (2, 2, 2, 2), 256), ("b1", 64, (2, 2, 2, 2), 256),
                                            ("b2", 64, (3, 4, 6, 3), 768), ("b3", 64, (3, 4, 18, 3), 768),
                                            ("b4", 64, (3, 8, 27, 3), 768), ("b5", 64, (3, 6, 40, 3), 768))},
    # Mask2FormerForUniversalSegmentation as the facebook/mask2former-swin-*-semantic repos build it (Swin-T, -S)
    **{f"mask2former-swin-{size}": ("mask2former", {"embed_dim": 96, "depths": depths, "window_size": 7,
                                                    "num_heads": [3, 6, 12, 24]}, 0)
       for size, depths in (("tiny", [2, 2, 6, 2]), ("small", [2, 2, 18, 2]))},
}


def is_peer(name: str) -> bool:
    """Whether ``name`` is a peer's model (torchvision's, segmentation_models_pytorch's or transformers'), not
    segzoo's."""
    return name.startswith((TORCHVISION_PREFIX, SMP_PREFIX, HF_PREFIX))


def build_for_benchmark(name: str, num_classes: Optional[int] = None, **kwargs) -> torch.nn.Module:
    """A segzoo model (random weights) or a peer with random weights: ``tv:<name>``, a torchvision segmentation
    model (no aux head); ``smp:<Arch>:<encoder>``, a segmentation_models_pytorch model (``smp.create_model``);
    ``hf:upernet-<convnext|swin>-<size>``, transformers' ``UperNetForSemanticSegmentation`` as the
    ``openmmlab/upernet-*`` repos build it, ``hf:segformer-b<0..5>`` its ``SegformerForSemanticSegmentation`` as the
    ``nvidia/segformer-*`` repos do, ``hf:mask2former-swin-<tiny|small>`` its ``Mask2FormerForUniversalSegmentation``
    as the ``facebook/mask2former-swin-*-semantic`` repos do (``HF_PEERS``)."""
    if name.startswith(HF_PREFIX):
        from transformers import ConvNextConfig, SwinConfig, UperNetConfig, UperNetForSemanticSegmentation

        family, sizes, aux_channels = HF_PEERS[name[len(HF_PREFIX):]]
        if family == "segformer":
            from transformers import SegformerConfig, SegformerForSemanticSegmentation

            return SegformerForSemanticSegmentation(SegformerConfig(**sizes, num_labels=num_classes or 150))
        if family == "mask2former":
            from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

            swin = SwinConfig(**sizes, out_features=["stage1", "stage2", "stage3", "stage4"])
            return Mask2FormerForUniversalSegmentation(Mask2FormerConfig(backbone_config=swin,
                                                                         num_labels=num_classes or 150))
        stages = ["stage1", "stage2", "stage3", "stage4"]
        backbone = (ConvNextConfig if family == "convnext" else SwinConfig)(**sizes, out_features=stages)
        return UperNetForSemanticSegmentation(UperNetConfig(backbone_config=backbone, num_labels=num_classes or 150,
                                                            auxiliary_in_channels=aux_channels))
    if name.startswith(SMP_PREFIX):
        import segmentation_models_pytorch as smp

        arch, _, encoder = name[len(SMP_PREFIX):].partition(":")
        return smp.create_model(arch, encoder_name=encoder, encoder_weights=None, classes=num_classes or 21)
    if name.startswith(TORCHVISION_PREFIX):
        import torchvision

        builder = getattr(torchvision.models.segmentation, name[len(TORCHVISION_PREFIX):])
        return builder(weights=None, weights_backbone=None, aux_loss=False, num_classes=num_classes or 21)
    return create_model(name, num_classes=num_classes, **kwargs)


def count_flops(name: str, size: tuple[int, int], batch: int = 1, **kwargs) -> tuple[float, float]:
    """(GFLOPs of one forward, parameters in millions), counted on the meta device (nothing is computed); on the
    CPU for a model whose forward makes tensors on the CPU itself (transformers' Mask2Former)."""
    try:
        with torch.device("meta"):
            model = build_for_benchmark(name, **kwargs).eval()
        return count_model_flops(model, size, batch)
    except RuntimeError as err:
        if "meta" not in str(err):
            raise
    return count_model_flops(build_for_benchmark(name, **kwargs).eval(), size, batch)


def count_model_flops(model: torch.nn.Module, size: tuple[int, int], batch: int = 1) -> tuple[float, float]:
    """(GFLOPs of one forward, parameters in millions) of a model, best built on the meta device."""
    device = next(model.parameters()).device
    images = torch.empty(batch, input_channels(model), *size, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(images)
    params = sum(p.numel() for p in model.parameters())
    return counter.get_total_flops() / 1e9, params / 1e6
