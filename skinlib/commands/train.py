"""``skinlib train --profile params/<profile>.yaml --arch A``: train one run of a study.

The run's config is resolved exactly as the pipeline resolves it (profile ``config`` < the
architecture's recipe < ``--set`` < an imbalance strategy), so both write the same run folder
with the same ``config.yaml``. ``--config`` trains from a run's saved ``config.yaml``.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from skinlib.commands import add_overrides
from skinlib.config import Config
from skinlib.profile import resolve_run_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model (works under torchrun for several GPUs)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--profile", help="study profile, e.g. params/demo.yaml (with --arch)")
    source.add_argument("--config", help="a run's config.yaml (to reproduce or continue it)")
    p.add_argument("--arch", help="architecture of the profile to train (default: its first)")
    p.add_argument("--strategy", help="an imbalance strategy of the profile instead of --arch")
    add_overrides(p)
    p.add_argument("--resume", action="store_true", help="continue from the last completed epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def resolve(args: argparse.Namespace) -> Config:
    """The run's config from the command line (:func:`skinlib.profile.resolve_run_config`)."""
    return resolve_run_config(args.profile, args.config, args.overrides, args.arch, args.strategy)


def run(args: argparse.Namespace) -> int:
    from skinlib.training import train  # torch: only when this command trains

    cfg = resolve(args)
    if args.print_config:
        yaml.safe_dump(cfg.to_dict(), sys.stdout, sort_keys=False)
        return 0
    run_dir = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"run folder: {run_dir}")
    return 0
