"""The ``skinlib`` command line: ``skinlib doctor|synth|validate|split|cache|train|evaluate|pipeline|serve``."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from skinlib import __version__, commands
from skinlib.errors import SkinlibError
from skinlib.runs import ledger


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skinlib", description="Dermoscopic skin-lesion classification study."
    )
    parser.add_argument("--version", action="version", version=f"skinlib {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"skinlib.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with ledger.entered(f"skinlib {args.command}"):  # who scored, in the test-look ledger
            return int(args.func(args) or 0)
    except SkinlibError as err:
        print(f"skinlib {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"skinlib {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
