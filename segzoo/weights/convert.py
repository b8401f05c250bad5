"""Convert upstream checkpoints to segzoo: the reference zoo's and PyTorch-Encoding / FastFCN's ``.pth`` files,
torchvision's segmentation models, and the zoo entries' files.

The engine: every source key is renamed by explicit rules (the upstream plug-in's layout, ``segzoo.upstreams``;
each head's and neck's beside them); nothing is matched by shape or order. A conversion succeeds only when every
source key is placed (or explicitly dropped / verified as a duplicate), every key of the target model is filled,
and every shape fits; otherwise ``CheckpointError`` lists the offending keys. The keys and shapes to fill come from a
skeleton of the model on the meta device (no memory, no initialisation): converting builds no model, so
``create_model`` builds its model once. Files are read with ``torch.load(weights_only=True)`` only: a file that
would need to run code to load is refused.
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
from ..errors import CheckpointError, ConfigError
from ..model import SegmentationModel
from ..registry import list_heads
from ..upstream import Upstream
from ..upstreams import convert_sources, get_upstream, head_form, head_forms
from ..upstreams.reference import kind_config, reference_kinds
from ..zoo import PretrainedEntry, get_pretrained, is_pretrained_name
from .checkpoint import load_weights, read_weights, save_pretrained

__all__ = ["ConversionReport", "convert_state_dict", "convert_entry", "convert_upstream", "convert_file",
           "load_source_state_dict", "list_kinds"]


def list_kinds() -> list[str]:
    """The reference model kinds ``convert_file`` and ``segzoo convert --model`` take (``psp_jpu``, ...)."""
    return list(reference_kinds())


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
        kind: What was converted: a reference model kind (``psp_jpu``), a zoo name, or ``<source>/<form>``.
        layout: The key layout: ``"reference"`` (``base*`` / ``JPU.``), ``"encoding"`` (``pretrained.`` /
            ``jpu.``) or ``"torchvision"``.
        config: The segzoo config of the converted model.
        placed: Number of source keys written to a segzoo key (= number of segzoo keys).
        shared: Source keys that duplicate another key (OCNet's ``f_query``), verified identical.
        dropped: Source keys deliberately left out (the ImageNet classifier ``fc``).
        out_dir: Where ``convert_file`` wrote the model (None for the in-memory conversions).
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


def with_backbone(state_dict: Mapping[str, Tensor], backbone: Optional[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """A head's checkpoint with the backbone's, published apart (DINOv2), under ``backbone.``."""
    source = _strip_wrapper(state_dict)
    if backbone is not None:
        source.update({f"backbone.{key}": value for key, value in _strip_wrapper(backbone).items()})
    return source


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


def _check_tensors(source: Mapping) -> None:
    bad_values = [key for key, value in source.items() if not isinstance(value, Tensor)]
    if bad_values:
        raise CheckpointError(_key_lines("checkpoint entries that are not tensors", bad_values))


def _expected(config: ModelConfig) -> dict[str, Tensor]:
    """The keys, shapes and dtypes a model of ``config`` has: a skeleton on the meta device, never a real build."""
    with torch.device("meta"):
        return SegmentationModel(config).state_dict()


def _place_onto(source: Mapping[str, Tensor], config: ModelConfig, form: Upstream, variant: str,
                what: str) -> tuple[dict[str, Tensor], ConversionReport]:
    """Place every key of ``source`` (in the layout ``variant`` of ``form.source``) onto the keys of a model of
    ``config``."""
    upstream = get_upstream(form.source)
    source = upstream.prepare_for(source, config, variant)
    converted, shared, dropped, problems = _place(source, _expected(config), upstream.rules(form, config, variant),
                                                  upstream.dropped(variant) + upstream.unused(config, variant),
                                                  form.shared)
    if problems:
        raise CheckpointError(f"cannot convert the checkpoint as {what!r} ({variant} layout, {config.backbone}, "
                              f"{config.num_classes} classes):\n" + "\n".join(problems))
    report = ConversionReport(kind=what, layout=variant, config=config, placed=len(converted), shared=shared,
                              dropped=dropped)
    return converted, report


def _convert_to(source: Mapping[str, Tensor], config: ModelConfig, form: Upstream, variant: str,
                what: str) -> tuple[SegmentationModel, dict[str, Tensor], ConversionReport]:
    """``_place_onto``, and the model of ``config`` (built here, for the callers that want one)."""
    converted, report = _place_onto(source, config, form, variant, what)
    return SegmentationModel(config).eval(), converted, report


def _num_classes(source: Mapping[str, Tensor], form: Upstream, what: str, known: str) -> int:
    if form.classifier not in source:
        raise CheckpointError(f"{what} checkpoint has no classifier key {form.classifier!r}; "
                              f"is it another kind? (known: {known})")
    return int(source[form.classifier].shape[0])


def _convert(state_dict: Mapping[str, Tensor], kind: str, backbone: Optional[str], num_classes: Optional[int],
             class_names: Optional[Sequence[str]]) -> tuple[SegmentationModel, dict[str, Tensor], ConversionReport]:
    kinds = reference_kinds()
    if kind not in kinds:
        raise CheckpointError(f"unknown kind {kind!r}; known kinds: {', '.join(kinds)}")
    spec = kinds[kind]
    source = _strip_wrapper(state_dict)
    _check_tensors(source)
    reference = get_upstream(spec.form.source)
    variant = reference.detect(source)
    backbone = backbone or reference.infer_backbone(source, variant)
    num_classes = num_classes if num_classes is not None else _num_classes(source, spec.form, kind, ", ".join(kinds))
    config = kind_config(spec, backbone, num_classes)
    if class_names is not None:  # names do not change the architecture
        config = config.replace(class_names=tuple(class_names))
    return _convert_to(source, config, spec.form, variant, kind)


def convert_entry(state_dict: Mapping[str, Tensor], entry: PretrainedEntry,
                  backbone: Optional[Mapping[str, Tensor]] = None) -> tuple[ModelConfig, dict[str, Tensor]]:
    """Convert an upstream checkpoint of a zoo entry to a model of the entry's config.

    Args:
        state_dict: The checkpoint's state dict, in the layout of ``entry.upstream`` (a ``module.`` prefix is
            stripped; the reference layout's two variants are told apart by the keys).
        entry: The zoo entry (its config, upstream and head form).
        backbone: The backbone's state dict where the upstream publishes it apart (``entry.backbone_file``): its
            keys are placed under ``backbone.``.

    Returns:
        The entry's config and the converted state dict (every key of that model). No model is built.
    """
    source = with_backbone(state_dict, backbone)
    _check_tensors(source)
    variant = get_upstream(entry.upstream).detect(source)
    form = head_form(entry.config.head, entry.upstream, entry.variant)
    converted, _ = _place_onto(source, entry.config.replace(provenance={}), form, variant, entry.name)
    return entry.config, converted


def _forms(source_name: str) -> list[tuple[str, Upstream]]:
    """(head, form) for every registered head's forms of an upstream that have key rules (the heads' own and those
    the upstream declares for them)."""
    return [(info.name, form) for info in list_heads() for form in head_forms(info.name, source_name) if form.rules]


def convert_upstream(state_dict: Mapping[str, Tensor], source_name: str, *, entry: Optional[PretrainedEntry] = None,
                     backbone: Optional[str] = None, num_classes: Optional[int] = None,
                     class_names: Optional[Sequence[str]] = None, told: Optional[Mapping] = None
                     ) -> tuple[SegmentationModel, dict[str, Tensor], ConversionReport]:
    """Convert an upstream checkpoint: with a zoo ``entry``, to the entry's config; else to what the keys tell
    (``segzoo convert --from SOURCE`` without ``--model``): the head form whose key rules place every key (tried
    among those whose classifier key the checkpoint has), the backbone from its depth, the structure the upstream
    layout reads from the keys, and the number of classes from the classifier. Options the keys cannot tell
    (PSPNet's bins, DANet's softmax axis) are the form's, as the upstream trained them; ``told`` are config fields
    the checkpoint's own files tell besides the keys (``UpstreamPlugin.read_directory``: a BEiT's feature levels)."""
    layout = get_upstream(source_name)
    source = _strip_wrapper(state_dict)
    _check_tensors(source)
    variant = layout.detect(source)
    if entry is not None:
        form = head_form(entry.config.head, entry.upstream, entry.variant)
        config = entry.config.replace(provenance={})
        if class_names is not None or num_classes is not None:
            raise CheckpointError("--num-classes and --class-names come from the zoo entry; leave them out")
        return _convert_to(source, config, form, variant, entry.name)
    # the forms whose classifier the checkpoint has; the most specific (most rules) first
    candidates = sorted(((head, form) for head, form in _forms(source_name) if form.classifier in source),
                        key=lambda item: -len(item[1].rules))
    for head, form in candidates:
        classes = num_classes if num_classes is not None else int(source[form.classifier].shape[0])
        config = layout.config_for(head, form, backbone or layout.infer_backbone(source, variant), classes, source,
                                   variant)
        if class_names is not None:
            config = config.replace(class_names=tuple(class_names))
        if told:
            config = config.replace(**{key: value for key, value in told.items() if key != "class_names"})
        try:
            return _convert_to(source, config, form, variant, f"{source_name}/{form.variant}")
        except (CheckpointError, ConfigError) as err:  # its keys do not fit, or its model cannot be built on
            last = err                                   # this backbone (DPT's readout on a ResNet): the next form
    if not candidates:
        raise CheckpointError(f"no {source_name} head form has this checkpoint's classifier key (known forms: "
                              f"{', '.join(form.variant for _, form in _forms(source_name))}); pass --model")
    raise last
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


_TORCH_ADVICE = ("weights only load failed", "in pytorch 2.6", "weights_only", "re-running", "do it only if",
                 "check the documentation", "please file an issue", "add_safe_globals", "safe_globals", "you have two",
                 "trust", "this can happen if", "if you are seeing this error")


def _load_error_reason(err: BaseException) -> str:
    """What torch.load's error says about the file, without its advice (never: load with weights_only=False)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # torch colours parts of its message
    text = text.split("WeightsUnpickler error:", 1)[-1]
    sentences = [part.strip().rstrip(".;") for line in text.splitlines() for part in re.split(r"(?<=[.;])\s+", line)]
    kept = [part for part in sentences if part and not any(advice in part.lower() for advice in _TORCH_ADVICE)]
    return "; ".join(kept) or type(err).__name__


def load_source_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a ``.pth`` with ``weights_only=True``: a state dict, or a dict with ``state_dict`` / ``model`` (the
    other entries of such a wrapper, ``meta`` or optimizer state, are ignored). A ``.safetensors`` file is read as
    safetensors.

    Args:
        path: The checkpoint file.

    Returns:
        The state dict. ``CheckpointError`` when the file is missing, corrupt, would need to run code to load,
        or holds anything but tensors.
    """
    if os.fspath(path).endswith(".safetensors"):  # no pickle at all: read as it is
        if not os.path.isfile(path):
            raise CheckpointError(f"checkpoint not found: {path}")
        return read_weights(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint not found: {path}") from err
    except pickle.UnpicklingError as err:
        if "Unsupported operand" in str(err):  # not a pickle at all: random bytes, an HTML page, another format
            raise CheckpointError(f"{path} is not a PyTorch checkpoint ({_load_error_reason(err)})") from None
        raise CheckpointError(f"{path} is not a plain state dict: torch.load(weights_only=True) refuses it, and "
                              f"segzoo reads checkpoints no other way ({_load_error_reason(err)})") from None
    except Exception as err:  # noqa: BLE001 - on corrupt bytes the unpickler raises anything (IndexError, KeyError...)
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (corrupt or truncated?): "
                              f"{_load_error_reason(err)}") from None
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    for entry in ("state_dict", "model"):  # training checkpoints wrap the weights
        if isinstance(loaded.get(entry), Mapping):
            return dict(loaded[entry])
    return dict(loaded)


def convert_file(src: str | os.PathLike, out_dir: str | os.PathLike, kind: Optional[str] = None,
                 backbone: Optional[str] = None, num_classes: Optional[int] = None,
                 class_names: Optional[Sequence[str]] = None, *, source: str = "reference",
                 backbone_weights: Optional[str | os.PathLike] = None) -> ConversionReport:
    """Convert an upstream ``.pth`` (or ``.safetensors``, or a transformers model directory) into
    ``out_dir/model.safetensors`` + ``config.json``.

    The result loads with ``segzoo.create_model("local-dir:<out_dir>")``.

    Args:
        src: The checkpoint (read with ``torch.load(..., weights_only=True)``).
        out_dir: Output directory (created if needed). A model already there is replaced whole
            (``save_pretrained``): until the new one is complete the old one stays as it was. ``segzoo convert``
            refuses such a folder without ``--overwrite``.
        kind: A zoo name (the entry gives the config, options the keys cannot tell included), a reference
            kind (``list_kinds()``, see ``convert_state_dict``), or None to convert to what the keys tell.
        backbone: timm backbone name; default inferred from the checkpoint.
        num_classes: Number of classes; default inferred from the checkpoint.
        class_names: Optional class names to record in the config.
        source: The upstream: ``"reference"``, ``"encoding"`` (PyTorch-Encoding / FastFCN: the reference
            layout's variant; either is detected from the keys), ``"torchvision"``, ``"mmseg"`` or an installed
            upstream plug-in's name (``segzoo.upstreams.convert_sources()``).
        backbone_weights: The backbone's own ``.pth`` where the upstream publishes it apart from the head's
            (DINOv2's ``dinov2_<arch>_pretrain.pth``): its keys are placed under ``backbone.``.

    Returns:
        A ``ConversionReport`` (``report.summary()`` for a printable line).
    """
    sources = convert_sources()
    if source not in sources:
        raise CheckpointError(f"unknown checkpoint source {source!r}; known: {', '.join(sources)}")
    told: dict = {}
    if os.path.isdir(src):  # transformers' save_pretrained output: the upstream reads it (and what its config tells)
        state_dict, told = get_upstream(sources[source]).read_directory(Path(src))
        class_names = class_names if class_names is not None else told.get("class_names")
    else:
        state_dict = load_source_state_dict(src)
    if backbone_weights is not None:
        state_dict = with_backbone(state_dict, load_source_state_dict(backbone_weights))
    try:
        if kind is not None and is_pretrained_name(kind):
            model, converted, report = convert_upstream(state_dict, sources[source], entry=get_pretrained(kind),
                                                        num_classes=num_classes, class_names=class_names)
        elif kind is not None:
            if sources[source] != "reference":
                raise CheckpointError(f"{kind!r} is not a zoo name; kinds ({', '.join(list_kinds())}) are for "
                                      f"reference checkpoints")
            model, converted, report = _convert(state_dict, kind, backbone, num_classes, class_names)
        else:
            model, converted, report = convert_upstream(state_dict, sources[source], backbone=backbone,
                                                        num_classes=num_classes, class_names=class_names,
                                                        told=told)
    except CheckpointError as err:  # which file did not fit, and which layout it was read as
        raise CheckpointError(f"{src} (read as {source}'s layout): {err}") from None
    load_weights(model, converted, source=str(src), new_classes=num_classes is not None)
    report.out_dir = save_pretrained(model, out_dir)  # whole: a failed save leaves an old model there loadable
    return report
