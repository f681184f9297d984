"""``skinlib cache DATA_DIR --format ... --size 224``: build the pre-resized image cache."""

from __future__ import annotations

import argparse
from pathlib import Path

from skinlib.data.formats import FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="pre-resize a dataset's images once (faster epochs)")
    p.add_argument("root", help="dataset folder")
    p.add_argument("--format", choices=FORMATS, default="ham10000")
    p.add_argument("--size", type=int, default=224, help="shorter side in pixels")
    p.add_argument("--workers", type=int, default=2, help="processes resizing in parallel")
    p.add_argument("--cache-root", default=None, help="default: <cache dir>/images")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # here, not at the top: the CLI imports every command to list it, and `skinlib --help` stays light
    from skinlib import paths
    from skinlib.data import load_table
    from skinlib.data.cache import build_cache

    table = load_table(args.root, args.format)
    cached = build_cache(table, args.size, args.cache_root, workers=args.workers)
    root = Path(args.cache_root) if args.cache_root else paths.cache_dir() / "images"
    kept = int((cached["path"] == cached["source_path"]).sum())
    print(f"cached {len(cached) - kept} images at {args.size} px under {root / str(args.size)}")
    if kept:
        print(f"{kept} unreadable images were left out: run `skinlib validate {args.root}`")
    return 0
