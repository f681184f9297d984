"""``skinlib validate DATA_DIR --format ...``: list every problem of a dataset, in a CSV report."""

from __future__ import annotations

import argparse

from skinlib.data.formats import FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="scan a dataset for missing, corrupt or mislabelled files")
    p.add_argument("root", help="dataset folder")
    p.add_argument("--format", choices=FORMATS, default="ham10000")
    p.add_argument(
        "--report", default="validation_report.csv", help="CSV report: file,row,problem,detail"
    )
    p.add_argument("--workers", type=int, default=2, help="threads decoding images")
    p.add_argument(
        "--split",
        help="split file (skinlib split): also report one image in two splits or folds",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the dataset is clean, 1 when the report lists problems."""
    # here, not at the top: the CLI imports every command to list it, and `skinlib --help` stays light
    import pandas as pd

    from skinlib.data.validate import validate_dataset
    from skinlib.io import atomic_write

    report = validate_dataset(args.root, args.format, workers=args.workers, split_file=args.split)
    atomic_write(args.report, lambda p: report.to_csv(p, index=False))
    if report.empty:
        print(f"{args.root}: no problems found (report: {args.report})")
        return 0
    print(report["problem"].value_counts().to_string())
    for _, row in report.head(10).iterrows():
        line = f", line {row['row']}" if pd.notna(row["row"]) else ""
        print(f"  {row['file']}{line}: {row['detail']}")
    print(f"{len(report)} problem(s); full list in {args.report}")
    return 1
