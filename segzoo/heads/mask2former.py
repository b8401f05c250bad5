"""Mask2Former (Cheng et al., "Masked-attention Mask Transformer for Universal Image Segmentation", CVPR 2022) as a
semantic segmentation head, in transformers' form (``Mask2FormerForUniversalSegmentation``): a pixel decoder
(deformable attention over c2 .. c4, an FPN level on c1) and a transformer decoder whose queries attend only where
their previous mask prediction is on, each query predicting a class and a mask."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..layers import MultiScaleDeformableAttention
from ..upstream import Upstream
from .base import SegmentationHead
from .options import check_bool, check_choice, check_fraction, check_int

__all__ = ["Mask2FormerHead", "sine_position_embedding", "semantic_scores"]

_LEVELS = 3  # the pixel decoder's and the transformer decoder's levels: c4, c3, c2 (lowest resolution first)

_PIXEL = r"model\.pixel_level_module\.decoder"
_QUERIES = r"model\.transformer_module"
_LAYER = _QUERIES + r"\.decoder\.layers\.(\d+)"
_TRANSFORMERS_RULES = (
    (_PIXEL + r"\.input_projections\.(\d)\.0", r"head.pixel_decoder.input_projections.\1.conv"),
    (_PIXEL + r"\.input_projections\.(\d)\.1", r"head.pixel_decoder.input_projections.\1.norm"),
    (_PIXEL + r"\.level_embed", "head.pixel_decoder.level_embed"),
    (_PIXEL + r"\.encoder\.layers\.(\d+)\.self_attn_layer_norm", r"head.pixel_decoder.layers.\1.norm1"),
    (_PIXEL + r"\.encoder\.layers\.(\d+)\.self_attn", r"head.pixel_decoder.layers.\1.attn"),
    (_PIXEL + r"\.encoder\.layers\.(\d+)\.final_layer_norm", r"head.pixel_decoder.layers.\1.norm2"),
    (_PIXEL + r"\.encoder\.layers\.(\d+)\.(fc\d)", r"head.pixel_decoder.layers.\1.\2"),
    (_PIXEL + r"\.adapter_1\.0", "head.pixel_decoder.lateral.conv"),
    (_PIXEL + r"\.adapter_1\.1", "head.pixel_decoder.lateral.norm"),
    (_PIXEL + r"\.layer_1\.0", "head.pixel_decoder.output.conv"),
    (_PIXEL + r"\.layer_1\.1", "head.pixel_decoder.output.norm"),
    (_PIXEL + r"\.mask_projection", "head.pixel_decoder.mask_projection"),
    (_QUERIES + r"\.queries_features", "head.decoder.query_features"),
    (_QUERIES + r"\.queries_embedder", "head.decoder.query_embed"),
    (_QUERIES + r"\.level_embed", "head.decoder.level_embed"),
    (_LAYER + r"\.cross_attn_layer_norm", r"head.decoder.layers.\1.cross_norm"),
    (_LAYER + r"\.cross_attn", r"head.decoder.layers.\1.cross_attn"),
    (_LAYER + r"\.self_attn_layer_norm", r"head.decoder.layers.\1.self_norm"),
    (_LAYER + r"\.self_attn", r"head.decoder.layers.\1.self_attn"),
    (_LAYER + r"\.final_layer_norm", r"head.decoder.layers.\1.ffn_norm"),
    (_LAYER + r"\.(fc\d)", r"head.decoder.layers.\1.\2"),
    (_QUERIES + r"\.decoder\.layernorm", "head.decoder.norm"),
    (_QUERIES + r"\.decoder\.mask_predictor\.mask_embedder\.(\d)\.0", r"head.decoder.mask_embed.\1"),
    (r"class_predictor", "head.classifier"),  # its rows but the last: the classes (the layout's prepare splits it)
    (r"class_predictor_no_object", "head.no_object"),
)


def sine_position_embedding(height: int, width: int, half: int, device, dtype, temperature: float = 10000.0
                            ) -> Tensor:
    """DETR's normalised sine embedding of a ``height`` x ``width`` grid: ``(1, 2 * half, height, width)``, the rows'
    ``half`` channels first, each in interleaved sine / cosine pairs of positions 1 .. n scaled to (0, 2 pi]."""
    eps, scale = 1e-6, 2 * math.pi
    frequencies = torch.arange(half, device=device).to(dtype)
    frequencies = temperature ** (2 * torch.div(frequencies, 2, rounding_mode="floor") / half)

    def encode(length: int) -> Tensor:  # (length, half)
        positions = torch.arange(1, length + 1, device=device).to(dtype)
        # divided by the last position, read as a reduction: a slice of a traced size made torch.export's guards clash
        positions = positions / (positions.amax(0, keepdim=True) + eps) * scale
        angles = positions[:, None] / frequencies
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=-1).flatten(1)

    rows = encode(height)[:, None, :].expand(height, width, half)
    columns = encode(width)[None, :, :].expand(height, width, half)
    return torch.cat((rows, columns), dim=-1).permute(2, 0, 1)[None]


def semantic_scores(class_logits: Tensor, mask_logits: Tensor, size) -> Tensor:
    """Per-class scores ``(N, K, H, W)`` at ``size``: each query's class probabilities (softmax, the no-object class
    dropped) times its mask's probability (sigmoid of the mask logits upsampled, bilinear, ``align_corners=False``),
    summed over the queries; what mmseg's and transformers' semantic post-processing compute."""
    probabilities = class_logits.softmax(-1)[..., :-1]
    masks = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False).sigmoid()
    return torch.einsum("nqk,nqhw->nkhw", probabilities, masks)


class _ConvGroupNorm(nn.Module):
    """A convolution, GroupNorm(32) and optionally a ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool, relu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.norm = nn.GroupNorm(32, out_channels)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if x.shape[-2] * x.shape[-1] * x.shape[1] // self.norm.num_groups == 1:
            # a group of one value (a 1x1 map, one channel a group: c4 of a small image) is its own mean: the norm
            # gives the bias (PyTorch's group_norm refuses such groups)
            x = self.norm.bias[None, :, None, None].expand_as(x)
        else:
            # in contiguous memory: PyTorch's channels-last CPU kernel computes the variance in one pass (E[x^2] -
            # E[x]^2), which lost 1e-4 here where a channel's mean is 25 times its spread (the contiguous kernel: 1e-6)
            x = self.norm(x.contiguous())
        return F.relu(x) if self.relu else x


class _EncoderLayer(nn.Module):
    """Deformable self-attention over the three levels and a feed-forward network, each followed by a LayerNorm."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.attn = MultiScaleDeformableAttention(dim, heads, levels=_LEVELS, points=4)
        self.norm1 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, position: Tensor, reference_points: Tensor, shapes) -> Tensor:
        x = self.norm1(x + self.dropout(self.attn(x + position, reference_points, x, shapes)))
        return self.norm2(x + self.dropout(self.fc2(self.dropout(F.relu(self.fc1(x))))))


class _PixelDecoder(nn.Module):
    """c2 .. c4 projected to ``dim`` (1x1 convolution, GroupNorm), refined together by deformable attention layers
    (sine position and level embeddings); with ``fpn`` c1 joins (a lateral 1x1 convolution plus the refined c2 level
    upsampled, then a 3x3 convolution); a 1x1 projection of the finest level gives the mask features."""

    def __init__(self, in_channels: list[int], dim: int, mask_dim: int, layers: int, hidden: int, heads: int,
                 fpn: bool, dropout: float):
        super().__init__()
        self.input_projections = nn.ModuleList(_ConvGroupNorm(c, dim, 1, bias=True) for c in in_channels[:0:-1])
        self.level_embed = nn.Parameter(torch.zeros(_LEVELS, dim))
        self.layers = nn.ModuleList(_EncoderLayer(dim, heads, hidden, dropout) for _ in range(layers))
        self.lateral = _ConvGroupNorm(in_channels[0], dim, 1, bias=False) if fpn else None
        self.output = _ConvGroupNorm(dim, dim, 3, bias=False, relu=True) if fpn else None
        self.mask_projection = nn.Conv2d(dim, mask_dim, 1)

    def forward(self, maps: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """``maps`` c1 .. c4; returns the mask features and the three refined levels (c4, c3, c2)."""
        levels = maps[:0:-1]
        shapes = [(level.shape[-2], level.shape[-1]) for level in levels]
        tokens, positions, references = [], [], []
        for i, (level, (height, width)) in enumerate(zip(levels, shapes)):
            tokens.append(self.input_projections[i](level).flatten(2).transpose(1, 2))
            position = sine_position_embedding(height, width, self.level_embed.shape[1] // 2, level.device,
                                               level.dtype)
            positions.append(position.flatten(2).transpose(1, 2) + self.level_embed[i])
            # every token's own centre, in [0, 1] of its map: the point its samples on every level are offset from
            y = (torch.arange(height, device=level.device).to(level.dtype) + 0.5) / height
            x = (torch.arange(width, device=level.device).to(level.dtype) + 0.5) / width
            references.append(torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1).reshape(-1, 2))
        x, position = torch.cat(tokens, dim=1), torch.cat(positions, dim=1)
        reference_points = torch.cat(references)[None, :, None, :].expand(1, -1, _LEVELS, 2)
        for layer in self.layers:
            x = layer(x, position, reference_points, shapes)
        refined = [part.transpose(1, 2).reshape(part.shape[0], -1, height, width)
                   for part, (height, width) in zip(x.split([h * w for h, w in shapes], dim=1), shapes)]
        finest = refined[-1]
        if self.lateral is not None:
            lateral = self.lateral(maps[0])
            finest = self.output(lateral + F.interpolate(finest, size=lateral.shape[-2:], mode="bilinear",
                                                         align_corners=False))
        return self.mask_projection(finest), refined


class _CrossAttention(nn.Module):
    """Multi-head attention of the queries over a level's tokens, with ``nn.MultiheadAttention``'s parameters (one
    packed input projection): ``blocked`` ``(N, Q, S)`` marks the tokens a query may not attend to."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, blocked: Tensor) -> Tensor:
        weights, biases = self.in_proj_weight.chunk(3), self.in_proj_bias.chunk(3)
        q, k, v = (F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))
        out = _attend(q, k, v, self.heads, ~blocked[:, None], self.dropout if self.training else 0.0)
        return self.out_proj(out)


class _SelfAttention(nn.Module):
    """Multi-head self-attention of the queries, their position embedding added to queries and keys."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, position: Tensor) -> Tensor:
        with_position = x + position
        out = _attend(self.q_proj(with_position), self.k_proj(with_position), self.v_proj(x), self.heads, None,
                      self.dropout if self.training else 0.0)
        return self.out_proj(out)


def _attend(q: Tensor, k: Tensor, v: Tensor, heads: int, allowed: Tensor | None, dropout: float) -> Tensor:
    """Scaled dot-product attention over ``heads`` of ``(N, L, C)`` projections; ``(N, Q, C)`` back."""
    batch, length, dim = q.shape
    q, k, v = (x.view(batch, -1, heads, dim // heads).transpose(1, 2) for x in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)
    return out.transpose(1, 2).reshape(batch, length, dim)


class _DecoderLayer(nn.Module):
    """Masked cross-attention to one level, self-attention among the queries, a feed-forward network; each with a
    residual and a LayerNorm after it (``pre_norm``: before it, on the branch)."""

    def __init__(self, dim: int, heads: int, hidden: int, pre_norm: bool, dropout: float):
        super().__init__()
        self.pre_norm = pre_norm
        self.cross_attn = _CrossAttention(dim, heads, dropout)
        self.cross_norm = nn.LayerNorm(dim)
        self.self_attn = _SelfAttention(dim, heads, dropout)
        self.self_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, query_position: Tensor, memory: Tensor, memory_position: Tensor,
                blocked: Tensor) -> Tensor:
        def cross(y):
            return self.cross_attn(y + query_position, memory + memory_position, memory, blocked)

        def feed_forward(y):
            return self.fc2(self.dropout(F.relu(self.fc1(y))))

        if self.pre_norm:
            x = x + self.dropout(cross(self.cross_norm(x)))
            x = x + self.dropout(self.self_attn(self.self_norm(x), query_position))
            return x + self.dropout(feed_forward(self.ffn_norm(x)))
        x = self.cross_norm(x + self.dropout(cross(x)))
        x = self.self_norm(x + self.dropout(self.self_attn(x, query_position)))
        return self.ffn_norm(x + self.dropout(feed_forward(x)))


class _MaskedAttentionDecoder(nn.Module):
    """Learned queries refined by ``layers`` decoder layers, level by level (c4, c3, c2, c4, ...). Before the first
    layer and after each, the queries (LayerNorm'd) predict masks over the mask features; a query attends in the next
    layer only where its mask, resized to that layer's level, has probability >= 0.5 (anywhere if nowhere)."""

    def __init__(self, in_dim: int, dim: int, mask_dim: int, queries: int, layers: int, heads: int, hidden: int,
                 pre_norm: bool, input_projection: bool, dropout: float):
        super().__init__()
        self.heads = heads
        self.input_projections = nn.ModuleList(
            nn.Conv2d(in_dim, dim, 1) if input_projection else nn.Identity() for _ in range(_LEVELS))
        self.level_embed = nn.Embedding(_LEVELS, dim)
        self.query_features = nn.Embedding(queries, dim)
        self.query_embed = nn.Embedding(queries, dim)
        self.layers = nn.ModuleList(_DecoderLayer(dim, heads, hidden, pre_norm, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.mask_embed = nn.ModuleList(nn.Linear(dim, dim if i < 2 else mask_dim) for i in range(3))

    def _predict(self, x: Tensor, mask_features: Tensor, size) -> tuple[Tensor, Tensor, Tensor]:
        """(normalised queries, mask logits, the tokens of a level of ``size`` each query may not attend to)."""
        x = self.norm(x)
        embedding = x
        for i, linear in enumerate(self.mask_embed):
            embedding = linear(embedding) if i == len(self.mask_embed) - 1 else F.relu(linear(embedding))
        masks = torch.einsum("nqc,nchw->nqhw", embedding, mask_features)
        resized = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        blocked = (resized.sigmoid() < 0.5).flatten(2).detach()
        return x, masks, blocked

    def forward(self, levels: list[Tensor], mask_features: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """The normalised queries and mask logits of every prediction, the last one last."""
        sizes = [level.shape[-2:] for level in levels]
        memory, positions = [], []
        for i, level in enumerate(levels):
            memory.append((self.input_projections[i](level).flatten(2) + self.level_embed.weight[i][:, None])
                          .transpose(1, 2))
            position = sine_position_embedding(level.shape[-2], level.shape[-1], self.level_embed.weight.shape[1] // 2,
                                               level.device, level.dtype)
            positions.append(position.flatten(2).transpose(1, 2))
        # copies, not views: a view of a parameter made under no_grad still requires grad, and FLOP counting's module
        # hooks refuse such inputs
        batch = levels[0].shape[0]
        x = self.query_features.weight.unsqueeze(0).repeat(batch, 1, 1)
        query_position = self.query_embed.weight.unsqueeze(0).repeat(batch, 1, 1)
        normalised, masks, blocked = self._predict(x, mask_features, sizes[0])
        states, mask_logits = [normalised], [masks]
        for i, layer in enumerate(self.layers):
            level = i % _LEVELS
            # a query whose mask is off everywhere on this level attends everywhere (not to nothing)
            blocked = blocked & ~blocked.all(-1, keepdim=True)
            x = layer(x, query_position, memory[level], positions[level], blocked)
            normalised, masks, blocked = self._predict(x, mask_features, sizes[(i + 1) % _LEVELS])
            states.append(normalised)
            mask_logits.append(masks)
        return states, mask_logits


class Mask2FormerHead(SegmentationHead):
    """Mask2Former over c1 .. c4. The pixel decoder refines c2 .. c4 with ``encoder_layers`` multi-scale deformable
    attention layers (4 points per head and level) and adds c1 in an FPN step (``common_stride`` 4; 8: none) for the
    mask features at stride 4; the transformer decoder refines ``num_queries`` learned queries through
    ``decoder_layers - 1`` masked-attention layers (transformers counts the prediction before the first layer as one).
    Each query gets class logits over ``num_classes + 1`` (``classifier`` for the classes, ``no_object`` for the last:
    no object) and mask logits (its embedding, a 3-layer MLP, dotted with the mask features).

    In eval mode ``forward`` returns the semantic scores ``(N, num_classes, H, W)`` at the input's size (the head
    reads the image for its size only): the classes' softmax probabilities (no-object dropped) times the masks'
    sigmoids, upsampled, summed over the queries (``semantic_scores``). They are not logits: their argmax is the
    prediction, and they lie in [0, num_queries].

    ``forward_queries(features)`` gives the per-query outputs: ``{"class_logits": (N, Q, K + 1), "mask_logits": (N, Q,
    h, w)`` at the mask features' resolution (stride 4), ``"aux": [{"class_logits", "mask_logits"}, ...]}`` with one
    entry per earlier prediction (the deep supervision of Mask2Former's loss), first prediction first. In training
    ``forward`` returns them (the model hands them on as they are, for Mask2Former's matching loss), ``"aux"`` empty
    unless the model is built with ``aux=True`` (the head makes its own auxiliary outputs: no FCN aux head).

    Args:
        in_channels: Channels per feature; reads ``c1`` .. ``c4``.
        num_classes: Number of classes (``no_object`` adds the no-object logit).
        align_corners: The model's upsampling mode (the head's own resizes are the upstream's, ``align_corners=False``).
        hidden_dim: Width of the queries (256).
        num_queries: Learned queries (100).
        decoder_layers: Predictions of the transformer decoder, as transformers counts them: ``decoder_layers - 1``
            layers run (10: 9 layers).
        encoder_layers: Deformable attention layers of the pixel decoder (6).
        dim_feedforward: Hidden width of the decoder layers' feed-forward networks (2048).
        encoder_feedforward_dim: Hidden width of the pixel decoder layers' (1024).
        feature_size: Width of the pixel decoder (256; a multiple of 32 for its GroupNorms).
        mask_feature_size: Width of the mask features and mask embeddings (256).
        common_stride: Stride of the mask features, 4 (c1 joins) or 8.
        num_heads: Attention heads of every attention layer, deformable and masked (8).
        pre_norm: LayerNorms before the decoder layers' blocks (transformers' ``pre_norm``; its models: False).
        enforce_input_projection: A 1x1 convolution between the pixel decoder and the transformer decoder also where
            their widths agree (it is there anyway where they differ).
        dropout: Dropout in the attention and feed-forward blocks (training only; 0.0 as transformers).
        aux: Set by the model (its ``aux``): the earlier predictions in training's ``"aux"``.
        in_chans: The model's input channels (the image is read for its size only).
    """

    citation = """@inproceedings{cheng2022masked,
  title={Masked-attention Mask Transformer for Universal Image Segmentation},
  author={Cheng, Bowen and Misra, Ishan and Schwing, Alexander G. and Kirillov, Alexander and Girdhar, Rohit},
  booktitle={CVPR}, year={2022}
}"""

    in_features = ("c1", "c2", "c3", "c4")
    needs_image = True
    handles_aux = True  # its deep supervision: the predictions before the last
    mask_classification = True  # trained with MaskClassificationLoss on its per-query outputs
    output_stride = 32
    upstreams = (
        Upstream("transformers", "mask2former", classifier="class_predictor.weight", rules=_TRANSFORMERS_RULES),
    )

    def __init__(self, in_channels: dict[str, int], num_classes: int, align_corners: bool = False,
                 hidden_dim: int = 256, num_queries: int = 100, decoder_layers: int = 10, encoder_layers: int = 6,
                 dim_feedforward: int = 2048, encoder_feedforward_dim: int = 1024, feature_size: int = 256,
                 mask_feature_size: int = 256, common_stride: int = 4, num_heads: int = 8, pre_norm: bool = False,
                 enforce_input_projection: bool = False, dropout: float = 0.0, aux: bool = False, in_chans: int = 3):
        super().__init__()
        check_int("Mask2Former", minimum=1, hidden_dim=hidden_dim, num_queries=num_queries,
                  decoder_layers=decoder_layers, dim_feedforward=dim_feedforward,
                  encoder_feedforward_dim=encoder_feedforward_dim, feature_size=feature_size,
                  mask_feature_size=mask_feature_size, num_heads=num_heads)
        check_int("Mask2Former", minimum=0, encoder_layers=encoder_layers)
        check_choice("Mask2Former", "common_stride", common_stride, (4, 8))
        check_bool("Mask2Former", pre_norm=pre_norm, enforce_input_projection=enforce_input_projection, aux=aux)
        check_fraction("Mask2Former", dropout=dropout)
        if feature_size % 32:
            raise ConfigError(f"Mask2Former feature_size must be a multiple of 32 (its GroupNorms have 32 groups), "
                              f"got {feature_size}")
        for name, width in (("hidden_dim", hidden_dim), ("feature_size", feature_size)):
            if width % num_heads or width % 2:
                raise ConfigError(f"Mask2Former {name} {width} must be even and divide into num_heads={num_heads}")
        widths = [in_channels[name] for name in self.in_features]
        self.pixel_decoder = _PixelDecoder(widths, feature_size, mask_feature_size, encoder_layers,
                                           encoder_feedforward_dim, num_heads, common_stride == 4, dropout)
        self.decoder = _MaskedAttentionDecoder(
            feature_size, hidden_dim, mask_feature_size, num_queries, decoder_layers - 1, num_heads, dim_feedforward,
            pre_norm, feature_size != hidden_dim or enforce_input_projection, dropout)
        # transformers' class predictor, Linear(hidden_dim, num_classes + 1), as the classes' rows (``classifier``,
        # re-initialised for another num_classes) and the no-object row (kept)
        self.classifier = nn.Linear(hidden_dim, num_classes)
        self.no_object = nn.Linear(hidden_dim, 1)
        self.aux = aux

    def _class_logits(self, queries: Tensor) -> Tensor:
        return torch.cat((self.classifier(queries), self.no_object(queries)), dim=-1)

    def _predictions(self, features: dict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        mask_features, levels = self.pixel_decoder([features[name] for name in self.in_features])
        return self.decoder(levels, mask_features)

    def forward_queries(self, features: dict[str, Tensor]) -> dict:
        """Per-query class and mask logits of the last prediction, and of the earlier ones under ``"aux"``."""
        states, masks = self._predictions(features)
        outputs = [{"class_logits": self._class_logits(state), "mask_logits": mask}
                   for state, mask in zip(states, masks)]
        return {**outputs[-1], "aux": outputs[:-1]}

    def forward(self, features: dict[str, Tensor], image: Tensor | None = None) -> Tensor | dict:
        if self.training:
            outputs = self.forward_queries(features)
            return outputs if self.aux else {**outputs, "aux": []}
        if image is None:
            raise ValueError("Mask2Former's head needs the image (for its size): call it as head(features, image)")
        states, masks = self._predictions(features)
        return semantic_scores(self._class_logits(states[-1]), masks[-1], image.shape[-2:])
