"""``skinlib synth --out DIR``: generate the SynthDerm dataset."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the embedded SynthDerm dataset (HAM10000 layout)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=2000, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=224, help="image side in pixels")
    p.add_argument("--classes", choices=["ham10000", "isic2019"], default="ham10000")
    p.add_argument("--difficulty", type=float, default=0.5, help="0 separable .. 1 overlapping")
    p.add_argument("--balanced", action="store_true", help="equal class shares")
    p.add_argument("--layout", choices=["ham10000", "isic2019"], default="ham10000")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # here, not at the top: the CLI imports every command to list it, and `skinlib --help` stays light
    from skinlib.data.synthetic import generate

    out = generate(
        args.out,
        n=args.n,
        seed=args.seed,
        size=args.size,
        classes=args.classes,
        difficulty=args.difficulty,
        balanced=args.balanced,
        workers=args.workers,
        layout=args.layout,
    )
    print(f"wrote {args.n} images to {out}")
    return 0
