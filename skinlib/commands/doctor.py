"""``skinlib doctor [--profile P] [--set key=value]``: what this machine can run, line by line."""

from __future__ import annotations

import argparse
import textwrap

from skinlib.commands import add_overrides

DEFAULT_PROFILE = "params/demo.yaml"  # what `make demo` runs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check packages, GPUs, disk, weights, tools and data for a profile",
        description="Each line is ok, warn or fail; fail means the profile's run would stop. "
        "Exit code 1 when any line fails. Downloads nothing.",
    )
    p.add_argument("--profile", default=DEFAULT_PROFILE, help=f"default: {DEFAULT_PROFILE}")
    add_overrides(p)
    p.add_argument("--offline", action="store_true", help="do not probe the model hub")
    p.set_defaults(func=run)


def format_check(check, name_width: int = 20, width: int = 100) -> str:
    """``verdict  name  detail``, then an indented ``next:`` line when there is a next step."""
    head = f"{check.verdict:<5} {check.name:<{name_width}} "
    indent = " " * len(head)
    lines = textwrap.wrap(check.detail, width, initial_indent=head, subsequent_indent=indent)
    if check.advice:
        lines += textwrap.wrap(
            check.advice, width, initial_indent=f"{indent}next: ", subsequent_indent=indent
        )
    return "\n".join(lines)


def summary(checks, profile: str) -> str:
    counts = {v: sum(c.verdict == v for c in checks) for v in ("ok", "warn", "fail")}
    tally = ", ".join(f"{n} {v}" for v, n in counts.items())
    if counts["fail"]:
        return f"{tally}: {profile} would stop here; fix the fail lines first"
    if counts["warn"]:
        return f"{tally}: {profile} can run here; the warn lines say what is slow or missing"
    return f"{tally}: {profile} can run here"


def run(args: argparse.Namespace) -> int:
    # here, not at the top: the CLI imports every command to list it, and `skinlib --help` stays light
    from skinlib.profile import load_study_profile
    from skinlib.study import doctor

    profile = load_study_profile(args.profile, args.overrides)
    reachable = (lambda: False) if args.offline else doctor.hub_reachable
    checks = doctor.run_checks(profile, reachable=reachable)
    print(f"skinlib doctor: {args.profile} (study {profile.study})")
    name_width = max(len(c.name) for c in checks)
    for check in checks:
        print(format_check(check, name_width))
    print(summary(checks, args.profile))
    return doctor.exit_code(checks)
