"""``skinlib status --profile params/<profile>.yaml``: where each training of the study stands."""

from __future__ import annotations

import argparse

from skinlib.commands import add_overrides


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="which training runs are done, running, queued or failed (and how to resubmit)",
        description="Every training of the study: done (a complete run folder), running or "
        "queued (a submitted job), failed (with its log), partial or missing; then the command "
        "that trains what is missing and resumes partial runs.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options that pick the study; ``skinlib pipeline`` shares them."""
    p.add_argument("--profile", default="params/demo.yaml", help="study profile (YAML)")
    add_overrides(p)


def run(args: argparse.Namespace, cluster: dict | None = None) -> int:
    # here, not at the top: the CLI imports every command to list it, and `skinlib --help` stays light
    from skinlib.profile import load_study_profile, resolve_profile_path
    from skinlib.study.jobs import resubmit_command, study_status
    from skinlib.study.pipeline import cluster_settings, profile_argument

    path = resolve_profile_path(args.profile)
    profile = load_study_profile(path, args.overrides)
    profile_arg = profile_argument(path)
    settings = cluster_settings(profile, cluster)
    rows = study_status(profile, profile_arg, args.overrides)
    print(f"study {profile.study} ({profile_arg}); jobs run through {settings.executor}")
    print(f"{'run':24s} {'state':8s} {'job':10s} detail")
    for row in rows:
        print(f"{row.run:24s} {row.state:8s} {row.job_id or '-':10s} {row.detail}")
        if row.state == "failed" and row.log:
            print(f"{'':44s} log: {row.log}")
    if any(row.state not in ("done", "running", "queued") for row in rows):
        print("to train what is missing and resume partial runs:")
        print("  " + resubmit_command(profile_arg, args.overrides, settings))
    return 0
