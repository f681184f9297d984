"""``skinlib train --config params/<profile>.yaml --set key=value``: train one run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model (works under torchrun for several GPUs)")
    p.add_argument("--config", help="profile YAML (its `config` section) or a run's config.yaml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=5 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last completed epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from skinlib.config import load_config
    from skinlib.training import train

    cfg = load_config(args.config, args.overrides)
    run_dir = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"run folder: {run_dir}")
    return 0
