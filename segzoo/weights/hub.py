"""Push models to and pull them from the Hugging Face Hub (or any server speaking its protocol).

A segzoo repo holds ``model.safetensors``, ``config.json`` and a ``README.md`` model card. Downloads go
through huggingface_hub's cache; every downloaded file is checked against the hash the Hub reported for
it (the cache names each blob by its ETag: sha256 for LFS files, the git blob sha1 otherwise), so a
truncated or altered file is an error naming it. Nothing is ever unpickled.

``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read when a function is called (huggingface_hub reads them
once at import), so they can be set late, e.g. by a test or a launcher.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

from ..config import ModelConfig
from ..distributed import rank0_first
from ..errors import CheckpointError, WeightsUnavailableError
from ..zoo import find_pretrained_entry
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, save_pretrained
from .model_card import build_model_card

__all__ = ["push_to_hub", "download_model_files", "download_config", "cached_weights_path", "parse_hub_name",
           "copy_model_files", "offline", "CARD_NAME"]

CARD_NAME = "README.md"


def _endpoint(endpoint: Optional[str]) -> Optional[str]:
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def offline() -> bool:
    """Whether HF_HUB_OFFLINE asks for no downloads (read at call time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def parse_hub_name(name: str) -> tuple[str, Optional[str]]:
    """``"org/name@rev"`` -> (``"org/name"``, ``"rev"``); the revision is optional."""
    repo_id, _, revision = name.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise WeightsUnavailableError(f"Hub repo id must be 'namespace/name[@revision]', got {name!r}")
    return repo_id, revision or None


def push_to_hub(model: torch.nn.Module, repo_id: str, *, private: Optional[bool] = None,
                revision: Optional[str] = None, commit_message: Optional[str] = None, token: Optional[str] = None,
                endpoint: Optional[str] = None, card_data: Optional[dict[str, Any]] = None) -> str:
    """Upload ``model.safetensors``, ``config.json`` and a ``README.md`` model card in one commit.

    The repo (and the branch ``revision``) is created if needed. Pushing files identical to the current
    ones makes no commit.

    Args:
        model: A ``SegmentationModel``.
        repo_id: ``namespace/name``.
        private: Create the repo private (only when it does not exist yet).
        revision: Branch to commit to (default ``main``).
        commit_message: Commit summary.
        token: Hub token (default: huggingface_hub's usual lookup).
        endpoint: Hub URL (default ``HF_ENDPOINT`` or the public Hub).
        card_data: Extra model-card metadata, see ``segzoo.model_card.build_model_card``.

    Returns:
        The URL of the commit (of the current head when nothing changed).
    """
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_endpoint(endpoint), token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segzoo-push-") as folder:
        save_pretrained(model, folder)
        config = ModelConfig.load(Path(folder) / CONFIG_NAME)
        card = build_model_card(config, repo_id, find_pretrained_entry(config), card_data)
        (Path(folder) / CARD_NAME).write_text(card)
        info = api.upload_folder(folder_path=folder, repo_id=repo_id, revision=revision,
                                 commit_message=commit_message or f"Upload {config.head}_{config.backbone} with segzoo")
    return info.commit_url


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _verify_cached_file(path: Path, expected_sha256: Optional[str] = None) -> None:
    """Check a file from the Hub cache against the hash the Hub reported (its blob's name)."""
    blob = Path(os.path.realpath(path))
    data = blob.read_bytes()
    reported = blob.name
    if len(reported) == 64:
        actual = hashlib.sha256(data).hexdigest()
    elif len(reported) == 40:
        actual = _git_blob_sha1(data)
    else:  # a cache layout we do not know: nothing to compare against
        actual = reported
    if actual != reported:
        # Remove the bad copy so that the next attempt downloads the file again.
        blob.unlink(missing_ok=True)
        if path.is_symlink():
            path.unlink()
        raise CheckpointError(f"{path.name} downloaded to {blob} does not match the hash the Hub reported "
                              f"({reported}); got {actual}: the download is corrupt or was altered. The bad copy "
                              f"was removed from the cache; download again.")
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise CheckpointError(f"{path.name} ({blob}) does not have the published sha256 {expected_sha256}")


def _download(repo_id: str, filename: str, revision: Optional[str], **kwargs) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, **kwargs))
    except RepositoryNotFoundError as err:
        raise WeightsUnavailableError(f"Hub repo {repo_id} not found at {kwargs.get('endpoint') or 'the Hub'} "
                                      f"(or it is private and no valid token was given)") from err
    except RevisionNotFoundError as err:
        raise WeightsUnavailableError(f"revision {revision!r} not found in Hub repo {repo_id}") from err
    except LocalEntryNotFoundError as err:  # a subclass of EntryNotFoundError: first
        raise WeightsUnavailableError(f"{filename} of {where} is not in the local cache and the Hub cannot be "
                                      f"used (offline, or local_files_only=True)") from err
    except EntryNotFoundError as err:
        raise WeightsUnavailableError(f"Hub repo {where} has no {filename}: not a segzoo model repo "
                                      f"(expected {CONFIG_NAME} and {WEIGHTS_NAME})") from err
    except HfHubHTTPError as err:
        raise WeightsUnavailableError(f"downloading {filename} from {where} failed: {err}") from err
    except OSError as err:  # e.g. "Consistency check failed: file should be of size ..."
        raise CheckpointError(f"{filename} from {where} could not be downloaded intact: {err}") from err


def download_model_files(repo_id: str, revision: Optional[str] = None, *, cache_dir: Optional[str] = None,
                         token: Optional[str] = None, endpoint: Optional[str] = None,
                         local_files_only: bool = False, expected_sha256: Optional[str] = None) -> Path:
    """Download (or find in the cache) a segzoo repo's ``config.json`` and ``model.safetensors``.

    Safe under DDP: rank 0 downloads, the other ranks wait and read the cache.

    Args:
        repo_id: ``namespace/name``.
        revision: Branch, tag or commit (default ``main``).
        cache_dir: Hub cache directory (default ``HF_HUB_CACHE``).
        token: Hub token.
        endpoint: Hub URL (default ``HF_ENDPOINT`` at call time).
        local_files_only: Use the cache only (also when ``HF_HUB_OFFLINE=1`` at call time).
        expected_sha256: The published sha256 of ``model.safetensors``, checked when given.

    Returns:
        The snapshot directory holding both files.
    """
    kwargs = dict(cache_dir=cache_dir, token=token, endpoint=_endpoint(endpoint),
                  local_files_only=local_files_only or offline())

    def fetch() -> Path:
        config = _download(repo_id, CONFIG_NAME, revision, **kwargs)
        weights = _download(repo_id, WEIGHTS_NAME, revision, **kwargs)
        for path in (config, weights):
            _verify_cached_file(path, expected_sha256 if path is weights else None)
        return weights.parent

    return rank0_first(fetch)


def download_config(repo_id: str, revision: Optional[str] = None, *, cache_dir: Optional[str] = None,
                    token: Optional[str] = None, endpoint: Optional[str] = None,
                    local_files_only: bool = False) -> ModelConfig:
    """Download (or find in the cache) only a segzoo repo's ``config.json`` and read it.

    Args: as ``download_model_files``.

    Returns:
        The model's config.
    """
    path = _download(repo_id, CONFIG_NAME, revision, cache_dir=cache_dir, token=token, endpoint=_endpoint(endpoint),
                     local_files_only=local_files_only or offline())
    return ModelConfig.load(path)


def cached_weights_path(repo_id: str, revision: Optional[str] = None,
                        cache_dir: Optional[str] = None) -> Optional[str]:
    """Where the Hub cache holds ``model.safetensors`` of ``repo_id`` at ``revision`` (default main), or None
    when it does not (nothing is downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, WEIGHTS_NAME, cache_dir=cache_dir, revision=revision or "main")
    return path if isinstance(path, str) else None


def copy_model_files(snapshot: Path, directory: str | os.PathLike) -> Path:
    """Copy a downloaded snapshot's files into ``directory`` (for ``segzoo pull --to``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
        if (snapshot / name).exists():
            shutil.copyfile(snapshot / name, directory / name)
    return directory
