"""The ``polydistill`` command. Subcommands live in :mod:`polydistill.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from polydistill import __version__, commands
from polydistill.errors import PolydistillError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polydistill",
        description="Distil multilingual transformers into small, fast students.",
    )
    parser.add_argument("--version", action="version", version=f"polydistill {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except PolydistillError as error:
        print(f"polydistill {args.command}: error: {error}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
