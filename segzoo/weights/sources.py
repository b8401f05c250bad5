"""Where a model's weights come from: a local ``save_pretrained`` directory, a Hub repo, or an upstream's own
checkpoint file (downloaded once, converted, cached as safetensors).

A source can read the model's config alone (cheap: ``segzoo info``), say whether its weights are already on this
machine, and fetch the config and weights (checked). ``resolver.resolve_model_name`` turns names into sources;
``fetch`` (what ``create_model`` calls) fetches from the first that has the weights. Downloading lives here and
below (``hub``, ``download``); the resolver only resolves.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from ..config import ModelConfig
from ..distributed import rank0_first
from ..errors import CheckpointError, WeightsUnavailableError
from ..registry import check_plugins_installed
from ..upstream import UpstreamFile
from ..upstreams import get_upstream
from ..zoo import PretrainedEntry
from . import cache
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_pretrained, read_weights
from .convert import convert_entry, convert_upstream, load_source_state_dict
from .download import download
from .hub import cached_weights_path, download_config_file, download_model_files, offline, upstream_of_config

__all__ = ["HubOptions", "LocalDirSource", "HubSource", "UpstreamSource", "WeightsSource", "first_available",
           "fetch"]


@dataclass(frozen=True)
class HubOptions:
    """How to reach the Hub (``create_model``'s keyword arguments of the same names)."""

    cache_dir: Optional[str] = None
    token: Optional[str] = None
    revision: Optional[str] = None  # overrides the source's own revision
    endpoint: Optional[str] = None
    local_files_only: bool = False


def _plugins_checked(config: ModelConfig) -> ModelConfig:
    """The config of a model made elsewhere, once its head is known to be installed (else the error says which
    package to install)."""
    check_plugins_installed(config.head, config.provenance)
    return config


class _Source:
    """What every source offers besides its own ``local_dir`` (the files, fetched) and ``read_config``."""

    def read(self, directory: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
        """The config and the weights from ``directory``, as ``local_dir`` gave it (every key is checked when
        loaded into a model)."""
        return load_pretrained(directory)

    def fetch(self, options: HubOptions = HubOptions()) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
        """The config and the weights, fetched first where they are not on this machine."""
        return self.read(self.local_dir(options))


@dataclass(frozen=True)
class LocalDirSource(_Source):
    """A directory written by ``save_pretrained`` (``config.json`` + ``model.safetensors``)."""

    path: Path

    description = "local directory"

    def _check(self) -> Path:
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"local-dir:{self.path} is a file, not a directory: local-dir: takes a directory "
                                  f"written by save_pretrained ({CONFIG_NAME} + {WEIGHTS_NAME})")
        if not self.path.is_dir():
            raise CheckpointError(f"checkpoint directory not found: {self.path}")
        return self.path

    def read_config(self, options: HubOptions = HubOptions()) -> ModelConfig:
        return _plugins_checked(ModelConfig.load(self._check() / CONFIG_NAME))

    def local_dir(self, options: HubOptions = HubOptions()) -> Path:
        """The directory itself."""
        return self._check()

    def weights_path(self) -> str:
        return str(self.path / WEIGHTS_NAME)


@dataclass(frozen=True)
class HubSource(_Source):
    """A segzoo repo on the Hub (or a server speaking its protocol), at a revision, optionally with the
    published sha256 of its weights."""

    repo_id: str
    revision: Optional[str] = None
    sha256: Optional[str] = None

    description = "Hugging Face Hub"

    def _revision(self, options: HubOptions) -> Optional[str]:
        return options.revision or self.revision

    def read_config(self, options: HubOptions = HubOptions()) -> ModelConfig:
        """Download only ``config.json`` (an upstream's repo: the weights too, which its config is read from)."""
        path = download_config_file(self.repo_id, self._revision(options), cache_dir=options.cache_dir,
                                    token=options.token, endpoint=options.endpoint,
                                    local_files_only=options.local_files_only)
        if upstream_of_config(path) is not None:
            return self.fetch(options)[0]
        return _plugins_checked(ModelConfig.load(path))

    def read(self, directory: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
        """A segzoo repo's config and weights; an upstream's repo (transformers' UPerNet) converted, once: the
        converted weights and config are cached per repo and commit (``segzoo.weights.cache``)."""
        upstream = upstream_of_config(directory / CONFIG_NAME)
        if upstream is None:
            return load_pretrained(directory)
        name = f"hf-hub--{self.repo_id.replace('/', '--')}"
        file = UpstreamFile("hub", f"{self.repo_id}/resolve/{directory.name}/{WEIGHTS_NAME}")  # the snapshot's commit
        cached = cache.valid_entry(name, file)
        if cached is not None:
            record = cache.read_record(cached) or {}
            return ModelConfig.from_dict(record["config"]), read_weights(cached / WEIGHTS_NAME)
        state, told = get_upstream(upstream).read_directory(directory)
        _, converted, report = convert_upstream(state, upstream, class_names=told.get("class_names"), told=told)
        config = report.config
        cache.write_entry(name, converted, {"file": file.path, "hub_repo": self.repo_id, "upstream": upstream,
                                            "config": config.to_dict()})
        return config, converted

    def local_dir(self, options: HubOptions = HubOptions()) -> Path:
        """Download (or find in the Hub cache) and check both files; return their snapshot directory."""
        return download_model_files(self.repo_id, self._revision(options), cache_dir=options.cache_dir,
                                    token=options.token, endpoint=options.endpoint,
                                    local_files_only=options.local_files_only, expected_sha256=self.sha256)

    def cached_path(self, options: HubOptions = HubOptions()) -> Optional[str]:
        """Where the Hub cache already holds the weights, or None (nothing is downloaded)."""
        return cached_weights_path(self.repo_id, self._revision(options), options.cache_dir)


@dataclass(frozen=True)
class UpstreamSource(_Source):
    """A zoo entry's checkpoint where its upstream publishes it (torchvision's server, Google Drive, ...).

    The first fetch downloads the file (checked by its upstream's integrity rule), reads it with
    ``torch.load(weights_only=True)``, converts it with the head's key rules (no model is built) and caches the
    tensors as safetensors (``segzoo.weights.cache``); later fetches read only the cached safetensors, whose own
    sha256 is checked. The config is always the zoo entry's, never a cached copy. Offline (``HF_HUB_OFFLINE=1`` or
    ``local_files_only=True``) nothing is downloaded. Under DDP rank 0 downloads and converts, the other ranks wait
    and read the cache.
    """

    entry: PretrainedEntry

    description = "upstream"

    def read_config(self, options: HubOptions = HubOptions()) -> ModelConfig:
        return self.entry.config

    def url(self) -> str:
        """Where the file is downloaded from (a mirror when one is set), in words for a non-HTTP host."""
        return get_upstream(self.entry.upstream).describe(self.entry.file)

    def cached_path(self, options: HubOptions = HubOptions()) -> Optional[str]:
        """The cached, converted weights when they are complete and intact, else None (nothing is downloaded)."""
        directory = cache.valid_entry(self.entry.name, self.entry.file, self.entry.backbone_file)
        return str(directory / WEIGHTS_NAME) if directory is not None else None

    def local_dir(self, options: HubOptions = HubOptions()) -> Path:
        """segzoo's cache entry (``model.safetensors`` + ``source.json``), downloaded and converted first when the
        cache has no intact copy of the entry's file."""
        name = self.entry.name

        def build() -> Path:
            directory = cache.valid_entry(name, self.entry.file, self.entry.backbone_file)
            if directory is not None:
                return directory
            if options.local_files_only or offline():
                raise WeightsUnavailableError(
                    f"{name} is not in segzoo's cache ({cache.entry_dir(name)}) and downloads are off "
                    f"(HF_HUB_OFFLINE=1 or local_files_only=True); run once online to fetch {self.url()}")
            return self._download_and_convert()

        return rank0_first(build)

    def read(self, directory: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
        """The zoo entry's config and the cached converted weights."""
        return self.entry.config, read_weights(directory / WEIGHTS_NAME)

    def _download_and_convert(self) -> Path:
        entry = self.entry
        staging = cache.cache_dir() / "downloads"
        upstream = get_upstream(entry.upstream)
        target = staging / f"{entry.name}.{Path(entry.file.path).name}"
        backbone_target = (staging / f"{entry.name}.backbone.{Path(entry.backbone_file.path).name}"
                           if entry.backbone_file is not None else None)
        try:
            sha256 = download(upstream, entry.file, target, name=entry.name)
            record = {"zoo_name": entry.name, "upstream": entry.upstream, "file": entry.file.path, "url": self.url(),
                      "upstream_sha256": sha256}
            backbone = None
            if backbone_target is not None:  # the backbone's weights, published apart from the head's (DINOv2)
                record["backbone_sha256"] = download(upstream, entry.backbone_file, backbone_target, name=entry.name)
                record.update(backbone_file=entry.backbone_file.path,
                              backbone_url=upstream.describe(entry.backbone_file))
                backbone = load_source_state_dict(backbone_target)
            _, converted = convert_entry(load_source_state_dict(target), entry, backbone=backbone)
            return cache.write_entry(entry.name, converted, record)
        finally:  # only the converted safetensors copy is kept
            target.unlink(missing_ok=True)
            if backbone_target is not None:
                backbone_target.unlink(missing_ok=True)


WeightsSource = Union[LocalDirSource, HubSource, UpstreamSource]


def first_available(sources: tuple[WeightsSource, ...], options: HubOptions, name: str
                    ) -> tuple[WeightsSource, Path]:
    """The first source that can provide the weights, and their local directory (fetched). A source that
    cannot be reached or has no copy makes way for the next; a corrupt file is an error at once."""
    failures = []
    for source in sources:
        try:
            return source, source.local_dir(options)
        except WeightsUnavailableError as err:
            failures.append((source.description, str(err)))
    if len(failures) == 1:
        raise WeightsUnavailableError(failures[0][1])
    raise WeightsUnavailableError(f"no source of {name!r} could provide its weights: "
                                  + "; ".join(f"{where}: {why}" for where, why in failures))


def fetch(sources: tuple[WeightsSource, ...], options: HubOptions, name: str, missing: str
          ) -> tuple[WeightsSource, ModelConfig, dict[str, torch.Tensor]]:
    """The config and weights of a name from the first of its ``sources`` that has them (fetched and checked);
    ``WeightsUnavailableError(missing)`` when it has no source at all."""
    if not sources:
        raise WeightsUnavailableError(missing)
    source, directory = first_available(sources, options, name)
    config, state = source.read(directory)
    check_plugins_installed(config.head, config.provenance)  # a model made elsewhere: is its head installed here?
    return source, config, state
