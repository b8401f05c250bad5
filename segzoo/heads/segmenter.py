"""Segmenter's heads (Strudel et al., "Segmenter: Transformer for Semantic Segmentation", ICCV 2021), in
mmsegmentation's form: the mask transformer (``SegmenterMaskTransformerHead``) and the linear decoder (mmseg's
``FCNHead`` without convolutions). Both read the last level of a ViT, its final LayerNorm applied
(``feature_norms=("c4",)``)."""
from __future__ import annotations

from functools import partial
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..upstream import Upstream
from .base import SegmentationHead
from .options import check_choice, check_fraction, check_int

__all__ = ["SegmenterHead", "DECODERS"]

DECODERS = ("mask_transformer", "linear")


class ClassMasks(nn.LayerNorm):
    """What depends on the classes in the mask transformer, as one ``classifier`` (so that another ``num_classes``
    re-initialises all of it): the LayerNorm over the classes of each pixel's mask scores (its ``weight`` and
    ``bias``), and one learned embedding per class (``embeddings``, decoded with the patches)."""

    def __init__(self, num_classes: int, dims: int, eps: float):
        super().__init__(num_classes, eps=eps)
        self.embeddings = nn.Parameter(torch.zeros(num_classes, dims))
        nn.init.trunc_normal_(self.embeddings, std=0.02)


class SegmenterHead(SegmentationHead):
    """Segmenter's decoders over the last level (a ViT's patch tokens as a map).

    ``"mask_transformer"``: the tokens projected to ``embed_dims``, one learned embedding per class appended,
    ``num_layers`` pre-norm transformer blocks over patches and classes together, a LayerNorm; patches and classes
    each linearly projected and L2-normalised; each patch's scores are its dot products with the classes,
    LayerNorm-ed over the classes. ``"linear"``: Dropout2d and a 1x1 classifier. Logits at the level's stride.

    Args:
        in_channels: Channels per feature; reads ``c4``.
        num_classes: Number of classes.
        align_corners: Bilinear upsampling mode (the model's; the head itself does not resample).
        decoder: ``"mask_transformer"`` or ``"linear"``.
        embed_dims: Width of the mask transformer (default: c4's channels, as in every Segmenter model).
        num_layers: Its blocks (2).
        num_heads: Its attention heads (default: ``embed_dims // 64``, Segmenter's; ViT-T: 3).
        mlp_ratio: Width of its feed-forward layers over ``embed_dims`` (4).
        dropout: Dropout before the linear decoder's classifier (0.0 in Segmenter's linear model).
        norm_eps: Epsilon of the mask transformer's LayerNorms (PyTorch's 1e-5, as mmseg's head).
    """

    citation = """@inproceedings{strudel2021segmenter,
  title={Segmenter: Transformer for Semantic Segmentation},
  author={Strudel, Robin and Garcia, Ricardo and Laptev, Ivan and Schmid, Cordelia},
  booktitle={ICCV}, year={2021}
}"""

    in_features = ("c4",)
    output_stride = 32
    upstreams = (
        # mmseg's SegmenterMaskTransformerHead: layers.i are mmseg's TransformerEncoderLayers (ln1, attn.attn = an
        # nn.MultiheadAttention whose in_proj is timm's fused qkv, ln2, ffn.layers.0.0 / .1 = fc1 / fc2)
        Upstream("mmseg", "segmenter", options={"decoder": "mask_transformer"},
                 classifier="decode_head.mask_norm.weight", rules=(
                     (r"decode_head\.layers\.(\d+)\.ln1", r"head.blocks.\1.norm1"),
                     (r"decode_head\.layers\.(\d+)\.ln2", r"head.blocks.\1.norm2"),
                     (r"decode_head\.layers\.(\d+)\.attn\.attn\.in_proj_weight", r"head.blocks.\1.attn.qkv.weight"),
                     (r"decode_head\.layers\.(\d+)\.attn\.attn\.in_proj_bias", r"head.blocks.\1.attn.qkv.bias"),
                     (r"decode_head\.layers\.(\d+)\.attn\.attn\.out_proj", r"head.blocks.\1.attn.proj"),
                     (r"decode_head\.layers\.(\d+)\.ffn\.layers\.0\.0", r"head.blocks.\1.mlp.fc1"),
                     (r"decode_head\.layers\.(\d+)\.ffn\.layers\.1", r"head.blocks.\1.mlp.fc2"),
                     (r"decode_head\.dec_proj", "head.projection"),
                     (r"decode_head\.cls_emb", "head.classifier.embeddings"),  # (1, K, d) stored as (K, d)
                     (r"decode_head\.mask_norm", "head.classifier"),
                     (r"decode_head\.patch_proj", "head.patch_projection"),
                     (r"decode_head\.classes_proj", "head.class_projection"),
                     (r"decode_head\.decoder_norm", "head.decoder_norm"))),
        # mmseg's Segmenter-Linear: an FCNHead without convolutions (conv_seg only)
        Upstream("mmseg", "segmenter-linear", options={"decoder": "linear"},
                 classifier="decode_head.conv_seg.weight", rules=(
                     (r"decode_head\.conv_seg", "head.classifier"),)),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = False,
                 decoder: str = "mask_transformer", embed_dims: Optional[int] = None, num_layers: int = 2,
                 num_heads: Optional[int] = None, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 norm_eps: float = 1e-5):
        super().__init__()
        check_choice("Segmenter", "decoder", decoder, DECODERS)
        check_int("Segmenter", embed_dims=embed_dims, num_heads=num_heads, minimum=1, optional=True)
        check_int("Segmenter", num_layers=num_layers, minimum=1)
        check_fraction("Segmenter", dropout=dropout)
        channels = in_channels["c4"]
        self.decoder = decoder
        if decoder == "linear":
            self.dropout = nn.Dropout2d(dropout)
            self.classifier = nn.Conv2d(channels, num_classes, 1)
            return
        from timm.models.vision_transformer import Block  # timm's pre-norm block: mmseg's TransformerEncoderLayer

        dims = embed_dims or channels
        heads = num_heads or max(1, dims // 64)
        if dims % heads:
            raise ConfigError(f"Segmenter embed_dims ({dims}) must be a multiple of num_heads ({heads})")
        self.projection = nn.Linear(channels, dims)
        self.blocks = nn.ModuleList(Block(dims, heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                                          norm_layer=partial(nn.LayerNorm, eps=norm_eps)) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(dims, eps=norm_eps)
        self.patch_projection = nn.Linear(dims, dims, bias=False)
        self.class_projection = nn.Linear(dims, dims, bias=False)
        self.classifier = ClassMasks(num_classes, dims, norm_eps)

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor:
        x = features["c4"]
        if self.decoder == "linear":
            return self.classifier(self.dropout(x))
        batch, _, height, width = x.shape
        classes = self.classifier.embeddings.shape[0]
        tokens = self.projection(x.flatten(2).transpose(1, 2))
        tokens = torch.cat([tokens, self.classifier.embeddings.expand(batch, -1, -1)], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.decoder_norm(tokens)
        patches = F.normalize(self.patch_projection(tokens[:, :-classes]), dim=2)
        class_vectors = F.normalize(self.class_projection(tokens[:, -classes:]), dim=2)
        masks = self.classifier(patches @ class_vectors.transpose(1, 2))  # LayerNorm-ed over the classes
        return masks.transpose(1, 2).reshape(batch, classes, height, width)
