"""Head discovery through the ``segzoo.heads`` entry-point group.

segzoo's own heads are declared in segzoo's pyproject.toml exactly as a third-party head would be.
Discovery runs on first use and is cached (``refresh_heads()`` forgets it). Each plug-in is imported in
isolation: one that fails gives a warning and is remembered with its error, which is raised (as the
cause of a ``HeadPluginError``) only when that head is asked for. On a name clash segzoo's own head
wins, with a warning. ``SEGZOO_DISABLE_PLUGINS=1`` skips every distribution but segzoo.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Optional

from .errors import HeadPluginError, UnknownModelError, did_you_mean

__all__ = ["ENTRY_POINT_GROUP", "HeadInfo", "get_head", "get_head_info", "list_heads", "refresh_heads"]

ENTRY_POINT_GROUP = "segzoo.heads"
_SEGZOO_DISTRIBUTION = "segzoo"
_heads: Optional[dict[str, "HeadInfo"]] = None


@dataclass(frozen=True)
class HeadInfo:
    """A discovered head: its class (or the error that stopped its import) and who provides it."""

    name: str
    entry_point: str            # "module:attr"
    distribution: str
    version: str
    head_class: Optional[type] = None
    error: Optional[BaseException] = None

    @property
    def builtin(self) -> bool:
        return _normalise(self.distribution) == _SEGZOO_DISTRIBUTION

    @property
    def ok(self) -> bool:
        return self.error is None


def _normalise(distribution: str) -> str:
    return distribution.lower().replace("_", "-")


def _plugins_disabled() -> bool:
    return os.environ.get("SEGZOO_DISABLE_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")


def _distribution(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    """(name, version) of the distribution that declares ``entry_point``."""
    dist = entry_point.dist
    return (dist.metadata["Name"], dist.version) if dist is not None else ("<unknown>", "<unknown>")


def _is_builtin(entry_point: metadata.EntryPoint) -> bool:
    return _normalise(_distribution(entry_point)[0]) == _SEGZOO_DISTRIBUTION


def _load(entry_point: metadata.EntryPoint) -> HeadInfo:
    distribution, version = _distribution(entry_point)
    try:
        head_class = entry_point.load()
    except Exception as err:  # any failure of a plug-in's import must not break the others
        warnings.warn(f"segzoo head plug-in {entry_point.name!r} from {distribution} {version} "
                      f"({entry_point.value}) failed to load: {type(err).__name__}: {err}", stacklevel=3)
        return HeadInfo(entry_point.name, entry_point.value, distribution, version, error=err)
    return HeadInfo(entry_point.name, entry_point.value, distribution, version, head_class=head_class)


def _discover() -> dict[str, HeadInfo]:
    disabled = _plugins_disabled()
    found: dict[str, HeadInfo] = {}
    seen: set[tuple[str, str]] = set()
    entry_points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP),
                          key=lambda ep: (not _is_builtin(ep), ep.name))
    for entry_point in entry_points:  # built-ins first, so they hold their names before any plug-in
        key = (entry_point.name, entry_point.value)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        if disabled and not _is_builtin(entry_point):
            continue
        if entry_point.name in found:
            owner = found[entry_point.name]
            warnings.warn(f"segzoo head {entry_point.name!r} is declared by {owner.distribution} and by "
                          f"{_distribution(entry_point)[0]} ({entry_point.value}); "
                          f"using the one from {owner.distribution}", stacklevel=2)
            continue
        found[entry_point.name] = _load(entry_point)
    return found


def _registry() -> dict[str, HeadInfo]:
    global _heads
    if _heads is None:
        _heads = _discover()
    return _heads


def refresh_heads() -> None:
    """Forget discovered heads; the next lookup reads the entry points again (after a ``pip install``)."""
    global _heads
    _heads = None


def list_heads(include_failed: bool = False) -> list[HeadInfo]:
    """Heads that can be used, sorted by name (plus those that failed to load with ``include_failed``)."""
    return [info for name, info in sorted(_registry().items()) if info.ok or include_failed]


def get_head_info(name: str) -> HeadInfo:
    """The ``HeadInfo`` of a head, raising a clear error for unknown or broken heads."""
    heads = _registry()
    if name not in heads:
        if not heads:
            raise UnknownModelError(f"Unknown head {name!r}: no heads are registered at all. segzoo's heads are "
                                    f"declared as entry points; install the package (pip install -e .) first.")
        raise UnknownModelError(f"Unknown head {name!r}. Known heads: {', '.join(sorted(heads))}."
                                f"{did_you_mean(name, heads)}")
    info = heads[name]
    if info.error is not None:
        raise HeadPluginError(f"Head {name!r} comes from the plug-in {info.distribution} {info.version} "
                              f"({info.entry_point}), which failed to load: "
                              f"{type(info.error).__name__}: {info.error}") from info.error
    return info


def get_head(name: str) -> type:
    """The head class registered under ``name``."""
    return get_head_info(name).head_class
