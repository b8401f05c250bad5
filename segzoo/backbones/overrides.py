"""One method of a timm module replaced in a built model, keeping timm's modules, parameters and keys.

Where timm computes something differently from the segmentation upstreams at sizes its classifiers never see
(``swin_windows``, ``vit_positions``), each instance's class is swapped for a subclass that overrides that one
method; the subclasses are made once per timm class.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["override_method"]

_SUBCLASSES: dict[tuple[type, str, Callable], type] = {}


def override_method(model: nn.Module, base: type, method: str, function: Callable, why: str,
                    applies: Callable[[type], bool] = lambda cls: True) -> int:
    """Give every module of ``model`` that is a ``base`` (and whose class ``applies``) ``function`` as its
    ``method``; returns how many. Modules already given it are left as they are."""
    count = 0
    for module in model.modules():
        timm_class = type(module)
        if not isinstance(module, base) or getattr(timm_class, method) is function or not applies(timm_class):
            continue
        key = (timm_class, method, function)
        if key not in _SUBCLASSES:
            _SUBCLASSES[key] = type(f"Upstream{timm_class.__name__}", (timm_class,), {
                method: function, "__module__": function.__module__,
                "__doc__": f"timm's {timm_class.__name__} {why} ({function.__module__})."})
        module.__class__ = _SUBCLASSES[key]
        count += 1
    return count
