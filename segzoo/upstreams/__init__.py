"""Upstreams: the model zoos segzoo converts trained checkpoints from, each a plug-in (``segzoo.upstreams`` entry
points; segzoo's own torchvision, reference and mmseg upstreams are declared exactly as a third party's would
be). See ``base.UpstreamPlugin`` for what an upstream holds."""
from __future__ import annotations

import warnings
from typing import Optional

from ..errors import UnknownModelError
from ..registry import get_head, get_upstream_info, list_upstream_infos, registry_generation
from ..upstream import Upstream, find_upstream
from .base import Host, UpstreamPlugin, ZooDataset

__all__ = ["UpstreamPlugin", "Host", "ZooDataset", "get_upstream", "list_upstreams", "head_form", "head_forms",
           "zoo_datasets", "convert_sources"]

_instances: dict[str, UpstreamPlugin] = {}
_generation = -1


def get_upstream(name: str) -> UpstreamPlugin:
    """The upstream plug-in registered under ``name`` (``UnknownModelError`` with the known ones otherwise)."""
    global _generation
    if _generation != registry_generation():  # plug-ins were refreshed: forget the old instances
        _instances.clear()
        _generation = registry_generation()
    if name not in _instances:
        _instances[name] = get_upstream_info(name).plugin_class()
    return _instances[name]


def list_upstreams() -> list[UpstreamPlugin]:
    """Every upstream that loaded, sorted by name."""
    return [get_upstream(info.name) for info in list_upstream_infos()]


def head_forms(head: str, source: str) -> tuple[Upstream, ...]:
    """The forms of registered head ``head`` in ``source``'s checkpoints: the head's own, then those the upstream
    plug-in declares for it (``UpstreamPlugin.head_forms``)."""
    own = tuple(form for form in getattr(get_head(head), "upstreams", ()) if form.source == source)
    return own + tuple(get_upstream(source).head_forms.get(head, ()))


def head_form(head: str, source: str, variant: str) -> Upstream:
    """The form ``source/variant`` of registered head ``head`` (``LookupError`` if there is none)."""
    form = next((form for form in head_forms(head, source) if form.variant == variant), None)
    return form if form is not None else find_upstream(get_head(head), source, variant)  # raises, naming the known


def zoo_datasets() -> dict[str, ZooDataset]:
    """Every upstream's datasets by key, in the upstreams' ``order``; on a key declared twice the first keeps it."""
    found: dict[str, ZooDataset] = {}
    owners: dict[str, str] = {}
    for upstream in sorted(list_upstreams(), key=lambda upstream: (upstream.order, upstream.name)):
        for key, dataset in upstream.datasets().items():
            if key in found:
                warnings.warn(f"zoo dataset {key!r} of upstream {upstream.name!r} is already declared by "
                              f"{owners[key]!r}; keeping the first", stacklevel=2)
                continue
            found[key], owners[key] = dataset, upstream.name
    return found


def convert_sources() -> dict[str, str]:
    """What ``segzoo convert --from`` takes: every upstream's name and aliases -> the upstream's name."""
    sources: dict[str, str] = {}
    for upstream in list_upstreams():
        for name in (upstream.name, *upstream.aliases):
            sources.setdefault(name, upstream.name)
    return sources


def upstream_of(name: str) -> Optional[UpstreamPlugin]:
    """The upstream plug-in ``name`` when it is installed, else None."""
    try:
        return get_upstream(name)
    except UnknownModelError:
        return None
