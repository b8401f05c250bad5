"""Licence terms that entries of more than one upstream share, in words (``PretrainedSpec.terms``)."""
from __future__ import annotations

__all__ = ["NVIDIA_SEGFORMER_TERMS"]

# SegFormer's weights: the authors' (NVlabs/SegFormer, whose LICENSE is this) and every model fine-tuned from their
# ImageNet MiT weights (mmseg's SegFormer zoo). "non-commercial" in the words is what flags the entries.
NVIDIA_SEGFORMER_TERMS = (
    "NVIDIA Source Code License for SegFormer: non-commercial use only (research or evaluation), the licence of the "
    "SegFormer authors' weights (github.com/NVlabs/SegFormer, LICENSE), which these are or were trained from; the "
    "training data's terms apply as well (ADE20K: MIT CSAIL's research terms; Cityscapes: non-commercial research "
    "only).")
