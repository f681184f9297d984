"""Subcommands of the ``skinlib`` command line, one module each.

Each module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed arguments and returning an exit code. Heavy imports (torch, timm)
happen inside those functions so that ``skinlib --help`` stays fast.
"""
