"""Exceptions raised by segzoo, and the helper that suggests close names."""
from __future__ import annotations

import difflib
import os
from typing import Iterable

__all__ = [
    "SegzooError",
    "UnknownModelError",
    "ConfigError",
    "HeadPluginError",
    "CheckpointError",
    "WeightsUnavailableError",
    "ImageReadError",
    "DatasetError",
    "TrainingDivergedError",
    "OutputError",
    "did_you_mean",
    "read_utf8",
]


class SegzooError(Exception):
    """Base class of every error segzoo raises on purpose."""


class UnknownModelError(SegzooError, ValueError):
    """A model, head or backbone name that segzoo cannot resolve."""


class ConfigError(SegzooError, ValueError):
    """A model configuration (or config.json) that is invalid."""


class HeadPluginError(SegzooError, ImportError):
    """A head plug-in that could not be loaded; the original error is its ``__cause__``."""


class CheckpointError(SegzooError, ValueError):
    """Weights that are corrupt, truncated or do not fit the model."""


class WeightsUnavailableError(SegzooError, OSError):
    """Weights that cannot be found (not published, not cached while offline, not downloadable)."""


class ImageReadError(SegzooError, OSError):
    """An image file that is missing, unreadable, corrupt or in a form segzoo cannot turn into RGB."""


class DatasetError(SegzooError, ValueError):
    """A dataset that is missing, laid out differently from what segzoo expects, or holds bad masks."""


class TrainingDivergedError(SegzooError, FloatingPointError):
    """The training loss became nan or inf (too high a learning rate, bad labels or inputs)."""


class OutputError(SegzooError, OSError):
    """A file or folder that cannot be written (read-only, below a file, a folder, disk full) or that exists and
    must not be replaced unasked, or an output folder in use by another process."""


def did_you_mean(name: str, candidates: Iterable[str], n: int = 5) -> str:
    """Return ``" Did you mean: a, b?"`` for the closest candidates, or ``""`` when none is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


def read_utf8(path: str | os.PathLike, error: type[SegzooError], what: str) -> str:
    """The text of ``path`` as UTF-8 (not the locale's encoding); ``error`` naming the file when it is not UTF-8.

    Args:
        path: The file.
        error: The exception to raise (``ConfigError``, ``DatasetError``, ...).
        what: What the file should hold, for the message (``"one class name per line"``).
    """
    with open(path, "rb") as file:
        data = file.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{os.fspath(path)} is not UTF-8 text ({err.reason} at byte {err.start}): expected {what} in "
                    f"UTF-8") from None
