"""Attributes of a package that import their module on first use (PEP 562), so that importing the package stays
cheap: ``import segzoo`` must not pay for tools (the benchmark, the exporter, the optimizer's torch._dynamo)
that a given program never uses."""
from __future__ import annotations

import importlib
from typing import Any, Callable

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps an attribute name to the module (relative to
    the package, ``".tools.benchmark"``) that defines it; each is imported on first access and then cached in
    the package's namespace."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
