"""``ModelConfig``: the whole recipe of a segmentation model, round-tripped losslessly to config.json."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError, read_utf8
from .registry import get_neck, list_necks, neck_output_stride

__all__ = ["ModelConfig", "IMAGENET_MEAN", "IMAGENET_STD", "MODES", "default_mean_std"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = ("multiclass", "binary", "multilabel")


def default_mean_std(in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's normalisation for an ``in_chans``-band input, matching how timm adapts a pretrained RGB stem.

    One band: timm sums the stem's RGB filters, so the band is read as grey (R = G = B): the mean of ImageNet's
    means and stds. More bands: timm gives band ``i`` the filter of RGB channel ``i % 3``, so it gets that
    channel's statistics. Three: ImageNet's own. Users with other statistics (satellite reflectances, CT units)
    pass ``mean`` / ``std`` of their data."""
    if in_chans == 1:
        return (round(sum(IMAGENET_MEAN) / 3, 4),), (round(sum(IMAGENET_STD) / 3, 4),)
    return (tuple(IMAGENET_MEAN[i % 3] for i in range(in_chans)),
            tuple(IMAGENET_STD[i % 3] for i in range(in_chans)))


def _is_int(value: Any) -> bool:
    """An int and not a bool (``True == 1``; ``16.0 == 16`` would be written to config.json as ``16.0``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """A number that is not NaN or infinite (JSON's NaN and Infinity parse to floats)."""
    return _is_number(value) and math.isfinite(value)


def _as_tuples(value: Any) -> Any:
    """Lists (from JSON) to tuples, recursively, so head arguments compare equal after a round trip."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(item) for item in value)
    return value


@dataclass
class ModelConfig:
    """Everything needed to build a model; models are only ever built from one of these.

    Args:
        head: Registered head name (``list_heads()``).
        backbone: timm model name (any model with ``features_only`` support).
        num_classes: Number of output channels (>= 1): the classes (``"multiclass"``), 1 (``"binary"``) or the
            labels (``"multilabel"``).
        mode: ``"multiclass"`` (one class per pixel: softmax, argmax), ``"binary"`` (one output channel: sigmoid,
            foreground where the probability is > ``threshold``) or ``"multilabel"`` (one output channel per label,
            independent sigmoids: each label present where its probability is > ``threshold``).
        threshold: The probability above which a pixel is foreground / has a label (binary and multilabel).
        in_chans: Number of input channels (bands): 3 for RGB, 1 for greyscale, N for multispectral. Passed to
            timm, which adapts a pretrained stem (see ``default_mean_std``).
        output_stride: Backbone output stride: 8 or 16 (dilated) or 32 (plain, the backbone as built: JPU reads
            it, and it is the only choice for backbones that cannot dilate, Swin and ViT among them).
        feature_indices: The backbone's four feature levels as timm's ``out_indices`` (stages; a ViT's blocks:
            mmseg's ViT-B UPerNet reads ``(2, 5, 8, 11)``). None: the last four.
        feature_norms: Feature levels (``"c1"`` .. ``"c4"``) that get a LayerNorm over their channels after the
            backbone: the per-level output norms of mmseg's Swin and ConvNeXt (``norm0`` .. ``norm3``), of
            transformers' backbones (``hidden_states_norms``), and a ViT's final norm on its last level.
        feature_norm_eps: The epsilon of those LayerNorms (mmseg's Swin and transformers' Swin: 1e-5; ConvNeXt
            and ViT: 1e-6).
        backbone_norm_eps: The epsilon of every LayerNorm in the backbone, where the upstream's differs from timm's
            (transformers' BEiT: 1e-12); None: timm's.
        position_resize: How a ViT's position embedding is resized to other grids: ``"bicubic"`` (mmsegmentation's,
            and what segzoo's ViTs do by default), ``"bilinear"`` (transformers' DPT) or ``"dinov2"`` (DINOv2's
            own: bicubic by the scale factors (new + 0.1) / old); ``align_corners=False``, no antialiasing.
        patch_padding: Where a ViT-style backbone's input is padded to a multiple of its patch: ``"corner"`` (at the
            bottom and right: mmsegmentation's, timm's) or ``"center"`` (on both sides, any odd pixel at the bottom
            and right: DINOv2's ``CenterPadding``). The logits are resized from the padded grid to the input size.
        neck: ``None`` or a registered neck (``list_necks()``; segzoo has ``"jpu"``, ``"multilevel"`` and
            ``"feature2pyramid"``).
        neck_kwargs: Extra keyword arguments of the neck (``{"out_channels": 768, "scales": [4, 2, 1, 0.5]}``).
        aux: Whether to build the auxiliary head (training only; it does not change eval outputs).
        head_kwargs: Extra keyword arguments of the head.
        backbone_kwargs: Extra keyword arguments of ``timm.create_model`` for the backbone (mmsegmentation's
            ResNet-18 with a deep stem is timm's ``resnet18`` with ``{"stem_type": "deep", "stem_width": 32}``).
        block_dilations: Per ResNet stage (``"layer3"``, ``"layer4"``), the dilation of each block's first 3x3
            convolution, its other 3x3 convolutions undilated: how mmsegmentation's ResNet dilates (its BasicBlocks
            dilate only their first 3x3; its multi-grid gives the last stage's blocks 1, 2, 4). Empty: timm's own
            dilation for ``output_stride``.
        class_names: Optional class names, ``num_classes`` of them.
        palette: Optional RGB colour per class (``num_classes`` triples) for masks and overlays; without it the
            palette of the zoo dataset with these class names, else a generic one (``segzoo.zoo.palette_for``).
        mean: Per-channel mean of the input normalisation (images in [0, 1]), ``in_chans`` values. Default:
            ``default_mean_std(in_chans)`` (ImageNet's for RGB).
        std: Per-channel standard deviation of the input normalisation, ``in_chans`` values.
        align_corners: Bilinear upsampling mode everywhere (the reference uses True).
        input_size: The (height, width) the model is evaluated at (for info and FLOP counts).
        inference: How the model's upstream evaluated it, which ``segzoo predict`` and ``examples/evaluate.py``
            follow: ``"resize"`` (long, short): the image rescaled, keeping its aspect ratio, to fit within these
            long- and short-side bounds (mmseg's test ``Resize``), logits resized back; ``"mode"``: ``"whole"`` or
            ``"slide"`` with ``"crop"`` (h, w) windows every ``"stride"`` (h, w) pixels. Empty: the whole image
            as it is.
        provenance: Written by ``save_pretrained``: segzoo version and the head's distribution.
    """

    head: str
    backbone: str
    num_classes: int
    mode: str = "multiclass"
    threshold: float = 0.5
    in_chans: int = 3
    output_stride: int = 8
    feature_indices: Optional[tuple[int, ...]] = None
    feature_norms: tuple[str, ...] = ()
    feature_norm_eps: float = 1e-6
    backbone_norm_eps: Optional[float] = None
    position_resize: str = "bicubic"
    patch_padding: str = "corner"
    neck: Optional[str] = None
    neck_kwargs: dict[str, Any] = field(default_factory=dict)
    aux: bool = False
    head_kwargs: dict[str, Any] = field(default_factory=dict)
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    block_dilations: dict[str, tuple[int, ...]] = field(default_factory=dict)
    class_names: Optional[tuple[str, ...]] = None
    palette: Optional[tuple[tuple[int, int, int], ...]] = None
    mean: Optional[tuple[float, ...]] = None
    std: Optional[tuple[float, ...]] = None
    align_corners: bool = True
    input_size: tuple[int, int] = (480, 480)
    inference: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if _is_int(self.in_chans) and self.in_chans >= 1:  # a bad in_chans is reported by validate()
            mean, std = default_mean_std(self.in_chans)
            self.mean = mean if self.mean is None else self.mean
            self.std = std if self.std is None else self.std
        # JSON has lists only; keep tuples so that a round trip compares equal.
        for name in ("mean", "std", "input_size", "class_names", "feature_indices", "feature_norms"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))
        if isinstance(self.palette, (list, tuple)):
            self.palette = _as_tuples(self.palette)
        for name in ("head_kwargs", "backbone_kwargs", "neck_kwargs", "block_dilations", "inference"):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, {key: _as_tuples(item) for key, item in value.items()})
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first field that is not valid."""
        if not isinstance(self.head, str) or not self.head:
            raise ConfigError(f"head must be a non-empty string, got {self.head!r}")
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ConfigError(f"backbone must be a non-empty string, got {self.backbone!r}")
        if not _is_int(self.num_classes) or self.num_classes < 1:
            raise ConfigError(f"num_classes must be an integer >= 1, got {self.num_classes!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(map(repr, MODES))}, got {self.mode!r}")
        if self.mode == "binary" and self.num_classes != 1:
            raise ConfigError(f"mode 'binary' has one output channel: num_classes must be 1, got {self.num_classes}"
                              " (for several independent labels use mode 'multilabel')")
        if not _is_number(self.threshold) or not 0 < self.threshold < 1:
            raise ConfigError(f"threshold must be a probability in (0, 1), got {self.threshold!r}")
        if not _is_int(self.in_chans) or self.in_chans < 1:
            raise ConfigError(f"in_chans must be an integer >= 1 (3 for RGB), got {self.in_chans!r}")
        if not _is_int(self.output_stride) or self.output_stride not in (8, 16, 32):
            raise ConfigError(f"output_stride must be 8, 16 or 32 (an integer), got {self.output_stride!r}")
        if self.neck is not None:
            self._validate_neck()
        for name in ("aux", "align_corners"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("head_kwargs", "backbone_kwargs", "neck_kwargs", "block_dilations", "inference", "provenance"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a dict, got {type(getattr(self, name)).__name__}")
        if self.neck_kwargs and self.neck is None:
            raise ConfigError(f"neck_kwargs {self.neck_kwargs!r} given without a neck (neck=None)")
        self._validate_features()
        self._validate_inference()
        for stage, rates in self.block_dilations.items():
            if stage not in ("layer1", "layer2", "layer3", "layer4") or not isinstance(rates, tuple) or not rates \
                    or any(not _is_int(rate) or rate < 1 for rate in rates):
                raise ConfigError(f"block_dilations maps 'layer1'..'layer4' to one integer >= 1 per block, "
                                  f"got {stage!r}: {rates!r}")
        if self.class_names is not None and (not isinstance(self.class_names, tuple)
                                             or not all(isinstance(n, str) for n in self.class_names)):
            raise ConfigError(f"class_names must be a sequence of strings, got {self.class_names!r}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ConfigError(f"class_names has {len(self.class_names)} names for num_classes={self.num_classes}")
        if self.palette is not None and (not isinstance(self.palette, tuple) or len(self.palette) != self.num_classes
                                         or any(not isinstance(colour, tuple) or len(colour) != 3
                                                or any(not _is_int(c) or not 0 <= c <= 255 for c in colour)
                                                for colour in self.palette)):
            raise ConfigError(f"palette must hold num_classes={self.num_classes} RGB triples of integers 0-255")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or len(values) != self.in_chans or not all(
                    _is_finite(v) for v in values):
                raise ConfigError(f"{name} must have in_chans={self.in_chans} values (one per input channel), "
                                  f"finite numbers, got {values!r}")
        if not all(v > 0 for v in self.std):
            raise ConfigError(f"std must be {self.in_chans} numbers > 0, got {self.std!r}")
        if not isinstance(self.input_size, tuple) or len(self.input_size) != 2 or not all(
                _is_int(v) and v >= 1 for v in self.input_size):
            raise ConfigError(f"input_size must be (height, width), two integers >= 1, got {self.input_size!r}")

    def _validate_features(self) -> None:
        indices = self.feature_indices
        if indices is not None and (not isinstance(indices, tuple) or len(indices) != 4
                                    or not all(_is_int(i) for i in indices)):
            raise ConfigError(f"feature_indices must be None or four integers (timm's out_indices), got {indices!r}")
        levels = ("c1", "c2", "c3", "c4")
        if not isinstance(self.feature_norms, tuple) or any(n not in levels for n in self.feature_norms) \
                or len(set(self.feature_norms)) != len(self.feature_norms):
            raise ConfigError(f"feature_norms must name distinct feature levels among {', '.join(levels)}, "
                              f"got {self.feature_norms!r}")
        if not _is_finite(self.feature_norm_eps) or self.feature_norm_eps <= 0:
            raise ConfigError(f"feature_norm_eps must be a number > 0, got {self.feature_norm_eps!r}")
        if self.position_resize not in ("bicubic", "bilinear", "dinov2"):
            raise ConfigError(f"position_resize must be 'bicubic', 'bilinear' or 'dinov2', got "
                              f"{self.position_resize!r}")
        if self.patch_padding not in ("corner", "center"):
            raise ConfigError(f"patch_padding must be 'corner' or 'center', got {self.patch_padding!r}")
        if self.backbone_norm_eps is not None and (not _is_finite(self.backbone_norm_eps)
                                                   or self.backbone_norm_eps <= 0):
            raise ConfigError(f"backbone_norm_eps must be None or a number > 0, got {self.backbone_norm_eps!r}")

    def _validate_inference(self) -> None:
        recipe = self.inference
        unknown = sorted(set(recipe) - {"resize", "mode", "crop", "stride"})
        if unknown:
            raise ConfigError(f"inference has unknown key(s) {', '.join(unknown)}; known: resize, mode, crop, stride")
        for key in ("resize", "crop", "stride"):
            value = recipe.get(key)
            if value is not None and (not isinstance(value, tuple) or len(value) != 2 or any(
                    isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)):
                raise ConfigError(f"inference[{key!r}] must be two integers >= 1, got {value!r}")
        if recipe.get("mode", "whole") not in ("whole", "slide"):
            raise ConfigError(f"inference['mode'] must be 'whole' or 'slide', got {recipe['mode']!r}")
        if recipe.get("mode") == "slide" and not (recipe.get("crop") and recipe.get("stride")):
            raise ConfigError("inference['mode'] 'slide' needs 'crop' and 'stride' (height, width)")

    def _validate_neck(self) -> None:
        necks = [info.name for info in list_necks(include_failed=True)]
        if self.neck not in necks:
            raise ConfigError(f"neck must be one of None, {', '.join(map(repr, necks))} (the registered necks), "
                              f"got {self.neck!r}")
        required = neck_output_stride(self.neck)  # a neck whose plug-in failed to load raises its error here
        if required is not None and self.output_stride != required:
            name = getattr(get_neck(self.neck), "display_name", "") or self.neck
            raise ConfigError(f"the {name} neck reads an output-stride-{required} backbone; "
                              f"got output_stride={self.output_stride}")

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        out = dataclasses.asdict(self)
        for name in ("mean", "std", "input_size", "class_names", "feature_indices", "feature_norms"):
            if out[name] is not None:
                out[name] = list(out[name])
        if out["palette"] is not None:
            out["palette"] = [list(colour) for colour in out["palette"]]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a dict, refusing unknown fields and naming missing required ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}; "
                              f"known fields: {', '.join(sorted(names))}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ConfigError(f"config is missing required field(s): {', '.join(missing)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "config.json") -> "ModelConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must hold a JSON object, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = read_utf8(path, ConfigError, "a model config in JSON, as save_pretrained writes it")
        return cls.from_json(text, source=str(path))
