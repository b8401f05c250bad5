"""Weighted sums of losses, and ``build_loss``: a loss (or a sum of losses) from a short spec like ``"ce+dice:0.5"``."""
from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ...errors import ConfigError, did_you_mean
from ._common import MODES
from .cross_entropy import CrossEntropyLoss, OhemCrossEntropy
from .dice import DiceLoss, TverskyLoss
from .focal import FocalLoss
from .lovasz import LovaszLoss

LOSSES: dict[str, type[nn.Module]] = {
    "ce": CrossEntropyLoss,
    "ohem": OhemCrossEntropy,
    "dice": DiceLoss,
    "focal": FocalLoss,
    "lovasz": LovaszLoss,
    "tversky": TverskyLoss,
}
"""The loss names of :func:`build_loss` specs, name -> class."""

# Arguments build_loss sets itself; the other keyword arguments of a loss class are its options.
_COMMON = ("mode", "ignore_index", "class_weight")


class CombinedLoss(nn.Module):
    """Weighted sum of losses: ``sum_i weight_i * loss_i(logits, target)``.

    Args:
        terms: ``(weight, loss)`` pairs; every loss takes ``(logits, target)`` and returns a scalar.
    """

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]):
        super().__init__()
        terms = list(terms)
        if not terms:
            raise ValueError("CombinedLoss needs at least one (weight, loss) term")
        for weight, loss in terms:
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise ValueError(f"a CombinedLoss weight must be a finite number, got {weight!r}")
            if not isinstance(loss, nn.Module):
                raise ValueError(f"a CombinedLoss term must be an nn.Module, got {type(loss).__name__}")
        self.weights = tuple(float(weight) for weight, _ in terms)
        self.losses = nn.ModuleList(loss for _, loss in terms)

    def extra_repr(self) -> str:
        return f"weights={self.weights}"

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Compute ``sum_i weight_i * loss_i(logits, target)`` (a float32 scalar when every term returns one)."""
        total = None
        for weight, loss in zip(self.weights, self.losses):
            term = weight * loss(logits, target)
            total = term if total is None else total + term
        return total


def parse_loss_spec(spec: str) -> list[tuple[str, float]]:
    """``"ce:1+dice:0.5"`` -> ``[("ce", 1.0), ("dice", 0.5)]``; one-line ``ConfigError`` on a bad spec."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a loss spec must be a non-empty string like 'ce' or 'ce+dice:0.5', got {spec!r}")
    terms = []
    for part in spec.split("+"):
        name, colon, weight_text = part.strip().partition(":")
        name = name.strip().lower()
        if name not in LOSSES:
            known = ", ".join(LOSSES)
            shown = f"unknown loss {name!r}" if name else "an empty term"
            raise ConfigError(f"{shown} in loss spec {spec!r}; known losses: {known}.{did_you_mean(name, LOSSES)}")
        weight = 1.0
        if weight_text.strip():
            try:
                weight = float(weight_text)
            except ValueError:
                weight = math.nan
            if not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"the weight of {name!r} in loss spec {spec!r} must be a number >= 0, "
                                  f"got {weight_text.strip()!r}")
        elif colon:
            raise ConfigError(f"missing weight after '{name}:' in loss spec {spec!r}")
        terms.append((name, weight))
    return terms


def loss_options(name: str) -> tuple[str, ...]:
    """The keyword options of the loss ``name`` (its constructor arguments other than mode, ignore_index,
    class_weight)."""
    parameters = inspect.signature(LOSSES[name].__init__).parameters
    return tuple(p for p in parameters if p not in ("self", *_COMMON)
                 and parameters[p].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))


def _options_for(names: Sequence[str], options: dict[str, Any], spec: str) -> list[dict[str, Any]]:
    """Route every option to the terms that accept it; ``<loss>_<option>`` (``ohem_threshold``) targets one loss
    and wins over the plain ``<option>``."""
    routed: list[dict[str, Any]] = [{} for _ in names]
    scoped = {}
    for key, value in options.items():
        loss, _, option = key.partition("_")
        if loss in LOSSES and option in loss_options(loss):
            scoped[key] = (loss, option, value)
            continue
        takers = [i for i, name in enumerate(names) if key in loss_options(name)]
        if not takers:
            accepted = sorted({option for name in names for option in loss_options(name)})
            raise ConfigError(f"no term of loss {spec!r} accepts the option {key!r}; its options: "
                              f"{', '.join(accepted) or 'none'}.{did_you_mean(key, accepted)}")
        for i in takers:
            routed[i][key] = value
    for key, (loss, option, value) in scoped.items():
        takers = [i for i, name in enumerate(names) if name == loss]
        if not takers:
            raise ConfigError(f"the option {key!r} is for {loss!r} terms, and loss {spec!r} has none")
        for i in takers:
            routed[i][option] = value
    return routed


def build_loss(spec: str, *, mode: str = "multiclass", ignore_index: int = 255,
               class_weight: Sequence[float] | None = None, **options: Any) -> nn.Module:
    """Build a loss from a spec: one name, or a ``+``-separated sum of ``name`` or ``name:weight`` terms.

    Names are the keys of :data:`LOSSES`: ``ce``, ``ohem``, ``dice``, ``focal``, ``lovasz``, ``tversky``. A term's
    weight defaults to 1. One term of weight 1 gives the loss itself, anything else a :class:`CombinedLoss`.

    Examples: ``build_loss("ce")``, ``build_loss("ce:1+dice:0.5", smooth=1.0)``,
    ``build_loss("focal+tversky", mode="binary", gamma=2.0, tversky_alpha=0.3, tversky_beta=0.7)``.

    Args:
        spec: The loss spec (names are case-insensitive).
        mode: ``"multiclass"``, ``"binary"`` or ``"multilabel"``, given to every term.
        ignore_index: Target value of unlabelled pixels, given to every term.
        class_weight: One weight per class (label), given to every term.
        **options: Keyword options of the loss classes (``gamma=2``, ``smooth=1``, ``alpha=0.3``...), given to every
            term whose class accepts them; ``<name>_<option>=`` (``ohem_threshold=0.7``, ``tversky_alpha=0.3``)
            targets the ``<name>`` terms only and wins over the plain option.

    Raises:
        ConfigError: An unknown loss name, a bad weight, an option no term accepts, or a loss that does not support
            ``mode`` (``ohem`` is multiclass only), on one line.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    terms = parse_loss_spec(spec)
    names = [name for name, _ in terms]
    for name in names:
        supported = getattr(LOSSES[name], "supported_modes", MODES)
        if mode not in supported:
            raise ConfigError(f"loss {name!r} supports mode={' or '.join(map(repr, supported))} only, "
                              f"got mode={mode!r}")
    built = []
    for (name, weight), kwargs in zip(terms, _options_for(names, options, spec)):
        try:
            loss = LOSSES[name](mode=mode, ignore_index=ignore_index, class_weight=class_weight, **kwargs)
        except ValueError as error:
            raise ConfigError(f"loss {name!r}: {error}") from error
        built.append((weight, loss))
    if len(built) == 1 and built[0][0] == 1.0:
        return built[0][1]
    return CombinedLoss(built)
