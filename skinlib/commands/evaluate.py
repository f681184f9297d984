"""``skinlib evaluate --run RUN --data DIR --format ... --out DIR``: external validation.

Images the run trained, was selected or tested on are never scored (see
:mod:`skinlib.data.overlap`); when none remain the command stops with exit status 2.
"""

from __future__ import annotations

import argparse

from skinlib.data.formats import FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="test a trained run on another dataset (external validation)",
        description="Test a trained run on another dataset. Images the run trained, was "
        "selected or tested on (same id, bytes, picture or lesion) are never scored: "
        "excluded.csv lists them and report.json counts them.",
    )
    p.add_argument("--run", required=True, help="run folder, e.g. experiments/demo/resnet18")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--format", choices=FORMATS, default="ham10000")
    p.add_argument(
        "--out", required=True, help="folder for predictions.csv, metrics and report.json"
    )
    p.add_argument("--tta", action="store_true", help="average over flips and rotations")
    p.add_argument(
        "--drop-unmapped",
        action="store_true",
        help="drop images whose class the model does not know (else: an error)",
    )
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="skip listed images whose file is missing (else: an error naming the row)",
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the intervals")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # torch and timm load with the model: only when this command runs, not for `skinlib --help`
    from skinlib.external.evaluate import evaluate_external
    from skinlib.external.folder import EvaluationFolder

    summary = evaluate_external(
        args.run,
        args.data,
        args.format,
        args.out,
        args.tta,
        args.drop_unmapped,
        args.n_boot,
        skip_missing=args.skip_missing,
    )
    out = EvaluationFolder(args.out)
    overlap = summary["overlap"]
    if overlap["dropped"]:
        print(
            f"not external, not scored: {overlap['dropped']} of {overlap['checked']} images "
            f"(train/val by {overlap['train_val_by_reason']}, run's test split "
            f"{overlap['run_test']}; list: {out.file(out.EXCLUDED)})"
        )
    print(
        f"{summary['images']} external images: balanced accuracy {summary['balanced_accuracy']:.3f}, "
        f"macro AUC {summary['macro_auc']:.3f} (report: {out.file(out.REPORT)})"
    )
    print(summary["external"]["caveat"])
    return 0
