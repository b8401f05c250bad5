"""argparse types shared by the ``segzoo`` command and the example scripts: a bad value is a usage error (exit 2,
one line naming the option) before any data is read or a model is built. ``add_hub_options`` declares the Hub
options once for the ``segzoo`` verbs and the maintainer scripts."""
from __future__ import annotations

import argparse
import math
import os

__all__ = ["integer", "positive_number", "folder", "existing_folder", "output_file", "key_value", "add_hub_options"]


def integer(minimum: int):
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def folder(text: str) -> str:
    """An argparse type: a folder to write into, created if needed (an existing file is refused)."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    return text


def existing_folder(text: str) -> str:
    """An argparse type: a folder that exists."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is {'a file' if os.path.exists(text) else 'missing'}, not a folder")
    return text


def output_file(text: str) -> str:
    """An argparse type: a file to write (an existing folder is refused)."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give the file to write")
    return text


def key_value(text: str) -> tuple[str, object]:
    """An argparse type: ``NAME=VALUE`` (a loss option, say), the value read as an int, a float, true / false,
    or else kept as text."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE (e.g. gamma=2), got {text!r}")
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return name, lowered == "true"
    for convert in (int, float):
        try:
            return name, convert(value)
        except ValueError:
            pass
    return name, value


def add_hub_options(parser: argparse.ArgumentParser, *, cache_dir: bool = False, revision: str | None = None) -> None:
    """Declare ``--token`` and ``--endpoint``; with ``cache_dir`` also ``--cache-dir`` (a :func:`folder`); with
    ``revision`` also ``--revision``, whose help is ``revision``: what a revision is to that command (a branch to
    commit to, a branch, tag or commit to download)."""
    if revision is not None:
        parser.add_argument("--revision", help=revision)
    if cache_dir:
        parser.add_argument("--cache-dir", type=folder, help="Hub cache directory (default: HF_HUB_CACHE)")
    parser.add_argument("--token", help="Hub token (default: huggingface_hub's usual lookup)")
    parser.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or the public Hub)")
