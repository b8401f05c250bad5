"""Checks of head arguments, so that a bad option fails where the model is built, naming the option."""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError

__all__ = ["check_int", "check_ints", "check_fraction", "check_bool", "check_choice"]


def check_int(head: str, *, minimum: int, optional: bool = False, **values: Any) -> None:
    """Each value must be an int (not a bool) >= ``minimum`` (or None when ``optional``)."""
    for name, value in values.items():
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{head} {name} must be an integer >= {minimum}, got {value!r}")


def check_ints(head: str, *, minimum: int, **values: Any) -> None:
    """Each value must be a non-empty tuple or list of ints (not bools) >= ``minimum``."""
    for name, value in values.items():
        if not isinstance(value, (tuple, list)) or not value or any(
                isinstance(item, bool) or not isinstance(item, int) or item < minimum for item in value):
            raise ConfigError(f"{head} {name} must be a non-empty sequence of integers >= {minimum}, got {value!r}")


def check_fraction(head: str, **values: Any) -> None:
    """Each value must be a number (not a bool) in [0, 1) (a dropout probability)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigError(f"{head} {name} must be a number in [0, 1), got {value!r}")


def check_bool(head: str, **values: Any) -> None:
    """Each value must be True or False."""
    for name, value in values.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{head} {name} must be True or False, got {value!r}")


def check_choice(head: str, name: str, value: Any, choices: tuple) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{head} {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
