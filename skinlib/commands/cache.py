"""``skinlib cache DATA_DIR --format ... --size 224``: build the pre-resized image cache."""

from __future__ import annotations

import argparse

from skinlib.data.adapters import FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="pre-resize a dataset's images once (faster epochs)")
    p.add_argument("root", help="dataset folder")
    p.add_argument("--format", choices=FORMATS, default="ham10000")
    p.add_argument("--size", type=int, default=224, help="shorter side in pixels")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from skinlib.data import load_table
    from skinlib.data.cache import build_cache

    table = build_cache(load_table(args.root, args.format), args.size, workers=args.workers)
    print(
        f"cached {len(table)} images at {args.size}px under {table['path'].iloc[0].rsplit('/', 2)[0]}"
    )
    return 0
