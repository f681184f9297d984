"""``skinlib pipeline``: run the study notebooks with papermill."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pipeline",
        help="run the numbered notebooks with a profile (incremental)",
        description="Run the study: every notebook, in order, with the profile's parameters. "
        "Steps whose notebook, parameters, code and inputs are unchanged are skipped.",
    )
    p.add_argument("--profile", default="params/demo.yaml", help="study profile (YAML)")
    p.add_argument("--only", nargs="+", metavar="STEP", help="run these steps and what they need")
    p.add_argument("--force", action="store_true", help="rerun steps even when unchanged")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--list", action="store_true", help="list the steps and exit")
    p.add_argument("--no-progress", action="store_true", help="hide papermill's progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from skinlib.pipeline import build_steps, run_pipeline
    from skinlib.profile import load_study_profile

    if args.list:
        profile = load_study_profile(args.profile, args.overrides)
        for step in build_steps(profile, args.profile, args.overrides):
            print(f"{step.name:28s} {step.notebook:24s} needs: {', '.join(step.needs) or '-'}")
        return 0
    outcome = run_pipeline(
        args.profile, args.overrides, args.only, args.force, progress=not args.no_progress
    )
    ran = sum(v == "ran" for v in outcome.values())
    print(f"pipeline: {ran} step(s) ran, {len(outcome) - ran} skipped")
    return 0
