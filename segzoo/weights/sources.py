"""Where a model's weights come from: a local ``save_pretrained`` directory or a Hub repo.

A source can read the model's config alone (cheap: ``segzoo info``) and fetch the files (config + weights, checked)
into a local directory. ``resolver.resolve_model_name`` turns names into sources; ``create_model`` fetches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from ..config import ModelConfig
from ..errors import CheckpointError
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_pretrained
from .hub import cached_weights_path, download_config, download_model_files

__all__ = ["HubOptions", "LocalDirSource", "HubSource", "WeightsSource"]


@dataclass(frozen=True)
class HubOptions:
    """How to reach the Hub (``create_model``'s keyword arguments of the same names)."""

    cache_dir: Optional[str] = None
    token: Optional[str] = None
    revision: Optional[str] = None  # overrides the source's own revision
    endpoint: Optional[str] = None
    local_files_only: bool = False


@dataclass(frozen=True)
class LocalDirSource:
    """A directory written by ``save_pretrained`` (``config.json`` + ``model.safetensors``)."""

    path: Path

    description = "local directory"

    def _check(self) -> Path:
        if not self.path.is_dir():
            raise CheckpointError(f"checkpoint directory not found: {self.path}")
        return self.path

    def read_config(self, options: HubOptions = HubOptions()) -> ModelConfig:
        return ModelConfig.load(self._check() / CONFIG_NAME)

    def fetch(self, options: HubOptions = HubOptions()) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
        """The config and the weights (every key checked when loaded into a model)."""
        return load_pretrained(self._check())

    def weights_path(self) -> str:
        return str(self.path / WEIGHTS_NAME)


@dataclass(frozen=True)
class HubSource:
    """A segzoo repo on the Hub (or a server speaking its protocol), at a revision, optionally with the
    published sha256 of its weights."""

    repo_id: str
    revision: Optional[str] = None
    sha256: Optional[str] = None

    description = "Hugging Face Hub"

    def _revision(self, options: HubOptions) -> Optional[str]:
        return options.revision or self.revision

    def read_config(self, options: HubOptions = HubOptions()) -> ModelConfig:
        """Download only ``config.json``."""
        return download_config(self.repo_id, self._revision(options), cache_dir=options.cache_dir,
                               token=options.token, endpoint=options.endpoint,
                               local_files_only=options.local_files_only)

    def fetch(self, options: HubOptions = HubOptions()) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
        """Download (or find in the cache) and check both files; return the config and the weights."""
        directory = download_model_files(self.repo_id, self._revision(options), cache_dir=options.cache_dir,
                                         token=options.token, endpoint=options.endpoint,
                                         local_files_only=options.local_files_only, expected_sha256=self.sha256)
        return load_pretrained(directory)

    def cached_path(self, options: HubOptions = HubOptions()) -> Optional[str]:
        """Where the Hub cache already holds the weights, or None (nothing is downloaded)."""
        return cached_weights_path(self.repo_id, self._revision(options), options.cache_dir)


WeightsSource = Union[LocalDirSource, HubSource]


def local_dir(path: Union[str, os.PathLike]) -> LocalDirSource:
    """A ``LocalDirSource`` for ``path``."""
    return LocalDirSource(Path(path))
