"""Push models to and pull them from the Hugging Face Hub (or any server speaking its protocol).

A segzoo repo holds ``model.safetensors``, ``config.json`` and a ``README.md`` model card. Downloads go
through huggingface_hub's cache; every downloaded file is checked against the hash the Hub reported for
it (the cache names each blob by its ETag: sha256 for LFS files, the git blob sha1 otherwise), so a
truncated or altered file is an error naming it. Nothing is ever unpickled.

``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read when a function is called (huggingface_hub reads them
once at import), so they can be set late, e.g. by a test or a launcher.

A request that fails is one line saying what failed, not huggingface_hub's traceback: the token (missing, refused,
without the rights), the repo id (checked before any request), or the connection to the endpoint and how often
huggingface_hub retried it. Pushes raise ``HubError``, downloads ``WeightsUnavailableError``.
"""
from __future__ import annotations

import contextlib
import hashlib
import http
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

import torch

from ..config import ModelConfig
from ..distributed import rank0_first
from ..errors import CheckpointError, ConfigError, SegzooError, WeightsUnavailableError
from ..network import failing_fast_offline, no_network_cause
from ..zoo import find_pretrained_entry
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, replace_folder, save_pretrained
from .model_card import build_model_card

__all__ = ["push_to_hub", "download_model_files", "download_config", "download_config_file", "upstream_of_config",
           "cached_weights_path", "parse_hub_name",
           "copy_model_files", "offline", "CARD_NAME", "HubError"]

CARD_NAME = "README.md"
_HTTP_CLIENTS = ("httpx", "httpx2", "requests", "urllib3")  # what huggingface_hub's versions speak HTTP with


class HubError(SegzooError, OSError):
    """A push the Hub refused or could not take: the token (missing, wrong, without write access), the repo id or
    branch, or the connection."""


def _endpoint(endpoint: Optional[str]) -> Optional[str]:
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    url = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if endpoint is not None and (url is None or url.scheme not in ("http", "https") or not url.netloc):
        raise ConfigError(f"the Hub endpoint must be an http(s) URL such as https://huggingface.co, got {endpoint!r}")
    return endpoint


def offline() -> bool:
    """Whether HF_HUB_OFFLINE asks for no downloads (read at call time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _check_repo_id(repo_id: Any, error: type[SegzooError], given: Any = None) -> None:
    """A repo id segzoo can push and pull: ``namespace/name`` in the characters the Hub allows."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    given = repo_id if given is None else given
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise error(f"Hub repo id must be 'namespace/name[@revision]', got {given!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise error(f"Hub repo id {repo_id!r} is not valid: {err}") from None


def _check_cache_dir(cache_dir: Optional[str | os.PathLike]) -> None:
    if cache_dir is not None and os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
        raise ConfigError(f"cache_dir {os.fspath(cache_dir)!r} is a file, not a directory")


def parse_hub_name(name: str) -> tuple[str, Optional[str]]:
    """``"org/name@rev"`` -> (``"org/name"``, ``"rev"``); the revision is optional."""
    repo_id, _, revision = name.partition("@")
    _check_repo_id(repo_id, WeightsUnavailableError, given=name)
    return repo_id, revision or None


class _RetryLog(logging.Filter):
    """Counts the retries huggingface_hub announces in its log while a call runs (it retries a failed connection
    with backoff and resumes a broken download), so that an error can say how often it tried. Records pass on
    unchanged (``segzoo`` the command keeps them off the terminal)."""

    LOGGERS = ("huggingface_hub.utils._http", "huggingface_hub.file_download")

    def __init__(self):
        super().__init__()
        self.retries = 0
        self.start = time.monotonic()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Retrying in") or "Trying to resume download" in message:
            self.retries += 1
        return True

    @contextlib.contextmanager
    def attached(self) -> Iterator["_RetryLog"]:
        loggers = [logging.getLogger(name) for name in self.LOGGERS]
        for logger in loggers:
            logger.addFilter(self)
        try:
            yield self
        finally:
            for logger in loggers:
                logger.removeFilter(self)

    def __str__(self) -> str:
        return f" after {self.retries} retries ({time.monotonic() - self.start:.0f} s)" if self.retries else ""


def _connection_error(err: Optional[BaseException]) -> Optional[BaseException]:
    """The connection failure (refused, reset, timed out, cut mid-transfer) in ``err``'s chain, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        from_client = type(err).__module__.split(".")[0] in _HTTP_CLIENTS and getattr(err, "response", None) is None
        if from_client or isinstance(err, (ConnectionError, TimeoutError)):
            return err
        err = err.__cause__ or err.__context__
    return None


def _first_line(text: Any) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def _why(err: BaseException, endpoint: Optional[str], token: Optional[str], retries: _RetryLog) -> Optional[str]:
    """What made a Hub request fail, in one line; None for an error this does not recognise."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    endpoint = endpoint or constants.ENDPOINT
    if (offline_cause := no_network_cause(err)) is not None:  # tried once: see segzoo.network
        return (f"no network to reach {endpoint} ({_first_line(offline_cause) or type(offline_cause).__name__}): "
                f"download the weights where there is one (segzoo pull NAME) and copy the Hugging Face cache "
                f"(HF_HUB_CACHE) here; HF_HUB_OFFLINE=1 then reads it without asking the network")
    if isinstance(err, LocalEntryNotFoundError) and err.__cause__ is not None:  # the Hub failed, nothing cached
        cause = err.__cause__
        return _why(cause, endpoint, token, retries) or f"the Hub at {endpoint} could not be used: {_first_line(cause)}"
    if isinstance(err, HFValidationError):
        return _first_line(err)
    if not isinstance(err, HfHubHTTPError) or getattr(err, "response", None) is None:
        cut = _connection_error(err)
        return None if cut is None else f"the connection to {endpoint} failed{retries}: " \
                                        f"{_first_line(cut) or type(cut).__name__}"
    status = err.response.status_code
    try:
        answer = f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        answer = str(status)
    server_message = _first_line(getattr(err, "server_message", None))
    if server_message:
        answer += f": {server_message}"
    if status == 401 and not (token or get_token()):
        return f"the Hub at {endpoint} needs a token ({answer}); pass --token / token=, set HF_TOKEN or log in " \
               f"with `hf auth login`"
    if status == 401:
        return f"the Hub at {endpoint} refused the token ({answer}); check --token / token= or HF_TOKEN"
    if status == 403:
        return f"the Hub at {endpoint} does not allow this with the token given ({answer})"
    return f"the Hub at {endpoint} answered {answer}{retries}"


@contextlib.contextmanager
def _explained(error: type[SegzooError], doing: str, endpoint: Optional[str], token: Optional[str]) -> Iterator[None]:
    """Raise huggingface_hub's (and its HTTP client's) failures inside as one-line ``error("<doing>: <why>")``."""
    with _RetryLog().attached() as retries:
        try:
            yield
        except SegzooError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever the Hub client raises, explained or passed on
            why = _why(err, endpoint, token, retries)
            if why is None:
                raise
            raise error(f"{doing}: {why}") from err


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

    if not isinstance(getattr(model, "config", None), ModelConfig):
        raise ConfigError(f"push_to_hub needs a segzoo SegmentationModel (it saves the model's config), "
                          f"got {type(model).__name__}")
    _check_repo_id(repo_id, HubError)
    endpoint = _endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="segzoo-push-") as folder:
        save_pretrained(model, folder)
        config = ModelConfig.load(Path(folder) / CONFIG_NAME)
        card = build_model_card(config, repo_id, find_pretrained_entry(config), card_data)
        (Path(folder) / CARD_NAME).write_text(card)
        with _explained(HubError, f"pushing to Hub repo {repo_id}", endpoint, token):
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision is not None and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(folder_path=folder, repo_id=repo_id, revision=revision, commit_message=(
                commit_message or f"Upload {config.head}_{config.backbone} with segzoo"))
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
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    endpoint = kwargs.get("endpoint")
    with _explained(WeightsUnavailableError, f"downloading {filename} of {where}", endpoint, kwargs.get("token")):
        try:
            with failing_fast_offline():
                return Path(hf_hub_download(repo_id, filename, revision=revision, **kwargs))
        except RepositoryNotFoundError as err:
            raise WeightsUnavailableError(f"Hub repo {repo_id} not found at {endpoint or 'the Hub'} "
                                          f"(or it is private and no valid token was given)") from err
        except RevisionNotFoundError as err:
            raise WeightsUnavailableError(f"revision {revision!r} not found in Hub repo {repo_id}") from err
        except LocalEntryNotFoundError as err:  # a subclass of EntryNotFoundError: first
            if err.__cause__ is not None:  # online, but the Hub failed: explained by _explained
                raise
            why = "HF_HUB_OFFLINE=1" if offline() else "local_files_only=True"
            raise WeightsUnavailableError(f"{filename} of {where} is not in the local cache and downloads are off "
                                          f"({why})") from err
        except EntryNotFoundError as err:
            raise WeightsUnavailableError(f"Hub repo {where} has no {filename}: not a segzoo model repo "
                                          f"(expected {CONFIG_NAME} and {WEIGHTS_NAME})") from err
        except OSError as err:
            if _connection_error(err) is not None or hasattr(err, "response"):  # the Hub's: explained by _explained
                raise
            # e.g. "Consistency check failed: file should be of size ..."
            raise CheckpointError(f"{filename} from {where} could not be downloaded intact: "
                                  f"{_first_line(err)}") from err


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
    _check_repo_id(repo_id, WeightsUnavailableError)
    _check_cache_dir(cache_dir)
    kwargs = dict(cache_dir=cache_dir, token=token, endpoint=_endpoint(endpoint),
                  local_files_only=local_files_only or offline())

    def fetch() -> Path:
        config = _download(repo_id, CONFIG_NAME, revision, **kwargs)
        try:
            weights = _download(repo_id, WEIGHTS_NAME, revision, **kwargs)
        except WeightsUnavailableError as err:
            if "has no" in str(err) and upstream_of_config(config) is not None:
                raise CheckpointError(f"Hub repo {repo_id} is a {upstream_of_config(config)} repo without "
                                      f"{WEIGHTS_NAME} (pickled weights only?): segzoo reads safetensors only; "
                                      f"save it with safetensors (transformers' save_pretrained does by default)"
                                      ) from None
            raise
        for path in (config, weights):
            _verify_cached_file(path, expected_sha256 if path is weights else None)
        return weights.parent

    return rank0_first(fetch)


def upstream_of_config(path: Path) -> Optional[str]:
    """The upstream whose repos have the ``config.json`` at ``path`` (transformers' UPerNet), or None for a segzoo
    config (or anything unreadable, which reading it as a segzoo config then reports)."""
    from ..upstreams import list_upstreams

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "head" in data:
        return None
    return next((upstream.name for upstream in list_upstreams() if upstream.recognises_config(data)), None)


def download_config_file(repo_id: str, revision: Optional[str] = None, *, cache_dir: Optional[str] = None,
                         token: Optional[str] = None, endpoint: Optional[str] = None,
                         local_files_only: bool = False) -> Path:
    """Download (or find in the cache) a repo's ``config.json``; its path."""
    _check_repo_id(repo_id, WeightsUnavailableError)
    _check_cache_dir(cache_dir)
    return _download(repo_id, CONFIG_NAME, revision, cache_dir=cache_dir, token=token, endpoint=_endpoint(endpoint),
                     local_files_only=local_files_only or offline())


def download_config(repo_id: str, revision: Optional[str] = None, *, cache_dir: Optional[str] = None,
                    token: Optional[str] = None, endpoint: Optional[str] = None,
                    local_files_only: bool = False) -> ModelConfig:
    """Download (or find in the cache) only a segzoo repo's ``config.json`` and read it.

    Args: as ``download_model_files``.

    Returns:
        The model's config.
    """
    return ModelConfig.load(download_config_file(repo_id, revision, cache_dir=cache_dir, token=token,
                                                 endpoint=endpoint, local_files_only=local_files_only))


def cached_weights_path(repo_id: str, revision: Optional[str] = None,
                        cache_dir: Optional[str] = None) -> Optional[str]:
    """Where the Hub cache holds ``model.safetensors`` of ``repo_id`` at ``revision`` (default main), or None
    when it does not (nothing is downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, WEIGHTS_NAME, cache_dir=cache_dir, revision=revision or "main")
    return path if isinstance(path, str) else None


def copy_model_files(snapshot: Path, directory: str | os.PathLike) -> Path:
    """Copy a downloaded snapshot's ``config.json`` and ``model.safetensors`` (what ``local-dir:`` reads; not the
    model card) into ``directory``, created if needed (for ``segzoo pull --to``). A model already there is replaced
    whole (``checkpoint.replace_folder``): an interrupted copy never leaves one file of each model."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a directory: give a new or existing directory to copy "
                          f"{CONFIG_NAME} and {WEIGHTS_NAME} into")

    def fill(folder: Path) -> None:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copyfile(snapshot / name, folder / name)
    return replace_folder(directory, fill)
