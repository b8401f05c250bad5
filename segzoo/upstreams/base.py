"""What an upstream is: the base class of every upstream plug-in (``segzoo.upstreams`` entry points).

An upstream is a zoo segzoo converts trained checkpoints from (torchvision, the reference zoo, mmsegmentation, a
company's own training runs). One class holds all it knows, in one place:

- ``hosts``: where its files are, each with the environment variable that sets a mirror;
- ``transfer`` and ``verify``: how a file is downloaded (HTTP by default) and checked (a sha256 or its prefix);
- its checkpoint layout: ``detect``, ``infer_backbone``, ``rules``, ``dropped``, ``prepare`` (``prepare_for``),
  ``config_for``
  (where the backbone, neck and aux head sit; the heads' own keys come from their ``Upstream`` forms);
- ``datasets()``: the datasets it trained on (classes, palette, evaluation recipe), one ``ZooDataset`` each;
- ``catalogue(head, head_class)`` (entries of its catalogue a head opts into with ``FromCatalogue``) and
  ``entries()`` (entries it declares itself, of any registered head);
- ``license``, ``terms`` and ``base_model(spec)``: what its weights' model cards say.

segzoo's own upstreams are declared in its pyproject.toml exactly as a third-party package declares one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

from ..config import ModelConfig
from ..errors import CheckpointError
from ..upstream import KeyRule, PretrainedSpec, Upstream, UpstreamFile
from .http import http_download

__all__ = ["UpstreamPlugin", "Host", "ZooDataset"]


@dataclass(frozen=True)
class ZooDataset:
    """A dataset an upstream trained on.

    Attributes:
        key: Short name used in zoo names and entries (``"voc"``, ``"mmseg_cityscapes"``).
        eval_split: The split the reported accuracy is measured on (``"Pascal VOC 2012 val"``).
        input_size: The (height, width) the models are evaluated at.
        class_names: Class names in label order.
        palette: Its colour palette (a function: built on first use).
        hub_id: Its dataset id on the Hugging Face Hub (model cards' metadata).
        recipe: The upstream's training recipe on it (model cards).
        test_resize: The upstream's test-time resize, ``(long, short)`` bounds with the aspect ratio kept, when
            it has one (mmseg's test pipelines).
    """

    key: str
    eval_split: str
    input_size: tuple[int, int]
    class_names: tuple[str, ...]
    palette: Callable[[], np.ndarray]
    hub_id: str
    recipe: str
    test_resize: Optional[tuple[int, int]] = None


@dataclass(frozen=True)
class Host:
    """Where an upstream keeps its files.

    Attributes:
        env: The environment variable that sets another base URL (a mirror), read at call time.
        default: The upstream's own base URL; None where files are not plain HTTP (Google Drive).
    """

    env: str
    default: Optional[str]


class UpstreamPlugin:
    """Base class of an upstream plug-in; subclass it and declare the subclass in the ``segzoo.upstreams``
    entry-point group under its ``name``. Every method has a default but the layout's ``rules``.

    Attributes:
        name: The upstream's name: ``PretrainedSpec.upstream`` and ``Upstream.source`` refer to it.
        aliases: Other names ``segzoo convert --from`` takes for it (``"encoding"`` for the reference layout's
            PyTorch-Encoding variant).
        hosts: ``UpstreamFile.host`` -> ``Host``.
        license: Its weights' licence, a Hub licence id; ``terms``: the licence and training data's terms, in words.
        head_forms: Forms of registered heads that only this upstream knows (a company's own checkpoint layout of
            segzoo's FCN): head name -> ``Upstream`` forms. A head's own forms are declared by the head.
        order: Where its datasets come in ``segzoo.zoo.DATASETS`` (lower first): a model with 150 unnamed classes
            gets the palette of the first dataset with 150 classes (segzoo's own ADE20K palette, the reference's).
    """

    name: str = ""
    aliases: tuple[str, ...] = ()
    hosts: Mapping[str, Host] = {}
    license: str = "unknown"
    terms: str = ""
    head_forms: Mapping[str, tuple[Upstream, ...]] = {}
    order: int = 100

    # --- downloads -------------------------------------------------------------------------------------------
    def file_url(self, file: UpstreamFile) -> Optional[str]:
        """The URL ``file`` is downloaded from now (a mirror set in the environment wins); None where the host
        is not plain HTTP and no mirror is set."""
        if file.host not in self.hosts:
            raise CheckpointError(f"upstream {self.name!r} has no host {file.host!r} (its hosts: "
                                  f"{', '.join(self.hosts) or 'none'})")
        host = self.hosts[file.host]
        base = os.environ.get(host.env) or host.default
        return None if base is None else base.rstrip("/") + "/" + file.path

    def describe(self, file: UpstreamFile) -> str:
        """Where ``file`` comes from, in words (errors, ``source.json``, ``segzoo info``)."""
        return self.file_url(file) or f"{file.host} file {file.path}"

    def transfer(self, file: UpstreamFile, target: Path, *, name: str, progress: bool) -> str:
        """Download ``file`` into ``target`` (a temporary file the caller renames into place) and return its
        sha256. The default streams it over HTTP(S) from ``file_url``."""
        url = self.file_url(file)
        if url is None:
            raise CheckpointError(f"{name}: upstream {self.name!r} does not say how to download {file.path}")
        return http_download(url, target, name, progress, elsewhere=self.offline_help(file, name))

    def offline_help(self, file: UpstreamFile, name: str) -> str:
        """How to get ``file`` (the weights of zoo entry ``name``) where its host cannot be reached: download it
        elsewhere and convert it, or point the host's variable at a mirror."""
        host = self.hosts.get(file.host)
        mirror = f" (or set {host.env} to a mirror that serves {file.path})" if host is not None else ""
        return (f"download it on a machine that can reach it, run `segzoo convert --from {self.name} --model {name} "
                f"FILE DIR` and load local-dir:DIR{mirror}")

    def verify(self, file: UpstreamFile, sha256: str, *, name: str) -> None:
        """The integrity rule: the downloaded file's sha256 is the published one, or starts with the published
        prefix (as ``torch.hub`` checks file names' hashes); nothing is checked where none is published."""
        if file.sha256 and not sha256.startswith(file.sha256):
            raise CheckpointError(f"{name}: the downloaded {file.path} has sha256 {sha256}, not the published "
                                  f"{file.sha256}: it is corrupt or another file; nothing was kept")

    # --- the checkpoint layout -----------------------------------------------------------------------------
    def detect(self, keys: Iterable[str]) -> str:
        """The layout variant of a checkpoint with these keys (``CheckpointError`` if it is none of this
        upstream's); the default has one variant, the upstream's name."""
        return self.name

    def infer_backbone(self, keys: Iterable[str], variant: str) -> str:
        """The timm backbone of a checkpoint, for conversions without a zoo name."""
        raise CheckpointError(f"upstream {self.name!r} cannot tell the backbone from the keys; pass backbone=")

    def rules(self, form: Upstream, config: ModelConfig, variant: str) -> tuple[KeyRule, ...]:
        """Every key rule of a checkpoint of this head form and config: backbone, neck, aux head and the form's."""
        raise NotImplementedError

    def dropped(self, variant: str) -> tuple[str, ...]:
        """Checkpoint modules deliberately left out (an ImageNet classifier)."""
        return ()

    def unused(self, config: ModelConfig, variant: str) -> tuple[str, ...]:
        """Checkpoint modules the model of ``config`` does not compute (a ViT's blocks after its last feature
        level, which timm's feature extractor prunes): left out like ``dropped`` ones."""
        return ()

    def prepare(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """Value-preserving fixes of how the upstream stores tensors, applied before the keys are placed."""
        return dict(state_dict)

    def prepare_for(self, state_dict: Mapping[str, Any], config: ModelConfig, variant: str) -> dict[str, Any]:
        """``prepare``, and the value-preserving fixes that depend on the model the checkpoint is converted to
        (mmseg's SETR-MLA ViT runs without its class token: the token and its position are left out). The default
        is ``prepare``."""
        return self.prepare(state_dict)

    def recognises_config(self, config: Mapping[str, Any]) -> bool:
        """Whether a Hub repo whose ``config.json`` holds ``config`` (not a segzoo config) is in this upstream's
        layout, so that ``hf-hub:`` names of such repos are read through ``read_directory`` and converted."""
        return False

    def hub_repo(self, file: UpstreamFile) -> Optional[str]:
        """The Hub repo (``org/name``) ``file`` is in, where this upstream's files are Hub repos' files: an
        ``hf-hub:`` name of that repo then means the zoo entry."""
        return None

    def read_directory(self, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """A checkpoint that is a directory (transformers' ``save_pretrained`` output): its state dict and the
        config fields its files tell besides the keys (``class_names``). Upstreams whose checkpoints are single
        files refuse directories."""
        raise CheckpointError(f"{path} is a directory; upstream {self.name!r} checkpoints are single files")

    def config_for(self, head: str, form: Upstream, backbone: str, num_classes: int, keys: Iterable[str],
                   variant: str) -> ModelConfig:
        """The config of a checkpoint converted without its zoo name: the upstream's usual recipe."""
        return ModelConfig(head=head, backbone=backbone, num_classes=num_classes, head_kwargs=dict(form.options))

    # --- the zoo --------------------------------------------------------------------------------------------
    def datasets(self) -> Mapping[str, ZooDataset]:
        """The datasets its entries were trained on, by key."""
        return {}

    def catalogue(self, head: str, head_class: type) -> tuple[PretrainedSpec, ...]:
        """The entries of its catalogue built by ``head_class``'s forms, named after ``head`` (for heads that
        declare ``FromCatalogue(<this upstream>)``)."""
        return ()

    def entries(self) -> tuple[PretrainedSpec, ...]:
        """Entries it declares itself, each naming its ``head``."""
        return ()

    def base_model(self, spec: PretrainedSpec) -> Optional[str]:
        """The Hub id of the weights an entry's training started from (its ImageNet backbone), if known."""
        return None

