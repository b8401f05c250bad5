"""``SegmentationModel``: backbone (+ neck) + head (+ aux head), built from a ``ModelConfig`` only."""
from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import FEATURE_NAMES, create_backbone, set_block_dilations, set_position_resize, stem_conv_names
from .backbones.class_tokens import has_class_token, levels_with_class_tokens
from .config import ModelConfig
from .errors import ConfigError
from .layers import FCNBlock, LayerNorm2d
from .layers.tracing import is_exporting
from .registry import get_head, get_neck

__all__ = ["SegmentationModel", "input_channels", "model_device"]


def input_channels(model: nn.Module) -> int:
    """The channels of the images ``model`` takes: ``config.in_chans`` for a segzoo model (also one made by
    ``optimize_for_inference``), else 3 (RGB: torchvision and timm models as the tools build them)."""
    in_chans = getattr(getattr(model, "config", None), "in_chans", None)
    return in_chans if isinstance(in_chans, int) and not isinstance(in_chans, bool) else 3


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _names_parameter(head_class: type, name: str) -> bool:
    """Whether a head's ``__init__`` names parameter ``name`` (not merely ``**kwargs``): ``in_chans`` and
    ``has_class_token``, which the model passes only to heads that ask for them."""
    return name in inspect.signature(head_class.__init__).parameters


def _check_kwargs(what: str, module_class: type, kwargs: dict, what_kwargs: str) -> None:
    """Name unknown arguments of a head or neck up front instead of a bare TypeError from deep inside __init__."""
    params = inspect.signature(module_class.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    reserved = {"self", "in_channels", "num_classes", "align_corners", "aux", "in_chans", "has_class_token"}
    accepted = sorted(set(params) - reserved)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(f"{what} does not accept argument(s) {', '.join(unknown)} ({what_kwargs}); "
                          f"it accepts: {', '.join(accepted) or 'none'}")


def _check_head_kwargs(head: str, head_class: type, kwargs: dict) -> None:
    """Name unknown head arguments up front instead of a bare TypeError from deep inside __init__."""
    if "in_chans" in kwargs:
        raise ConfigError(f"head {head!r}: head_kwargs may not set in_chans; it is the model's own (in_chans=...), "
                          f"which a head that reads the image receives")
    if "has_class_token" in kwargs:
        raise ConfigError(f"head {head!r}: head_kwargs may not set has_class_token; the model tells the head whether "
                          f"its backbone gives class tokens")
    _check_kwargs(f"head {head!r}", head_class, kwargs, "head_kwargs")


class SegmentationModel(nn.Module):
    """A semantic segmentation model.

    ``images`` are ``(N, config.in_chans, H, W)``, normalised with the config's ``mean`` / ``std``.
    In eval mode ``forward(images)`` returns logits ``(N, num_classes, H, W)`` at the input's size,
    for any H and W. In training mode it returns a tuple ``(main, *aux_outputs)``, every entry at the
    input's size, so that a loss can weight them (the aux head comes last); a mask classification head
    (``mask_classification = True``: Mask2Former) returns its per-query outputs instead, a dict for
    ``MaskClassificationLoss``.

    Args:
        config: The model's recipe.
        pretrained_backbone: Load timm's ImageNet weights into the backbone (timm adapts the RGB stem to
            ``config.in_chans``). Only ``create_model`` sets this, and never when a full checkpoint is loaded
            afterwards.
    """

    def __init__(self, config: ModelConfig, pretrained_backbone: bool = False, channels_last: bool = True):
        super().__init__()
        config.validate()
        self.config = config
        head_class = get_head(config.head)
        _check_head_kwargs(config.head, head_class, config.head_kwargs)

        self.backbone, info = create_backbone(config.backbone, config.output_stride, pretrained_backbone,
                                             config.backbone_kwargs, in_chans=config.in_chans,
                                             feature_indices=config.feature_indices)
        set_block_dilations(self.backbone, config.block_dilations)
        if config.backbone_norm_eps is not None:  # the upstream's epsilon (transformers' BEiT: 1e-12, timm's 1e-6)
            for module in self.backbone.modules():
                if isinstance(module, nn.LayerNorm):
                    module.eps = config.backbone_norm_eps
        if config.position_resize != "bicubic":
            set_position_resize(self.backbone, config.position_resize)
        self.backbone_nhwc = info.nhwc
        self.pad_multiple = info.pad_multiple
        self.patch_size = info.patch_size
        self.fixed_size = info.fixed_size
        # Per-level output norms (mmseg's Swin / ConvNeXt norm{i}, transformers' hidden_states_norms): LayerNorms
        # over the channels of the levels the config names. None without any, so that CNN state dicts are as before.
        self.feature_norms = nn.ModuleDict({
            name: LayerNorm2d(info.channels[name], eps=config.feature_norm_eps) for name in config.feature_norms
        }) if config.feature_norms else None
        channels = dict(info.channels)
        self.neck = None
        if config.neck is not None and not getattr(head_class, "takes_neck", True):
            raise ConfigError(f"head {config.head!r} reads the backbone's own features and takes no neck; "
                              f"got neck={config.neck!r} (use neck=None)")
        if config.neck is not None:
            neck_class = get_neck(config.neck)
            _check_kwargs(f"neck {config.neck!r}", neck_class, config.neck_kwargs, "neck_kwargs")
            self.neck = neck_class(dict(info.channels), align_corners=config.align_corners, **config.neck_kwargs)
            channels = dict(self.neck.out_channels)

        missing = [name for name in head_class.in_features if name not in channels]
        if missing:
            raise ConfigError(f"head {config.head!r} needs feature(s) {', '.join(missing)}, but backbone "
                              f"{config.backbone!r} provides only {', '.join(channels)}")
        head_kwargs = dict(config.head_kwargs)
        if head_class.handles_aux:
            head_kwargs["aux"] = config.aux
        if head_class.needs_image and _names_parameter(head_class, "in_chans"):
            head_kwargs["in_chans"] = config.in_chans  # the image's channels (BiSeNet's spatial path reads it)
        elif head_class.needs_image and config.in_chans != 3:
            raise ConfigError(f"head {config.head!r} reads the image but takes no in_chans argument: it reads RGB "
                              f"images only (in_chans=3), got in_chans={config.in_chans}")
        # the levels come with class tokens (a ViT's, no neck between): a head naming has_class_token is told
        class_tokens_available = self.neck is None and has_class_token(self.backbone)
        if _names_parameter(head_class, "has_class_token"):
            head_kwargs["has_class_token"] = class_tokens_available
        self.head = head_class({name: channels[name] for name in head_class.in_features}, config.num_classes,
                               align_corners=config.align_corners, **head_kwargs)
        # A head that reads each level's class token (DPT's readout) gets it as "<level>_class_token", (N, C)
        self.class_tokens = bool(getattr(self.head, "reads_class_token", False))
        if self.class_tokens and not class_tokens_available:
            why = (f"neck {config.neck!r} changes the levels, not the tokens" if self.neck is not None else
                   f"backbone {config.backbone!r} has none")
            raise ConfigError(f"head {config.head!r} reads the class token of each level (as built with "
                              f"{config.head_kwargs or 'its defaults'}), but {why}: use a ViT with a class token and "
                              f"no neck, or head options that do not read it")
        # The aux head reads the raw c3 (also with JPU), as in the reference.
        use_aux_head = config.aux and not head_class.handles_aux
        self.aux_head = FCNBlock(info.channels["c3"], config.num_classes) if use_aux_head else None
        self.set_channels_last(channels_last)

    def set_channels_last(self, enabled: bool = True) -> "SegmentationModel":
        """Run convolutions in channels-last memory format (the default: about 13% faster on CPU for the
        ResNet-101 models, measured by ``segzoo benchmark``; also what AMP on GPU wants). Outputs are
        returned contiguous either way."""
        self.channels_last = enabled
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def classifier_keys(self) -> list[str]:
        """State-dict keys of the class-logit layers (modules whose name ends in ``classifier``): the
        layers that a checkpoint with another ``num_classes`` cannot fill."""
        return [key for key in self.state_dict() if key.rsplit(".", 2)[-2].endswith("classifier")]

    def input_conv_keys(self) -> list[str]:
        """State-dict keys of the weights of the convolutions that read the image (``in_chans`` input channels):
        the backbone's stem convolution as timm declares it (``backbone.conv1.weight``; ``backbone.conv1.0.weight``
        for a deep stem) and those a head that reads the image names in ``image_convs`` (BiSeNet's spatial path).
        These are the layers a checkpoint of another ``in_chans`` is adapted in (``load_weights``)."""
        names = [f"backbone.{name}" for name in stem_conv_names(self.backbone)]
        names += [f"head.{name}" for name in getattr(self.head, "image_convs", ())]
        state = self.state_dict()
        return [f"{name}.weight" for name in names if f"{name}.weight" in state]

    def backbone_features(self, images: Tensor) -> dict[str, Tensor]:
        """The backbone's four levels as NCHW maps (``"c1"`` .. ``"c4"``), with the per-level norms applied: the
        input padded at the bottom and right to the backbone's patch first where it needs it (Swin), and
        channels-last maps (Swin) permuted to NCHW. For a head that reads them, also each level's class token
        (``"c1_class_token"`` .. ``"c4_class_token"``, ``(N, C)``, normalised with its level)."""
        if self.fixed_size is not None and tuple(images.shape[-2:]) != self.fixed_size:
            raise ValueError(f"backbone {self.config.backbone!r} takes {self.fixed_size[0]}x{self.fixed_size[1]} "
                             f"images only (its position embedding is tied to that grid), got "
                             f"{images.shape[-2]}x{images.shape[-1]}: resize them, or predict with sliding windows "
                             f"of that size (inference={{'mode': 'slide', ...}}, as its zoo entries do)")
        if self.config.patch_padding == "center" and self.patch_size > 1:  # DINOv2's CenterPadding
            height, width = images.shape[-2:]
            rows, columns = -height % self.patch_size, -width % self.patch_size
            images = F.pad(images, (columns // 2, columns - columns // 2, rows // 2, rows - rows // 2))
        if self.pad_multiple > 1:
            height, width = images.shape[-2:]
            images = F.pad(images, (0, -width % self.pad_multiple, 0, -height % self.pad_multiple))
        tokens: dict[str, Tensor] = {}
        if self.class_tokens:
            maps, class_tokens = levels_with_class_tokens(self.backbone, images)
            tokens = {f"{name}_class_token": token for name, token in zip(FEATURE_NAMES, class_tokens)}
        else:
            maps = self.backbone(images)
        if self.backbone_nhwc:
            maps = [m.permute(0, 3, 1, 2) for m in maps]
        features = dict(zip(FEATURE_NAMES, maps))
        if self.feature_norms is not None:
            for name, norm in self.feature_norms.items():
                features[name] = norm(features[name])
                if f"{name}_class_token" in tokens:  # the level's norm normalises its tokens, the class token too
                    tokens[f"{name}_class_token"] = F.layer_norm(tokens[f"{name}_class_token"], norm.normalized_shape,
                                                                 norm.weight, norm.bias, norm.eps)
        # Transformer families hand over maps in whatever strides their last op left (a permuted view); the head's
        # convolutions run in the model's memory format, and a mixed one cost them up to 25% (UPerNet on ConvNeXt-T
        # at 512x512, measured). A no-op for maps already in it (the CNNs').
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        features = {name: f.contiguous(memory_format=memory_format) for name, f in features.items()}
        return {**features, **tokens}

    def _upsample(self, logits: Tensor, size) -> Tensor:
        # Logits leave the model contiguous. Made contiguous before upsampling, not after: the copy is of the small
        # map; copying the upsampled one out of channels-last took longer than the upsampling itself (150 classes
        # at 512x512: 207 ms against 80, on the project's 2-core EPYC)
        logits = logits.contiguous()
        if logits.shape[-2:] == size and not is_exporting():  # an export serves every size: never skip the resize
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.config.align_corners)

    def forward(self, images: Tensor):
        in_chans = self.config.in_chans
        if images.dim() != 4 or images.shape[1] != in_chans:
            what = {1: "greyscale", 3: "RGB"}.get(in_chans, f"{in_chans}-band")
            raise ValueError(f"expected images of shape (N, {in_chans}, H, W), normalised {what}; "
                             f"got {tuple(images.shape)}")
        size = images.shape[-2:]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.backbone_features(images)
        if self.neck is not None:
            features = self.neck(features)
        outputs = self.head(features, images if self.head.needs_image else None)
        if isinstance(outputs, Mapping):  # a mask classification head in training: its per-query outputs, for its
            return outputs                # matching loss (segzoo.losses.MaskClassificationLoss), not upsampled
        outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        if not self.training:
            return self._upsample(outputs[0], size)
        if self.aux_head is not None:
            outputs.append(self.aux_head(features["c3"]))
        return tuple(self._upsample(out, size) for out in outputs)
