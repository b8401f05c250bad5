"""Local weights: ``save_pretrained`` writes ``model.safetensors`` + ``config.json``; loading checks
every key and shape and never unpickles anything."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import ModelConfig
from ..errors import CheckpointError, OutputError
from ..files import output_error
from ..registry import get_head_info
from ..version import __version__

__all__ = ["WEIGHTS_NAME", "CONFIG_NAME", "atomic_write", "current_umask", "holds_model", "load_pretrained",
           "load_weights", "file_sha256", "make_temp_dir", "public_modes", "read_weights", "replace_folder",
           "save_pretrained"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _is_inference_only(model: torch.nn.Module) -> bool:
    # Layers that cannot be saved say so (segzoo.inference.optimize's FusedConv2d): no import of that layer here.
    return any(getattr(module, "inference_only", False) for module in model.modules())


def current_umask() -> int:
    """This process's umask, read without changing it where the system tells it (Linux's /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but nothing else is portable)
    os.umask(mask)
    return mask


def public_modes(path: str | os.PathLike) -> None:
    """Give ``path`` the mode ``open()`` / ``mkdir()`` would have: ``0o666`` / ``0o777`` less the umask.

    tempfile makes private files (0o600) and folders (0o700); written through them and renamed into place, a
    model would be unreadable to a teammate, another container user or a serving process. Folders are changed
    with everything inside them.
    """
    path = Path(path)
    mask = current_umask()
    for item in [path, *(path.rglob("*") if path.is_dir() else ())]:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new folder in ``parent`` (to be filled, then renamed into place) with the umask's folder mode."""
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    public_modes(folder)
    return folder


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename: a crash never leaves half a file.

    The file gets the mode a plain ``open()`` would give it (``0o666`` less the umask), not tempfile's 0o600.

    Args:
        path: The file to (re)place.
        write: ``write(temporary_path)`` writes the whole content.

    Raises:
        OutputError: The file cannot be written (read-only folder, below a file, a folder, disk full), naming
            ``path`` and the cause; nothing is left behind.
    """
    path = Path(path)
    if path.is_dir():
        raise output_error(path, IsADirectoryError(errno.EISDIR, "is a folder"))
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise output_error(path, err) from None
    os.close(fd)
    try:
        write(tmp)
        public_modes(tmp)
        os.replace(tmp, path)
    except (OSError, SafetensorError) as err:  # the user's path in the message, not the temporary one
        raise output_error(path, err) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def holds_model(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a saved model (``config.json`` or ``model.safetensors``)."""
    return any(os.path.lexists(os.path.join(directory, name)) for name in (CONFIG_NAME, WEIGHTS_NAME))


def replace_folder(directory: str | os.PathLike, fill: Callable[[Path], object]) -> Path:
    """Write the folder ``directory`` whole: ``fill(temporary)`` fills a new folder beside it, which then takes
    its place in one step. Until then an existing ``directory`` stays as it was: a failed or interrupted ``fill``
    leaves it intact (a model in it stays loadable) and nothing temporary behind.

    Files and folders of the old ``directory`` that ``fill`` did not write (a model card) are kept: hard-linked
    (else copied) into the new folder before the swap; never the old ``config.json`` and ``model.safetensors``.
    On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames with Ctrl-C held off between
    them.

    Args:
        directory: The folder to write or replace (its parents are created).
        fill: ``fill(temporary_folder)`` writes the new content (``save_pretrained`` writes a model).

    Returns:
        The folder.

    Raises:
        OutputError: The folder cannot be written (read-only, below a file, disk full), naming ``directory`` (never
            the temporary name) and the cause.
    """
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write {target}: it is a file, not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(target.parent, f".{target.name}.tmp-")
    except OSError as err:
        raise output_error(target, err) from None
    try:
        fill(tmp)
        if target.is_dir():
            _keep_others(target, tmp)
        public_modes(tmp)
        _swap_in(tmp, target)  # tmp holds the old folder afterwards, if there was one
    except (OSError, SafetensorError) as err:  # fill's own OutputError names the temporary folder: name the user's
        raise output_error(target, err) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _keep_others(old: Path, new: Path) -> None:
    """Hard-link (else copy) into ``new`` what ``old`` holds and ``new`` does not, but the old model's files."""
    def link_or_copy(source, destination):
        try:
            os.link(source, destination, follow_symlinks=False)
        except OSError:
            shutil.copy2(source, destination, follow_symlinks=False)

    for entry in old.iterdir():
        destination = new / entry.name
        if entry.name in (CONFIG_NAME, WEIGHTS_NAME) or os.path.lexists(destination):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, destination, symlinks=True, copy_function=link_or_copy)
        else:
            link_or_copy(entry, destination)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux's ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux, or a C library without it
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a file system that cannot exchange
        return False
    raise OSError(code, os.strerror(code), os.fspath(second))


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C and SIGTERM wait until the block is done (POSIX, main thread; elsewhere nothing is held)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _swap_in(new: Path, target: Path) -> None:
    """Put the folder ``new`` at ``target``; an old ``target`` is at ``new`` afterwards (exchanged) or deleted."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        return
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    try:
        with _signals_held():  # between the two renames there is no folder at target
            os.rename(target, aside / "old")
            try:
                os.rename(new, target)
            except BaseException:
                os.rename(aside / "old", target)
                raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def save_pretrained(model: torch.nn.Module, directory: str | os.PathLike) -> Path:
    """Save ``model`` as ``model.safetensors`` + ``config.json`` in ``directory`` (created if needed).

    config.json records segzoo's version, the distribution and version that provide the head and the sha256 of
    model.safetensors (``load_pretrained`` checks it: a flipped byte is an error, not a silently different
    model), besides what the config's provenance already holds (``base_model``: the weights the model started
    from).

    The model is written whole (``replace_folder``): into a temporary folder beside ``directory`` that then takes
    its place, so an interrupted or failed save leaves no half model and an older save in ``directory`` stays
    loadable until the new one is complete. The folder's other files (a model card) are kept.

    Returns:
        The directory.

    Raises:
        OutputError: The directory cannot be written (read-only, below a file, disk full), naming it and the cause.
    """
    if not isinstance(model, torch.nn.Module) or not isinstance(getattr(model, "config", None), ModelConfig):
        raise TypeError(f"save_pretrained saves a segzoo model (create_model's, with its .config), got "
                        f"{type(model).__name__}")
    if _is_inference_only(model):  # its BatchNorms are folded away: the checkpoint could not be loaded
        raise CheckpointError("this model was made by optimize_for_inference (BatchNorm folded into the "
                              "convolutions) and cannot be saved; save the original model")
    head = get_head_info(model.config.head)
    state = {key: value.detach().contiguous().cpu() for key, value in model.state_dict().items()}
    provenance = {
        **model.config.provenance,  # where the weights came from (base_model), recorded by create_model
        "segzoo_version": __version__,
        "head_distribution": head.distribution,
        "head_version": head.version,
    }

    def write(folder: Path) -> None:
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        config = model.config.replace(provenance={**provenance, "weights_sha256": file_sha256(folder / WEIGHTS_NAME)})
        config.save(folder / CONFIG_NAME)
    return replace_folder(directory, write)


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning a corrupt or truncated file into a ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a valid safetensors file (corrupt or truncated?): {err}") from err


def load_pretrained(directory: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read ``config.json`` and ``model.safetensors`` from a directory saved by ``save_pretrained``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory} has no {name}; expected {CONFIG_NAME} and {WEIGHTS_NAME} "
                                  f"as written by segzoo.save_pretrained")
    config = ModelConfig.load(directory / CONFIG_NAME)
    weights = read_weights(directory / WEIGHTS_NAME)  # a truncated or garbled file is named as such first
    recorded = config.provenance.get("weights_sha256")
    if recorded is not None and (actual := file_sha256(directory / WEIGHTS_NAME)) != recorded:
        raise CheckpointError(f"{directory / WEIGHTS_NAME} has sha256 {actual}, but {CONFIG_NAME} records {recorded} "
                              f"(written by save_pretrained): the file is corrupt or was changed after saving")
    return config, weights


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _key_list(kind: str, keys: list[str], limit: int = 10) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{kind} keys ({len(keys)}): {', '.join(keys[:limit])}{more}"


def _adapt_input_conv(weight: torch.Tensor, in_chans: int, source: str, key: str) -> torch.Tensor:
    """timm's rule for a pretrained stem of ``weight.shape[1]`` channels in a model of ``in_chans``."""
    import inspect

    from timm.models import adapt_input_conv  # imported here: timm takes a second to import

    try:
        if "base_chans" in inspect.signature(adapt_input_conv).parameters:
            return adapt_input_conv(in_chans, weight, base_chans=weight.shape[1])
        if weight.shape[1] == 3:  # older timm adapts RGB stems only
            return adapt_input_conv(in_chans, weight)
        raise NotImplementedError("this timm adapts 3-channel weights only")
    except (NotImplementedError, AssertionError, ValueError) as err:
        raise CheckpointError(f"{source}: cannot adapt {key!r} from {weight.shape[1]} to {in_chans} input "
                              f"channels: {err}") from err


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint", *,
                 new_classes: bool = False) -> None:
    """Load ``state`` into ``model``, checking every key and shape.

    * Classifier layers whose shape differs (another ``num_classes``) keep their fresh initialisation, with a
      warning, when ``new_classes`` says the caller asked for another number of classes; otherwise they are a
      ``CheckpointError`` (a saved model whose config and weights disagree must not predict random classes).
      Everything else must fit exactly.
    * The convolutions that read the image (``model.input_conv_keys()``: the backbone's stem, BiSeNet's spatial
      path) of a checkpoint with another number of input channels (``in_chans``) are adapted as timm adapts a
      pretrained stem (``timm.models.adapt_input_conv``: to one channel the sum over the checkpoint's; to N the
      checkpoint's channels repeated cyclically, scaled by ``C / N``), with a warning.
    * Aux-head weights the model does not use are dropped; an aux head the checkpoint lacks stays
      freshly initialised (with a warning): the aux head only matters for training.
    * Any other missing or unexpected key, or shape mismatch, is a ``CheckpointError`` naming it.
    """
    expected = model.state_dict()
    classifier_keys = set(model.classifier_keys())
    input_keys = set(model.input_conv_keys()) if hasattr(model, "input_conv_keys") else set()
    unexpected = [key for key in state if key not in expected and not key.startswith("aux_head.")]
    missing = [key for key in expected if key not in state and not key.startswith("aux_head.")]
    if unexpected or missing:
        raise CheckpointError(f"{source} does not fit the model: "
                              + "; ".join(filter(None, [
                                  _key_list("missing", missing),
                                  _key_list("unexpected", unexpected),
                              ])))
    to_load, reinitialised, adapted = {}, [], []
    for key in expected:
        if key not in state:
            continue
        value = state[key]
        if value.shape != expected[key].shape:
            if key in classifier_keys and value.shape[1:] == expected[key].shape[1:]:
                if not new_classes:
                    raise CheckpointError(
                        f"{source}: {key!r} holds {value.shape[0]} classes but the model has "
                        f"{expected[key].shape[0]} (its config's num_classes); pass num_classes= to start the "
                        f"classifiers afresh on purpose (fine-tuning), or correct num_classes")
                reinitialised.append(key)
                continue
            if key in input_keys and value.dim() == 4 and value.shape[0] == expected[key].shape[0] \
                    and value.shape[2:] == expected[key].shape[2:]:
                to_load[key] = _adapt_input_conv(value, expected[key].shape[1], source, key)
                adapted.append((key, value.shape[1]))
                continue
            raise CheckpointError(f"{source}: key {key!r} has shape {tuple(value.shape)} in the checkpoint "
                                  f"but {tuple(expected[key].shape)} in the model")
        to_load[key] = value
    if adapted:
        layers = ", ".join(f"{key} ({channels} -> {expected[key].shape[1]} channels)" for key, channels in adapted)
        warnings.warn(f"{source} has another number of input channels: adapted {layers} as timm adapts a "
                      f"pretrained stem; every other layer was loaded", stacklevel=2)
    if reinitialised:
        warnings.warn(f"{source} has another number of classes: re-initialised {', '.join(reinitialised)}; "
                      f"every other layer was loaded", stacklevel=2)
    fresh_aux = sorted(key for key in expected if key.startswith("aux_head.") and key not in state)
    if fresh_aux:
        warnings.warn(f"{source} has no aux head weights: the aux head starts from scratch", stacklevel=2)
    model.load_state_dict(to_load, strict=False)
