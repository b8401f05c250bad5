"""The ``segzoo`` command. Subcommands arrive with their issues; this one lists what exists."""
from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="segzoo",
        description="segzoo: a plug-in model zoo for semantic segmentation on timm backbones.",
    )
    parser.add_argument("--version", action="version", version=f"segzoo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    heads = commands.add_parser("heads", help="list the registered heads and the distributions providing them")
    heads.set_defaults(run=_run_heads)
    models = commands.add_parser("models", help="list model names (optionally matching an fnmatch PATTERN)")
    models.add_argument("pattern", nargs="?", help="e.g. 'fcn_*' or '*resnet50s'")
    models.set_defaults(run=_run_models)
    return parser


def _run_heads(args) -> int:
    from .registry import list_heads

    for info in list_heads(include_failed=True):
        status = "" if info.ok else f"  (failed to load: {type(info.error).__name__}: {info.error})"
        print(f"{info.name:<16} {info.distribution} {info.version}  {info.entry_point}{status}")
    return 0


def _run_models(args) -> int:
    from .factory import list_models

    print("\n".join(list_models(args.pattern)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``segzoo`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
