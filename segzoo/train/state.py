"""Atomic, resumable training checkpoints: tensors in safetensors files, everything else in JSON, never pickle.

``run_dir/checkpoint-{iteration:08d}/``: ``model.safetensors`` + ``config.json`` (``save_pretrained``'s, so
``create_model("local-dir:...")`` loads it), ``training_state.safetensors`` (optimizer, scheduler, scaler and
RNG tensors), ``training_state.json`` (the rest) and ``SHA256SUMS`` (each file's sha256, in ``sha256sum``'s format:
a flipped byte is refused on resume, naming the file). ``run_dir/latest`` names the newest complete one."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import Tensor

from ..config import ModelConfig
from ..distributed import unwrap_model
from ..errors import CheckpointError, ConfigError, read_utf8
from ..files import output_error
from ..weights.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    file_sha256,
    make_temp_dir,
    public_modes,
    read_weights,
    save_pretrained,
)
from .serialization import capture_rng, flatten_state, restore_rng, unflatten_state

__all__ = ["TrainingState", "capture_rng", "find_checkpoint", "load_checkpoint", "restore_rng", "resume_from",
           "save_checkpoint", "verify_checkpoint"]

STATE_TENSORS, STATE_JSON, LATEST, FORMAT_VERSION = "training_state.safetensors", "training_state.json", "latest", 1
CHECKSUMS = "SHA256SUMS"
_FILES = (WEIGHTS_NAME, CONFIG_NAME, STATE_TENSORS, STATE_JSON)
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_restore_rng = restore_rng  # resume_from's restore_rng argument shadows the function


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):  # Windows cannot open directories, some file systems cannot sync them
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _iteration_of(path: Path) -> int | None:
    match = _CHECKPOINT_RE.match(path.name)
    return int(match.group(1)) if match and path.is_dir() else None


def _is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in _FILES)


def save_checkpoint(run_dir, *, model, optimizer, scheduler=None, scaler=None, epoch: int, iteration: int,
                    extra: dict | None = None, keep: int | None = 2) -> Path:
    """Write ``run_dir/checkpoint-{iteration:08d}`` atomically, point ``run_dir/latest`` at it, prune old ones.

    A synced ``.tmp-checkpoint-*`` directory is renamed, then ``latest`` moves: a killed process leaves
    ``latest`` naming a complete checkpoint (but for a moment when re-saving an iteration; ``find_checkpoint``
    then takes the newest complete one). Main process only: the RNG states saved are this process's.

    Args:
        run_dir: The run directory (created if needed).
        model: The ``SegmentationModel`` (DDP / torch.compile wrappers are unwrapped).
        optimizer: The optimizer.
        scheduler: The learning-rate scheduler, if any.
        scaler: The AMP ``GradScaler``, if any.
        epoch: Epoch to resume in.
        iteration: Iterations done (names the checkpoint).
        extra: More state (JSON values and tensors), returned as ``TrainingState.extra``.
        keep: Number of checkpoints kept: this one and the newest others by iteration; None keeps all.

    Returns:
        The checkpoint directory.

    Raises:
        OutputError: The checkpoint (or ``latest``) cannot be written (read-only, disk full), naming it and the
            cause; nothing half-written is left, and ``latest`` still names the previous checkpoint.
    """
    if (keep is not None and keep < 1) or iteration < 0:
        raise ValueError(f"need keep >= 1 (or None) and iteration >= 0, got keep={keep!r}, iteration={iteration}")
    run_dir = Path(run_dir)
    final = run_dir / f"checkpoint-{iteration:08d}"
    skeleton, tensors = flatten_state({
        "optimizer": optimizer.state_dict(), "extra": dict(extra or {}), "rng": capture_rng(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None})
    document = {"format": "segzoo-training-state", "format_version": FORMAT_VERSION,
                "epoch": int(epoch), "iteration": int(iteration), **skeleton}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(run_dir, ".tmp-checkpoint-")
    except OSError as err:
        raise output_error(final, err) from None
    try:
        save_pretrained(unwrap_model(model), tmp)
        save_file(tensors, str(tmp / STATE_TENSORS), metadata={"format": "pt"})
        (tmp / STATE_JSON).write_text(json.dumps(document) + "\n")
        (tmp / CHECKSUMS).write_text("".join(f"{file_sha256(tmp / name)}  {name}\n" for name in _FILES))
        public_modes(tmp)  # the umask's modes, not tempfile's private ones
        for file in [*tmp.iterdir(), tmp]:
            _fsync(file)
        if final.exists():  # rename() cannot replace a non-empty directory: move the old one aside first
            os.rename(final, Path(tempfile.mkdtemp(dir=run_dir, prefix=".tmp-old-")) / final.name)
        os.rename(tmp, final)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, (OSError, SafetensorError)):  # disk full: the checkpoint's name, not the temporary one
            raise output_error(final, err) from err
        raise
    _fsync(run_dir)
    latest_tmp = None
    try:
        fd, latest_tmp = tempfile.mkstemp(dir=run_dir, prefix=".tmp-latest-")
        with os.fdopen(fd, "w") as handle:
            handle.write(final.name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        public_modes(latest_tmp)
        os.replace(latest_tmp, run_dir / LATEST)
    except OSError as err:  # latest still names the previous checkpoint, which is complete
        if latest_tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(latest_tmp)
        raise output_error(run_dir / LATEST, err) from err
    _fsync(run_dir)
    if keep is not None:
        others = [path for path in run_dir.iterdir() if _iteration_of(path) is not None and path != final]
        for path in sorted(others, key=_iteration_of, reverse=True)[keep - 1:]:
            shutil.rmtree(path, ignore_errors=True)
    for path in run_dir.glob(".tmp-*"):  # leftovers of crashed saves
        with contextlib.suppress(OSError):
            (shutil.rmtree if path.is_dir() else os.unlink)(path)
    return final


def _checksum_mismatch(directory: Path) -> str | None:
    """What of ``directory`` differs from its ``SHA256SUMS`` (None when all match; checkpoints written before
    segzoo recorded checksums have none to check)."""
    sums = directory / CHECKSUMS
    if not sums.is_file():
        return None
    for line in sums.read_text().splitlines():
        recorded, _, name = line.partition("  ")
        if name not in _FILES:
            continue
        if not (directory / name).is_file():
            return f"{directory / name} is missing"
        if (actual := file_sha256(directory / name)) != recorded:
            return (f"{directory / name} has sha256 {actual[:16]}..., but {CHECKSUMS} records {recorded[:16]}...: "
                    f"the file is corrupt or was changed after saving")
    return None


def _previous_good(directory: Path) -> Path | None:
    """The newest complete checkpoint before ``directory`` in its run directory whose files match their checksums."""
    iteration = _iteration_of(directory)
    if iteration is None:
        return None
    earlier = [child for child in directory.parent.iterdir()
               if (other := _iteration_of(child)) is not None and other < iteration and _is_complete(child)]
    return next((child for child in sorted(earlier, key=_iteration_of, reverse=True)
                 if _checksum_mismatch(child) is None), None)


def verify_checkpoint(directory) -> None:
    """Check every file of a checkpoint directory against its ``SHA256SUMS``.

    Raises:
        CheckpointError: A file that does not match, named, with the previous good checkpoint of the run to resume
            from instead (when there is one).
    """
    directory = Path(directory)
    problem = _checksum_mismatch(directory)
    if problem is None:
        return
    previous = _previous_good(directory)
    offer = (f"; resume from the previous good checkpoint instead: {previous}" if previous is not None
             else "; no earlier checkpoint of this run is intact")
    raise CheckpointError(f"checkpoint {directory} is damaged: {problem}{offer}")


def find_checkpoint(path) -> Path:
    """Resolve a run directory to the checkpoint ``latest`` names, or return a checkpoint directory itself.

    Without ``latest`` (or, with a warning, when the directory it names does not exist) a run directory
    resolves to its newest complete ``checkpoint-*`` directory.

    Args:
        path: A run directory or a ``checkpoint-*`` directory.

    Returns:
        The checkpoint directory.

    Raises:
        CheckpointError: Nothing found (naming the path and what was expected).
    """
    path = Path(path)
    expected = (f"expected a run directory (with '{LATEST}' or checkpoint-* directories) or a checkpoint-* "
                f"directory holding {', '.join(_FILES)}")
    if not path.is_dir():
        raise CheckpointError(f"no training checkpoint at {path}: not a directory; {expected}")
    if _CHECKPOINT_RE.match(path.name) or (path / STATE_JSON).exists():
        return path
    latest = path / LATEST
    if latest.is_file():
        named = path / read_utf8(latest, CheckpointError, "the name of a checkpoint-* directory").strip()
        if named.is_dir():  # load_checkpoint names its missing files: damage is not papered over
            return named
        warnings.warn(f"{latest} names {named.name}, which does not exist; using the newest complete checkpoint "
                      f"instead", stacklevel=2)
    complete = [child for child in path.iterdir() if _iteration_of(child) is not None and _is_complete(child)]
    if not complete:
        raise CheckpointError(f"no training checkpoint in {path}: {expected}")
    return max(complete, key=_iteration_of)


@dataclass
class TrainingState:
    """Everything a training checkpoint holds (``rng`` as ``capture_rng`` returns it)."""

    path: Path
    config: ModelConfig
    model_state: dict[str, Tensor]
    optimizer_state: dict
    scheduler_state: dict | None
    scaler_state: dict | None
    epoch: int
    iteration: int
    extra: dict
    rng: dict


def load_checkpoint(path) -> TrainingState:
    """Read a training checkpoint without loading it into anything.

    Args:
        path: A run directory or a checkpoint directory (see ``find_checkpoint``).

    Returns:
        The state.

    Raises:
        CheckpointError: No checkpoint, or a missing or corrupt file (named; every file is checked against the
            sha256 recorded when it was saved).
    """
    directory = find_checkpoint(path)
    for name in _FILES:
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory / name} is missing: a training checkpoint holds {', '.join(_FILES)}")
    verify_checkpoint(directory)
    try:
        config = ModelConfig.load(directory / CONFIG_NAME)
    except ConfigError as err:
        raise CheckpointError(f"{directory / CONFIG_NAME} is not a valid model config: {err}") from err
    model_state, tensors = read_weights(directory / WEIGHTS_NAME), read_weights(directory / STATE_TENSORS)
    json_path = directory / STATE_JSON
    try:
        document = json.loads(json_path.read_text())
        version = document.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(f"{json_path} has format version {version!r}; this segzoo reads {FORMAT_VERSION}")
        state = unflatten_state({key: document[key] for key in ("optimizer", "scheduler", "scaler", "rng", "extra")},
                                tensors)
        epoch, iteration = int(document["epoch"]), int(document["iteration"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # JSON and Unicode errors are ValueErrors
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{json_path} is corrupt or does not match {STATE_TENSORS} "
                              f"({type(err).__name__}: {err})") from err
    return TrainingState(directory, config, model_state, state["optimizer"], state["scheduler"], state["scaler"],
                         epoch, iteration, state["extra"], state["rng"])


def resume_from(path, *, model, optimizer, scheduler=None, scaler=None, restore_rng: bool = True) -> TrainingState:
    """Load a training checkpoint into the model, optimizer, scheduler and scaler, and restore the RNGs.

    Args:
        path: A run directory or a checkpoint directory.
        model: The model (possibly wrapped); its config must equal the checkpoint's (provenance aside).
        optimizer: The optimizer, built as for the checkpointed run.
        scheduler: The scheduler, if any (the checkpoint must hold scheduler state then).
        scaler: The AMP ``GradScaler``, if any.
        restore_rng: Restore the torch / CUDA / ``random`` / numpy RNG states.

    Returns:
        The loaded state (``epoch``, ``iteration``, ``extra``, ...).

    Raises:
        CheckpointError: The checkpoint is of another model (the differing fields are named) or does not fit.
    """
    state = load_checkpoint(path)
    inner = unwrap_model(model)
    saved = {k: v for k, v in state.config.to_dict().items() if k != "provenance"}
    current = {k: v for k, v in inner.config.to_dict().items() if k != "provenance"}
    keys = list(current) + [key for key in saved if key not in current]
    differ = [f"{key} {saved.get(key)!r} != {current.get(key)!r}" for key in keys if saved.get(key) != current.get(key)]
    if differ:
        raise CheckpointError(f"checkpoint {state.path} is of another model: {', '.join(differ)}")
    try:
        inner.load_state_dict(state.model_state, strict=True)
        optimizer.load_state_dict(state.optimizer_state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint {state.path} does not fit: {err}") from err
    if scheduler is not None:
        if state.scheduler_state is None:
            raise CheckpointError(f"checkpoint {state.path} holds no scheduler state to resume the scheduler from")
        scheduler.load_state_dict(state.scheduler_state)
    if scaler is not None and scaler.is_enabled():
        if state.scaler_state:
            scaler.load_state_dict(state.scaler_state)
        else:
            warnings.warn(f"checkpoint {state.path} holds no GradScaler state: the scaler starts afresh", stacklevel=2)
    if restore_rng:
        _restore_rng(state.rng)
    return state
