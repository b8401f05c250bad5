"""Plug-in discovery: heads through the ``segzoo.heads`` entry-point group, necks through ``segzoo.necks``,
upstreams (the zoos checkpoints are converted from) through ``segzoo.upstreams``.

segzoo's own heads, necks and upstreams are declared in segzoo's pyproject.toml exactly as a third-party plug-in would
declare them. Discovery runs on first use and is cached (``refresh_heads()`` forgets it). Each plug-in is
imported in isolation: one that fails gives a warning and is remembered with its error, which is raised (as
the cause of a ``HeadPluginError``) only when that plug-in is asked for. On a name clash segzoo's own plug-in
wins, with a warning. ``SEGZOO_DISABLE_PLUGINS=1`` skips every distribution but segzoo.

A head may declare other spellings of its name (``aliases = ("psp",)``): ``split_head_prefix`` maps a model
name's head part to the registered name. That is the one alias scheme, for every kind of model name: always
from a spelling to the registered head name (``psp_resnet101_voc`` is ``pspnet_resnet101_voc``).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Optional

from .errors import HeadPluginError, UnknownModelError, did_you_mean

__all__ = [
    "ENTRY_POINT_GROUP", "NECK_ENTRY_POINT_GROUP", "UPSTREAM_ENTRY_POINT_GROUP", "PluginInfo",
    "get_head", "get_head_info", "list_heads", "head_spellings", "split_head_prefix",
    "get_neck", "get_neck_info", "list_necks", "neck_output_stride", "refresh_heads", "registry_generation",
    "registry_fingerprint",
    "check_plugins_installed", "get_upstream_info", "list_upstream_infos",
]

ENTRY_POINT_GROUP = "segzoo.heads"
NECK_ENTRY_POINT_GROUP = "segzoo.necks"
UPSTREAM_ENTRY_POINT_GROUP = "segzoo.upstreams"
_KINDS = {ENTRY_POINT_GROUP: "head", NECK_ENTRY_POINT_GROUP: "neck", UPSTREAM_ENTRY_POINT_GROUP: "upstream"}
_SEGZOO_DISTRIBUTION = "segzoo"
_discovered: dict[str, dict[str, "PluginInfo"]] = {}  # entry-point group -> name -> plug-in
_generation = 0  # counts refreshes, so that tables built from the plug-ins (the zoo) know when to rebuild


@dataclass(frozen=True)
class PluginInfo:
    """A discovered plug-in (head or neck): its class (or the error that stopped its import) and who provides it."""

    name: str
    entry_point: str            # "module:attr"
    distribution: str
    version: str
    plugin_class: Optional[type] = None  # the class the entry point names: a head, a neck or an upstream
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
    if dist is None:
        return "<unknown>", "<unknown>"
    # Reading METADATA means parsing an e-mail message each time: the bulk of discovery's cost, done once per
    # distribution (the cache is cleared with the registry, so a reinstalled package is read again).
    key = str(getattr(dist, "_path", id(dist)))
    if key not in _metadata_cache:
        fields = dist.metadata
        _metadata_cache[key] = (fields["Name"], fields["Version"])
    return _metadata_cache[key]


_metadata_cache: dict[str, tuple[str, str]] = {}  # a distribution's path -> (name, version)


def _is_builtin(entry_point: metadata.EntryPoint) -> bool:
    return _normalise(_distribution(entry_point)[0]) == _SEGZOO_DISTRIBUTION


def _load_class(entry_point: metadata.EntryPoint, kind: str) -> type:
    """The class an entry point names; ``TypeError`` unless it subclasses the plug-in kind's base class."""
    # the base class by its qualified name: the registry sits below the heads and necks and must not import them
    base = {"head": "segzoo.heads.base.SegmentationHead", "neck": "segzoo.necks.base.SegmentationNeck",
            "upstream": "segzoo.upstreams.base.UpstreamPlugin"}[kind]
    plugin_class = entry_point.load()
    if not (isinstance(plugin_class, type)
            and any(f"{cls.__module__}.{cls.__qualname__}" == base for cls in plugin_class.__mro__)):
        what = f"the class {plugin_class.__name__}" if isinstance(plugin_class, type) else repr(plugin_class)
        raise TypeError(f"{entry_point.value} is {what}, not a subclass of {base.rsplit('.base', 1)[0]}."
                        f"{base.rsplit('.', 1)[1]}")
    return plugin_class


def _load(entry_point: metadata.EntryPoint, kind: str) -> PluginInfo:
    distribution, version = _distribution(entry_point)
    try:
        plugin_class = _load_class(entry_point, kind)
    except Exception as err:  # any failure of a plug-in's import must not break the others
        warnings.warn(f"segzoo {kind} plug-in {entry_point.name!r} from {distribution} {version} "
                      f"({entry_point.value}) failed to load: {type(err).__name__}: {err}", stacklevel=4)
        return PluginInfo(entry_point.name, entry_point.value, distribution, version, error=err)
    return PluginInfo(entry_point.name, entry_point.value, distribution, version, plugin_class=plugin_class)


def _discover(group: str, kind: str) -> dict[str, PluginInfo]:
    disabled = _plugins_disabled()
    found: dict[str, PluginInfo] = {}
    seen: set[tuple[str, str]] = set()
    entry_points = sorted(metadata.entry_points(group=group), key=lambda ep: (not _is_builtin(ep), ep.name))
    for entry_point in entry_points:  # built-ins first, so they hold their names before any plug-in
        key = (entry_point.name, entry_point.value)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        if disabled and not _is_builtin(entry_point):
            continue
        if entry_point.name in found:
            owner = found[entry_point.name]
            warnings.warn(f"segzoo {kind} {entry_point.name!r} is declared by {owner.distribution} and by "
                          f"{_distribution(entry_point)[0]} ({entry_point.value}); "
                          f"using the one from {owner.distribution}", stacklevel=3)
            continue
        found[entry_point.name] = _load(entry_point, kind)
    return found


def _registry(group: str = ENTRY_POINT_GROUP) -> dict[str, PluginInfo]:
    if group not in _discovered:
        _discovered[group] = _discover(group, _KINDS[group])
    return _discovered[group]


def refresh_heads() -> None:
    """Forget discovered plug-ins (heads, necks and upstreams); the next lookup reads the entry points again (after a
    ``pip install``)."""
    global _generation
    _discovered.clear()
    _metadata_cache.clear()
    _generation += 1


def registry_generation() -> int:
    """A number that changes whenever the discovered plug-ins are forgotten (``refresh_heads``)."""
    return _generation


def registry_fingerprint() -> tuple:
    """What the discovered plug-ins are, as a value that compares equal while they stay the same: each head's,
    neck's and upstream's entry point, distribution and class with its attributes (a class re-imported, or an
    attribute replaced, changes it). What is built from the plug-ins alone (the zoo table) is kept across
    ``refresh_heads`` while this is equal; discovering the entry points again costs about 3 ms, the table 60."""
    return tuple(
        (group, name, info.entry_point, info.distribution, info.version, info.plugin_class,
         tuple(vars(info.plugin_class).items()) if info.plugin_class is not None else repr(info.error))
        for group in (ENTRY_POINT_GROUP, NECK_ENTRY_POINT_GROUP, UPSTREAM_ENTRY_POINT_GROUP)
        for name, info in sorted(_registry(group).items()))


def _get(group: str, kind: str, name: str) -> PluginInfo:
    if not isinstance(name, str):
        raise UnknownModelError(f"a {kind} name must be a string, got {name!r}")
    plugins = _registry(group)
    if name not in plugins:
        if not plugins:
            raise UnknownModelError(f"Unknown {kind} {name!r}: no {kind}s are registered at all. segzoo's "
                                    f"{kind}s are declared as entry points; install the package (pip install -e .) "
                                    f"first.")
        raise UnknownModelError(f"Unknown {kind} {name!r}. Known {kind}s: {', '.join(sorted(plugins))}."
                                f"{did_you_mean(name, plugins)}")
    info = plugins[name]
    if info.error is not None:
        raise HeadPluginError(f"{kind.capitalize()} {name!r} comes from the plug-in {info.distribution} "
                              f"{info.version} ({info.entry_point}), which failed to load: "
                              f"{type(info.error).__name__}: {info.error}") from info.error
    return info


def list_heads(include_failed: bool = False) -> list[PluginInfo]:
    """Heads that can be used, sorted by name (plus those that failed to load with ``include_failed``)."""
    return [info for name, info in sorted(_registry().items()) if info.ok or include_failed]


def get_head_info(name: str) -> PluginInfo:
    """The ``PluginInfo`` of a head, raising a clear error for unknown or broken heads."""
    return _get(ENTRY_POINT_GROUP, "head", name)


def get_head(name: str) -> type:
    """The head class registered under ``name``."""
    return get_head_info(name).plugin_class


def head_spellings(include_failed: bool = False) -> dict[str, str]:
    """Every spelling of a head name (registered names and the aliases their classes declare) -> head name.

    An alias never takes the place of a registered name, and the first head (by name) to declare an alias
    keeps it, with a warning for the others.
    """
    heads = list_heads(include_failed=include_failed)
    spellings = {info.name: info.name for info in heads}
    for info in heads:
        for alias in getattr(info.plugin_class, "aliases", ()) if info.ok else ():
            if spellings.setdefault(alias, info.name) != info.name:
                warnings.warn(f"head alias {alias!r} of {info.name!r} is already taken by "
                              f"{spellings[alias]!r}; ignored", stacklevel=2)
    return spellings


def split_head_prefix(name: str) -> Optional[tuple[str, str]]:
    """Split a model name at its head: ``"psp_resnet101_voc"`` -> ``("pspnet", "resnet101_voc")``.

    The longest head spelling (a registered name or an alias) followed by ``_`` and something more wins, so
    head names may contain underscores. Heads whose plug-in failed to load still split, so that using one
    raises the plug-in's error. None when no head spelling starts the name.
    """
    spellings = head_spellings(include_failed=True)
    for spelling in sorted(spellings, key=len, reverse=True):
        if name.startswith(spelling + "_") and len(name) > len(spelling) + 1:
            return spellings[spelling], name[len(spelling) + 1:]
    return None


def list_necks(include_failed: bool = False) -> list[PluginInfo]:
    """Necks that can be used, sorted by name (plus those that failed to load with ``include_failed``)."""
    return [info for name, info in sorted(_registry(NECK_ENTRY_POINT_GROUP).items()) if info.ok or include_failed]


def get_neck_info(name: str) -> PluginInfo:
    """The ``PluginInfo`` of a neck, raising a clear error for unknown or broken necks."""
    return _get(NECK_ENTRY_POINT_GROUP, "neck", name)


def get_neck(name: str) -> type:
    """The neck class registered under ``name``."""
    return get_neck_info(name).plugin_class


def neck_output_stride(name: str) -> Optional[int]:
    """The backbone output stride neck ``name`` is built for (JPU: 32), or None when it takes any."""
    return getattr(get_neck(name), "output_stride", None)


def list_upstream_infos(include_failed: bool = False) -> list[PluginInfo]:
    """Upstream plug-ins that can be used, sorted by name (plus those that failed with ``include_failed``)."""
    return [info for name, info in sorted(_registry(UPSTREAM_ENTRY_POINT_GROUP).items())
            if info.ok or include_failed]


def get_upstream_info(name: str) -> PluginInfo:
    """The ``PluginInfo`` of an upstream plug-in, raising a clear error for unknown or broken ones."""
    return _get(UPSTREAM_ENTRY_POINT_GROUP, "upstream", name)


def check_plugins_installed(head: str, provenance: dict) -> None:
    """For a model made elsewhere (pulled from the Hub, a local directory): if its head is not registered here
    but came from a plug-in package, raise ``UnknownModelError`` saying which package to install."""
    if head in _registry(ENTRY_POINT_GROUP):
        return
    distribution = provenance.get("head_distribution")
    if distribution and _normalise(distribution) != _SEGZOO_DISTRIBUTION:
        version = provenance.get("head_version")
        pin = f"=={version}" if version else ""
        raise UnknownModelError(f"This model's head {head!r} comes from the plug-in package "
                                f"{distribution} {version or ''}, which is not installed: pip install "
                                f"'{distribution}{pin}'")
