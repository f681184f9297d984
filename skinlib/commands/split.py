"""``skinlib split DATA_DIR --format ... --out splits.csv``: a grouped, stratified split file."""

from __future__ import annotations

import argparse

from skinlib.data.formats import FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="write a lesion-grouped, class-stratified split file")
    p.add_argument("root", help="dataset folder (HAM10000: also the metadata CSV)")
    p.add_argument("--format", choices=FORMATS, default="ham10000")
    p.add_argument("--out", required=True, help="split CSV to write")
    p.add_argument(
        "--folds", type=int, default=0, help="K-fold assignment (2-10) instead of train/val/test"
    )
    p.add_argument("--val", type=float, default=0.15, help="validation fraction")
    p.add_argument("--test", type=float, default=0.15, help="test fraction")
    p.add_argument(
        "--calibration",
        type=float,
        default=0.0,
        help="calibration fraction, carved out of training (0 = no calibration split)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels-only", action="store_true", help="do not require the image files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # here, not at the top: the CLI imports every command to list it, and `skinlib --help` stays light
    from skinlib.data import load_table
    from skinlib.data.splits import audit_split, make_folds, make_split, save_split

    table = load_table(args.root, args.format, require_images=not args.labels_only)
    if args.folds:
        table, column = make_folds(table, args.folds, args.seed), "fold"
    else:
        table = make_split(table, args.val, args.test, args.seed, args.calibration)
        column = "split"
    save_split(table, args.out)
    print(audit_split(table, column))
    print(f"wrote {args.out} ({len(table)} images, {table['group'].nunique()} groups)")
    return 0
