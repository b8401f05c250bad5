"""Convert a reference ``.pth`` checkpoint into a segzoo ``model.safetensors`` + ``config.json`` directory.

Usage (the same as ``segzoo convert``)::

    python -m maintainers.convert_checkpoint SRC.pth OUT_DIR --model KIND [--backbone resnet101s] [--num-classes N]
                          [--class-names a,b,c]

The conversion lives in ``segzoo.weights.convert`` and its command line in ``segzoo.tools.cli``; this is the
publishing side's entry point to it.
"""
from __future__ import annotations

import sys

from segzoo.tools.cli import main as segzoo_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``segzoo convert`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    return segzoo_main(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
