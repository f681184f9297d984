"""Subcommands of the ``skinlib`` command line, one module each.

Each module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed arguments and returning an exit code. Heavy imports (torch, timm)
happen inside those functions so that ``skinlib --help`` stays fast.
"""

import argparse


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """The ``--set section.key=value`` option every profile-reading command shares."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set data.root=/data/HAM10000 (repeatable)",
    )
