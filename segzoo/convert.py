"""Convert reference (GluonCV-style) and PyTorch-Encoding / FastFCN ``.pth`` checkpoints to segzoo.

Every source key is renamed by explicit per-kind rule tables (below); nothing is matched by shape or
order. A conversion succeeds only when every source key is placed (or explicitly dropped / verified as a
duplicate), every key of the target model is filled, and every shape fits; otherwise ``CheckpointError``
lists the offending keys.
"""
from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from .checkpoint import load_weights, save_pretrained
from .config import ModelConfig
from .errors import CheckpointError
from .factory import create_model
from .model import SegmentationModel

__all__ = ["KINDS", "ConversionReport", "convert_state_dict", "convert_file", "load_source_state_dict"]


def _cbr(src: str, dst: str) -> list[tuple[str, str]]:
    """Reference ``Sequential(conv, bn, relu)`` -> segzoo ``ConvBnAct`` (``.0`` -> ``.conv``, ``.1`` -> ``.bn``)."""
    return [(rf"{src}\.0", f"{dst}.conv"), (rf"{src}\.1", f"{dst}.bn")]


def _jpu_rules(prefix: str) -> list[tuple[str, str]]:
    rules = _cbr(rf"{prefix}\.conv5", "neck.conv5") + _cbr(rf"{prefix}\.conv4", "neck.conv4") \
        + _cbr(rf"{prefix}\.conv3", "neck.conv3")
    for i in range(4):  # reference dilation1..4 -> segzoo dilations.0..3
        src, dst = rf"{prefix}\.dilation{i + 1}", f"neck.dilations.{i}"
        rules += [(rf"{src}\.0\.conv1", f"{dst}.depthwise"), (rf"{src}\.0\.bn", f"{dst}.depthwise_bn"),
                  (rf"{src}\.0\.pointwise", f"{dst}.pointwise"), (rf"{src}\.1", f"{dst}.bn")]
    return rules


# The reference backbone is ResNet-v1s split into base1 (stem + layer1 + layer2's blocks one by one),
# base2 (= layer3) and base3 (= layer4). base1.{2,5,8,9} are ReLUs / the max-pool: no parameters.
_MAX_LAYER2_BLOCKS = 8  # resnet152s; indices a smaller checkpoint does not have are never used
_REFERENCE_BACKBONE = (
    [(rf"base1\.{i}", f"backbone.conv1.{i}") for i in (0, 1, 3, 4, 6)]
    + [(r"base1\.7", "backbone.bn1"), (r"base1\.10", "backbone.layer1")]
    + [(rf"base1\.{11 + i}", f"backbone.layer2.{i}") for i in range(_MAX_LAYER2_BLOCKS)]
    + [(r"base2", "backbone.layer3"), (r"base3", "backbone.layer4")]
)
# PyTorch-Encoding / FastFCN keep the backbone as ``pretrained`` with timm's own key names.
_ENCODING_BACKBONE = [(r"pretrained", "backbone")]
# Classification layers of the ImageNet backbone: not part of a segmentation model.
_DROPPED = {"reference": [r"fc"], "encoding": [r"pretrained\.fc"]}
# Where the layer3 blocks are, to tell ResNet-50 / 101 / 152 apart.
_LAYER3_BLOCK = {"reference": re.compile(r"base2\.(\d+)\."), "encoding": re.compile(r"pretrained\.layer3\.(\d+)\.")}
_DEPTH_TO_BACKBONE = {6: "resnet50s", 23: "resnet101s", 36: "resnet152s"}

_AUX = _cbr(r"auxlayer\.block", "aux_head.block") + [(r"auxlayer\.block\.4", "aux_head.classifier")]


def _object_context(src: str) -> list[tuple[str, str]]:
    stage, dst = rf"{src}\.stages\.0", "head.object_context"
    return _cbr(rf"{stage}\.f_key", f"{dst}.key_query") + [
        (rf"{stage}\.f_value", f"{dst}.value"), (rf"{stage}\.W", f"{dst}.out_proj")]


@dataclass(frozen=True)
class _Kind:
    """One reference model: how to build the segzoo model and how its head keys are renamed."""

    head: str
    options: dict  # create_model arguments besides aux=True and num_classes
    rules: list  # (source module regex, segzoo module) pairs, first match wins
    classifier: str  # source key of the main classifier's weight, to infer num_classes
    shared: list = field(default_factory=list)  # (duplicate module regex, module it duplicates) pairs


_PSP = ([rule for i in range(4) for rule in _cbr(rf"head\.psp\.conv{i + 1}", f"head.pyramid.branches.{i}")]
        + _cbr(r"head\.block", "head.bottleneck") + [(r"head\.block\.4", "head.classifier")])
_DEEPLAB = (_cbr(r"head\.aspp\.b0", "head.aspp.conv1x1")
            + [rule for i in range(3) for rule in _cbr(rf"head\.aspp\.b{i + 1}", f"head.aspp.atrous.{i}")]
            # b4.gap is Sequential(pool, conv, bn, relu): its conv and bn sit at 1 and 2
            + [(r"head\.aspp\.b4\.gap\.1", "head.aspp.pool_conv.conv"),
               (r"head\.aspp\.b4\.gap\.2", "head.aspp.pool_conv.bn")]
            + _cbr(r"head\.aspp\.project", "head.aspp.project") + _cbr(r"head\.block", "head.block")
            + [(r"head\.block\.4", "head.classifier")])
_DANET = (_cbr(r"head\.conv5a", "head.conv5a") + _cbr(r"head\.conv5c", "head.conv5c")
          + [(r"head\.sa\.query_conv", "head.position_attention.query"),
             (r"head\.sa\.key_conv", "head.position_attention.key"),
             (r"head\.sa\.value_conv", "head.position_attention.value"),
             (r"head\.sa\.gamma", "head.position_attention.gamma"),
             (r"head\.sc\.gamma", "head.channel_attention.gamma")]
          + _cbr(r"head\.conv51", "head.conv51") + _cbr(r"head\.conv52", "head.conv52")
          + [(r"head\.conv8\.1", "head.classifier")])  # conv8 = Sequential(Dropout2d, Conv2d)
# Base-OC: context = Sequential(conv, bn, relu, BaseOC); the OC module's own fuse is conv_bn_dropout.
_OCNET_BASE = (_cbr(r"context", "head.reduce") + _object_context(r"context\.3")
               + _cbr(r"context\.3\.conv_bn_dropout", "head.fuse") + [(r"cls", "head.classifier")])
# ASP-OC: context.0 holds the branches; its first branch ("context") is Sequential(conv, bn, relu, OC module).
_OCNET_ASP = (_cbr(r"context\.0\.context", "head.context_conv") + _object_context(r"context\.0\.context\.3")
              + _cbr(r"context\.0\.context\.3\.conv_bn_dropout", "head.context_fuse")
              + _cbr(r"context\.0\.conv2", "head.conv1x1")
              + [rule for i in range(3) for rule in _cbr(rf"context\.0\.conv{i + 3}", f"head.atrous.{i}")]
              + _cbr(r"context\.0\.conv_bn_dropout", "head.fuse") + [(r"cls", "head.classifier")])
# The reference's f_query is the very module f_key (two names): placed by checking it equals f_key.
_F_QUERY = [(r"(.*)\.f_query", r"\1.f_key")]

KINDS: dict[str, _Kind] = {
    "fcn_jpu": _Kind("fcn", dict(neck="jpu"), _cbr(r"head\.block", "head.fcn.block")
                     + [(r"head\.block\.4", "head.fcn.classifier")], "head.block.4.weight"),
    "psp_d8": _Kind("pspnet", dict(output_stride=8, bins=(1, 2, 3, 4)), _PSP, "head.block.4.weight"),
    "psp_jpu": _Kind("pspnet", dict(neck="jpu", bins=(1, 2, 3, 4)), _PSP, "head.block.4.weight"),
    "deeplabv3_jpu": _Kind("deeplabv3", dict(neck="jpu"), _DEEPLAB, "head.block.4.weight"),
    "danet_jpu": _Kind("danet", dict(neck="jpu", softmax_over="queries", deep_supervision=False), _DANET,
                       "head.conv8.1.weight"),
    "ocnet_base_jpu": _Kind("ocnet", dict(neck="jpu", activation="relu"), _OCNET_BASE, "cls.weight", _F_QUERY),
    "ocnet_asp_jpu": _Kind("ocnet", dict(neck="jpu", variant="asp", activation="relu", asp_reduce_channels=0,
                                         asp_branch_channels=512), _OCNET_ASP, "cls.weight", _F_QUERY),
}


def _compile(rules) -> list[tuple[re.Pattern, str]]:
    # A rule matches a whole module path: the match must end at a "." or at the end of the key.
    return [(re.compile(rf"(?:{src})(?=\.|$)"), dst) for src, dst in rules]


def _rename(key: str, rules: list[tuple[re.Pattern, str]]) -> Optional[str]:
    """Apply the first rule whose module path prefixes ``key``; None when no rule matches."""
    for pattern, dst in rules:
        match = pattern.match(key)
        if match:
            return match.expand(dst) + key[match.end():]
    return None


@dataclass
class ConversionReport:
    """What a conversion did.

    Attributes:
        kind: The reference model kind (a key of ``KINDS``).
        layout: ``"reference"`` (``base*`` / ``JPU.``) or ``"encoding"`` (``pretrained.`` / ``jpu.``).
        config: The segzoo config of the converted model.
        placed: Number of source keys written to a segzoo key (= number of segzoo keys).
        shared: Source keys that duplicate another key (OCNet's ``f_query``), verified identical.
        dropped: Source keys deliberately left out (the ImageNet classifier ``fc``).
        out_dir: Where ``convert_file`` wrote the model (None for ``convert_state_dict``).
    """

    kind: str
    layout: str
    config: ModelConfig
    placed: int
    shared: list[str]
    dropped: list[str]
    out_dir: Optional[Path] = None

    def summary(self) -> str:
        """A one-paragraph human-readable summary."""
        where = f" -> {self.out_dir}" if self.out_dir else ""
        return (f"converted {self.kind} ({self.layout} layout) to {self.config.head}_{self.config.backbone}, "
                f"{self.config.num_classes} classes{where}: {self.placed} keys placed, "
                f"{len(self.shared)} duplicate keys verified, {len(self.dropped)} dropped")


def _strip_wrapper(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    # nn.DataParallel / DDP checkpoints prefix every key with "module."
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module."):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def _detect_layout(keys) -> str:
    reference = any(key.startswith("base1.") for key in keys)
    encoding = any(key.startswith("pretrained.") for key in keys)
    if reference == encoding:
        raise CheckpointError("cannot tell the checkpoint layout: expected backbone keys under 'base1.' "
                              "(reference) or under 'pretrained.' (PyTorch-Encoding), "
                              + ("found both" if reference else "found neither"))
    return "reference" if reference else "encoding"


def _infer_backbone(keys, layout: str) -> str:
    blocks = {int(match.group(1)) for key in keys if (match := _LAYER3_BLOCK[layout].match(key))}
    depth = max(blocks) + 1 if blocks else 0
    if depth not in _DEPTH_TO_BACKBONE:
        raise CheckpointError(f"cannot infer the backbone from {depth} layer3 blocks (known: "
                              f"{', '.join(f'{n} -> {name}' for n, name in _DEPTH_TO_BACKBONE.items())}); "
                              f"pass backbone= explicitly")
    return _DEPTH_TO_BACKBONE[depth]


def _key_lines(title: str, lines: list[str], limit: int = 20) -> str:
    more = [f"  ... and {len(lines) - limit} more"] if len(lines) > limit else []
    return "\n".join([f"{title} ({len(lines)}):", *(f"  {line}" for line in lines[:limit]), *more])


def _place(source: dict[str, Tensor], expected: dict[str, Tensor], layout: str, spec: _Kind):
    """Rename every source key; return (converted, shared, dropped, problems), problems as printable blocks."""
    rules = _compile((_REFERENCE_BACKBONE if layout == "reference" else _ENCODING_BACKBONE)
                     + _jpu_rules("JPU" if layout == "reference" else "jpu") + _AUX + spec.rules)
    dropped_rules, shared_rules = _compile([(src, "") for src in _DROPPED[layout]]), _compile(spec.shared)
    converted, origin, shared, dropped = {}, {}, [], []
    unplaced, mismatched, collisions, differing = [], [], [], []
    for key, value in source.items():
        original = _rename(key, shared_rules)
        if original is not None:  # a second name of another module: placed by checking it is the same
            if original not in source or not torch.equal(source[original], value):
                differing.append(f"{key} differs from {original}" if original in source
                                 else f"{key} has no {original} to duplicate")
            shared.append(key)
        elif _rename(key, dropped_rules) is not None:
            dropped.append(key)
        elif (target := _rename(key, rules)) is None or target not in expected:
            unplaced.append(f"{key} (no rule)" if target is None else f"{key} -> {target} (not in the model)")
        elif target in converted:
            collisions.append(f"{key} and {origin[target]} -> {target}")
        elif value.shape != expected[target].shape:
            mismatched.append(f"{key} -> {target}: checkpoint {tuple(value.shape)}, "
                              f"model {tuple(expected[target].shape)}")
        else:
            converted[target], origin[target] = value.to(expected[target].dtype), key
    unfilled = [key for key in expected if key not in converted]
    problems = [_key_lines(title, lines) for title, lines in (
        ("keys that cannot be placed", unplaced), ("shape mismatches", mismatched),
        ("keys mapped to the same target", collisions), ("duplicate keys that are not duplicates", differing),
        ("model keys left unfilled", unfilled)) if lines]
    return converted, shared, dropped, problems


def _convert(state_dict: Mapping[str, Tensor], kind: str, backbone: Optional[str], num_classes: Optional[int],
             class_names: Optional[Sequence[str]]) -> tuple[SegmentationModel, dict[str, Tensor], ConversionReport]:
    if kind not in KINDS:
        raise CheckpointError(f"unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    spec = KINDS[kind]
    source = _strip_wrapper(state_dict)
    bad_values = [key for key, value in source.items() if not isinstance(value, Tensor)]
    if bad_values:
        raise CheckpointError(_key_lines("checkpoint entries that are not tensors", bad_values))
    layout = _detect_layout(source)
    backbone = backbone or _infer_backbone(source, layout)
    if num_classes is None:
        if spec.classifier not in source:
            raise CheckpointError(f"{kind} checkpoint has no classifier key {spec.classifier!r}; "
                                  f"is it another kind? (known: {', '.join(KINDS)})")
        num_classes = int(source[spec.classifier].shape[0])

    model = create_model(f"{spec.head}_{backbone}", aux=True, num_classes=num_classes, **spec.options)
    if class_names is not None:  # names do not change the architecture
        model.config = model.config.replace(class_names=tuple(class_names))
    converted, shared, dropped, problems = _place(source, model.state_dict(), layout, spec)
    if problems:
        raise CheckpointError(f"cannot convert the checkpoint as {kind!r} ({layout} layout, {backbone}, "
                              f"{num_classes} classes):\n" + "\n".join(problems))
    report = ConversionReport(kind=kind, layout=layout, config=model.config, placed=len(converted),
                              shared=shared, dropped=dropped)
    return model, converted, report


def convert_state_dict(state_dict: Mapping[str, Tensor], kind: str, backbone: Optional[str] = None,
                       num_classes: Optional[int] = None,
                       class_names: Optional[Sequence[str]] = None) -> tuple[ModelConfig, dict[str, Tensor]]:
    """Rename a reference state dict to segzoo's keys, checking that everything fits.

    Args:
        state_dict: The reference (``base*``, ``JPU.``) or PyTorch-Encoding (``pretrained.``, ``jpu.``)
            state dict; the layout is detected from the keys, a ``module.`` prefix is stripped.
        kind: One of ``KINDS``: ``fcn_jpu``, ``psp_d8``, ``psp_jpu``, ``deeplabv3_jpu``, ``danet_jpu``,
            ``ocnet_base_jpu``, ``ocnet_asp_jpu``.
        backbone: timm backbone name; default inferred from the number of layer3 blocks.
        num_classes: Number of classes; default inferred from the classifier's weight.
        class_names: Optional class names to record in the config.

    Returns:
        The segzoo ``ModelConfig`` and the converted state dict (every key of that model).

    Raises:
        CheckpointError: A key that cannot be placed, a model key left unfilled, a shape mismatch, or
            OCNet ``f_query`` weights that differ from ``f_key``.
    """
    model, converted, _ = _convert(state_dict, kind, backbone, num_classes, class_names)
    return model.config, converted


def load_source_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a ``.pth`` with ``weights_only=True``: a state dict, or a dict with ``state_dict`` / ``model``.

    Args:
        path: The checkpoint file.

    Returns:
        The state dict (``CheckpointError`` when the file is missing or holds anything but tensors).
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint not found: {path}") from err
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path} cannot be read with torch.load(weights_only=True): {err}") from err
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    for entry in ("state_dict", "model"):  # training checkpoints wrap the weights
        if isinstance(loaded.get(entry), Mapping):
            return dict(loaded[entry])
    return dict(loaded)


def convert_file(src: str | os.PathLike, out_dir: str | os.PathLike, kind: str, backbone: Optional[str] = None,
                 num_classes: Optional[int] = None,
                 class_names: Optional[Sequence[str]] = None) -> ConversionReport:
    """Convert a reference ``.pth`` into ``out_dir/model.safetensors`` + ``config.json``.

    The result loads with ``segzoo.create_model("local-dir:<out_dir>")``.

    Args:
        src: The reference checkpoint (read with ``torch.load(..., weights_only=True)``).
        out_dir: Output directory (created if needed).
        kind: One of ``KINDS`` (see ``convert_state_dict``).
        backbone: timm backbone name; default inferred from the checkpoint.
        num_classes: Number of classes; default inferred from the checkpoint.
        class_names: Optional class names to record in the config.

    Returns:
        A ``ConversionReport`` (``report.summary()`` for a printable line).
    """
    model, converted, report = _convert(load_source_state_dict(src), kind, backbone, num_classes, class_names)
    load_weights(model, converted, source=str(src))
    report.out_dir = save_pretrained(model, out_dir)
    return report
