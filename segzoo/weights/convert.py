"""Convert reference (GluonCV-style) and PyTorch-Encoding / FastFCN ``.pth`` checkpoints to segzoo.

The engine: every source key is renamed by explicit rules (the upstream layout's in ``reference``, each head's
and neck's beside them); nothing is matched by shape or order. A conversion succeeds only when every source key
is placed (or explicitly dropped / verified as a duplicate), every key of the target model is filled, and every
shape fits; otherwise ``CheckpointError`` lists the offending keys.
"""
from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from ..config import ModelConfig
from ..errors import CheckpointError
from ..model import SegmentationModel
from . import reference
from .checkpoint import load_weights, save_pretrained

__all__ = ["ConversionReport", "convert_state_dict", "convert_file", "load_source_state_dict", "list_kinds"]


def list_kinds() -> list[str]:
    """The reference model kinds ``convert_file`` and ``segzoo convert --model`` take (``psp_jpu``, ...)."""
    return list(reference.reference_kinds())


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
        kind: The reference model kind (one of ``list_kinds()``).
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


def _key_lines(title: str, lines: list[str], limit: int = 20) -> str:
    more = [f"  ... and {len(lines) - limit} more"] if len(lines) > limit else []
    return "\n".join([f"{title} ({len(lines)}):", *(f"  {line}" for line in lines[:limit]), *more])


def _place(source: dict[str, Tensor], expected: dict[str, Tensor], rules, dropped_rules, shared_rules):
    """Rename every source key; return (converted, shared, dropped, problems), problems as printable blocks."""
    rules, shared_rules = _compile(rules), _compile(shared_rules)
    dropped_rules = _compile([(src, "") for src in dropped_rules])
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
    kinds = reference.reference_kinds()
    if kind not in kinds:
        raise CheckpointError(f"unknown kind {kind!r}; known kinds: {', '.join(kinds)}")
    spec = kinds[kind]
    source = _strip_wrapper(state_dict)
    bad_values = [key for key, value in source.items() if not isinstance(value, Tensor)]
    if bad_values:
        raise CheckpointError(_key_lines("checkpoint entries that are not tensors", bad_values))
    layout = reference.detect_layout(source)
    backbone = backbone or reference.infer_backbone(source, layout)
    classifier = spec.form.classifier
    if num_classes is None:
        if classifier not in source:
            raise CheckpointError(f"{kind} checkpoint has no classifier key {classifier!r}; "
                                  f"is it another kind? (known: {', '.join(kinds)})")
        num_classes = int(source[classifier].shape[0])

    config = ModelConfig(head=spec.head, backbone=backbone, num_classes=num_classes, aux=True,
                         head_kwargs=dict(spec.form.options),  **spec.structure,
                         class_names=tuple(class_names) if class_names is not None else None)
    model = SegmentationModel(config).eval()
    converted, shared, dropped, problems = _place(source, model.state_dict(), reference.layout_rules(spec, layout),
                                                  reference.DROPPED[layout], spec.form.shared)
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
        kind: One of ``list_kinds()``: ``<head form>_<jpu|d8>`` such as ``fcn_jpu``, ``psp_d8``, ``psp_jpu``,
            ``deeplabv3_jpu``, ``danet_jpu``, ``ocnet_base_jpu``, ``ocnet_asp_jpu``.
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
        kind: One of ``list_kinds()`` (see ``convert_state_dict``).
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
