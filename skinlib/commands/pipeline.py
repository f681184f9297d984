"""``skinlib pipeline``: run the study notebooks with papermill, the trainings as jobs if asked."""

from __future__ import annotations

import argparse

from skinlib.commands import status
from skinlib.profile import EXECUTORS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pipeline",
        help="run the numbered notebooks with a profile (incremental)",
        description="Run the study: every notebook, in order, with the profile's parameters. "
        "Steps whose notebook, parameters, code and inputs are unchanged are skipped. With "
        "--executor local-parallel or slurm the trainings run first as separate jobs.",
    )
    status.add_arguments(p)
    p.add_argument("--only", nargs="+", metavar="STEP", help="run these steps and what they need")
    p.add_argument("--force", action="store_true", help="rerun steps even when unchanged")
    p.add_argument("--list", action="store_true", help="list the steps and exit")
    p.add_argument("--status", action="store_true", help="where each training stands, and exit")
    p.add_argument("--no-progress", action="store_true", help="hide papermill's progress bar")
    p.add_argument(
        "--budget-min",
        type=float,
        metavar="MIN",
        help="the whole study's time budget in minutes, shared among its runs as the profile's "
        "budget: section says (the same as --set budget.total_min=MIN)",
    )
    jobs = p.add_argument_group(
        "training jobs", "override the profile's cluster: section (see README, On a cluster)"
    )
    jobs.add_argument("--executor", choices=EXECUTORS, help="where the trainings run")
    jobs.add_argument("--jobs", type=int, help="local-parallel: trainings at once")
    jobs.add_argument("--gpus-per-job", type=int, help="GPUs per training (several: distributed)")
    jobs.add_argument("--partition", help="SLURM partition")
    jobs.add_argument("--time", dest="time_min", type=int, help="SLURM time limit per job, min")
    jobs.add_argument("--cpus", dest="cpus_per_task", type=int, help="CPU cores per process")
    jobs.add_argument("--mem-gb", type=int, help="memory per job, GB")
    jobs.add_argument(
        "--no-wait", action="store_true", help="slurm: submit the jobs and return (rerun later)"
    )
    p.set_defaults(func=run)


def _cluster_options(args: argparse.Namespace) -> dict:
    names = ("executor", "jobs", "gpus_per_job", "partition", "time_min", "cpus_per_task", "mem_gb")
    return {name: getattr(args, name) for name in names}


def budget_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides with ``--budget-min`` as the one that sets the budget's total."""
    if args.budget_min is None:
        return list(args.overrides)
    return [*args.overrides, f"budget.total_min={args.budget_min:g}"]


def run(args: argparse.Namespace) -> int:
    # here, not at the top: the CLI imports every command to list it, and `skinlib --help` stays light
    from skinlib.profile import load_study_profile
    from skinlib.study.pipeline import build_steps, run_pipeline

    args.overrides = budget_overrides(args)
    if args.status:
        return status.run(args, _cluster_options(args))
    if args.list:
        profile = load_study_profile(args.profile, args.overrides)
        for step in build_steps(profile, args.profile, args.overrides):
            print(f"{step.name:28s} {step.notebook:24s} needs: {', '.join(step.needs) or '-'}")
        return 0
    outcome = run_pipeline(
        args.profile,
        args.overrides,
        args.only,
        args.force,
        progress=not args.no_progress,
        cluster=_cluster_options(args),
        wait=not args.no_wait,
    )
    counts = {k: sum(v == k for v in outcome.values()) for k in ("ran", "skipped", "waiting")}
    print(f"pipeline: {counts['ran']} step(s) ran, {counts['skipped']} skipped", end="")
    if counts["waiting"]:
        print(f", {counts['waiting']} wait for training jobs (skinlib status; then run again)")
    else:
        print()
    return 0
