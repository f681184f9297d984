"""The study as a pipeline: papermill runs the numbered notebooks in order with a profile's
parameters, skipping every step whose notebook, parameters, code and inputs have not changed.

Executed notebooks go to ``experiments/<study>/notebooks/``; each step's fingerprint and time
are kept in ``experiments/<study>/pipeline_state.json`` and ``pipeline_log.csv``.

With the ``local`` executor the notebooks train their runs themselves, one after another. With
``local-parallel`` or ``slurm`` the trainings the chosen steps need run first as independent jobs
(:mod:`skinlib.study.jobs`); a notebook runs once the jobs it needs are complete, and finds its runs
trained.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinlib import paths
from skinlib.errors import SkinlibError
from skinlib.io import read_json, write_json
from skinlib.profile import (
    ClusterSettings,
    StudyProfile,
    load_study_profile,
    resolve_profile_path,
)
from skinlib.runs import ledger
from skinlib.study.jobs import JobBook, resubmit_command, run_jobs, training_jobs

log = logging.getLogger(__name__)

KERNEL = "python3"  # ipykernel's own spec: the interpreter that runs the pipeline


class PipelineError(SkinlibError):
    """A notebook failed; the message points at the cell and the executed notebook."""


@dataclass
class Step:
    """One notebook execution."""

    name: str  # unique step name, e.g. "03_train_resnet18"
    notebook: str  # source notebook file name in notebooks/
    parameters: dict[str, Any]
    needs: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)  # runs it trains (executors train them first)


def build_steps(profile: StudyProfile, profile_arg: str, overrides: list[str]) -> list[Step]:
    """The study's steps in execution order; 03_train runs once per architecture."""
    base = {"profile": profile_arg, "overrides": list(overrides)}
    jobs = training_jobs(profile, profile_arg, overrides)
    trains = [
        Step(f"03_train_{job.name}", "03_train.ipynb", {**base, "arch": job.name}, jobs=[job.run])
        for job in jobs
        if job.kind == "architecture"
    ]
    strategy_runs = [job.run for job in jobs if job.kind == "strategy"]
    train_names = [s.name for s in trains]
    return [
        Step("01_eda", "01_eda.ipynb", base),
        Step("02_imbalance", "02_imbalance.ipynb", base, jobs=strategy_runs),
        *trains,
        Step("04_calibration", "04_calibration.ipynb", base, train_names),
        Step("05_thresholds", "05_thresholds.ipynb", base, ["04_calibration"]),
        Step("06_xai", "06_xai.ipynb", base, train_names),
        Step(
            "07_comparison",
            "07_comparison.ipynb",
            base,
            [*train_names, "04_calibration", "05_thresholds", "06_xai"],
        ),
        # after 07 so that the ensemble it builds also gets its conformal.json
        Step("08_trust", "08_trust.ipynb", base, [*train_names, "04_calibration"]),
        # audits 08's run: its temperature (04) and stored operating point (05)
        Step("09_audit", "09_audit.ipynb", base, [*train_names, "04_calibration", "05_thresholds"]),
    ]


def select_steps(steps: list[Step], only: list[str] | None) -> list[Step]:
    """The named steps (a prefix like ``03_train`` selects every architecture) and what they need."""
    if not only:
        return steps
    by_name = {s.name: s for s in steps}
    wanted: set[str] = set()
    for prefix in only:
        matches = [s.name for s in steps if s.name == prefix or s.name.startswith(prefix)]
        if not matches:
            raise PipelineError(f"--only {prefix!r}: no such step; the steps are {list(by_name)}")
        wanted.update(matches)
    stack = list(wanted)
    while stack:
        for need in by_name[stack.pop()].needs:
            if need not in wanted:
                wanted.add(need)
                stack.append(need)
    return [s for s in steps if s.name in wanted]


def _notebook_source_hash(path: Path) -> str:
    """Hash of the cells' sources only, so stored outputs or metadata do not count as changes."""
    nb = json.loads(path.read_text())
    sources = ["".join(c.get("source", "")) for c in nb.get("cells", [])]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def code_hash() -> str:
    """Hash of the skinlib package source: changed code is a changed input."""
    h = hashlib.sha256()
    for file in sorted((paths.PROJECT_ROOT / "skinlib").rglob("*.py")):
        h.update(str(file.relative_to(paths.PROJECT_ROOT)).encode())
        h.update(file.read_bytes())
    return h.hexdigest()


def fingerprint(step: Step, profile_text: str, code: str, upstream: dict[str, str]) -> str:
    """What a step's result depends on: notebook, parameters, profile, code, upstream results."""
    parts = {
        "notebook": _notebook_source_hash(paths.notebooks_dir() / step.notebook),
        "parameters": step.parameters,
        "profile": profile_text,
        "code": code,
        "upstream": {n: upstream.get(n, "") for n in step.needs},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _failure_message(step: Step, err: Exception, output: Path) -> str:
    cell = getattr(err, "cell_index", "?")
    source = (getattr(err, "source", "") or "").strip().splitlines()
    head = "\n    ".join(source[:6])
    return (
        f"step {step.name} failed in cell {cell}: {getattr(err, 'ename', type(err).__name__)}: "
        f"{getattr(err, 'evalue', err)}\n  cell source:\n    {head}\n"
        f"  the executed notebook with the full traceback is {output}"
    )


def execute_step(step: Step, output: Path, progress: bool = True) -> None:
    """Run one notebook with papermill (cwd = project root)."""
    # papermill only when a notebook runs: `skinlib status` imports this module
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    # Long loops print a tqdm line at most every 30 s into the saved notebook, not thousands.
    os.environ.setdefault("TQDM_MININTERVAL", "30")
    try:  # the kernel inherits the entry point its test looks are recorded under
        with ledger.entered(f"{step.notebook} (pipeline step {step.name})"):
            pm.execute_notebook(
                str(paths.notebooks_dir() / step.notebook),
                str(output),
                parameters=step.parameters,
                kernel_name=KERNEL,
                progress_bar=progress,
                cwd=str(paths.PROJECT_ROOT),
            )
    except PapermillExecutionError as err:
        raise PipelineError(_failure_message(step, err, output)) from None


def profile_argument(path: Path) -> str:
    """The profile as notebooks get it: relative to the project root where it lies inside."""
    try:
        return str(path.resolve().relative_to(paths.PROJECT_ROOT))
    except ValueError:
        return str(path.resolve())


def cluster_settings(profile: StudyProfile, options: dict[str, Any] | None) -> ClusterSettings:
    """The profile's ``cluster:`` section with the command line's options (None = unset) on top."""
    given = {k: v for k, v in (options or {}).items() if v is not None}
    return dataclasses.replace(profile.cluster, **given)


def run_pipeline(
    profile: str | Path,
    overrides: list[str] | None = None,
    only: list[str] | None = None,
    force: bool = False,
    progress: bool = True,
    cluster: dict[str, Any] | None = None,
    wait: bool = True,
) -> dict[str, str]:
    """Run (or skip) every step; returns ``{step: "ran" | "skipped" | "waiting"}``.

    Args:
        cluster: :class:`ClusterSettings` fields that override the profile's ``cluster:``
            section (``executor``, ``jobs``, ``partition``, ...).
        wait: with ``slurm``, wait for the training jobs; otherwise submit them and return, the
            notebooks that need them marked ``waiting`` (run the same command again later).
    """
    overrides = list(overrides or [])
    path = resolve_profile_path(profile)
    study = load_study_profile(path, overrides)
    profile_arg = profile_argument(path)
    settings = cluster_settings(study, cluster)
    steps = select_steps(build_steps(study, profile_arg, overrides), only)
    root = paths.study_dir(study.study)
    state_file = root / "pipeline_state.json"
    state = read_json(state_file) if state_file.exists() else {}
    code, text = code_hash(), study.text()
    started = time.perf_counter()
    outcome: dict[str, str] = {}
    held: dict[str, str] = {}  # steps that cannot run yet, and why
    stale: set[str] = set()  # steps whose runs were trained just now
    failed: list[str] = []
    if settings.executor != "local":
        states = _train_as_jobs(study, profile_arg, overrides, steps, settings, force, wait)
        held, stale = held_and_stale(steps, states)
        failed = [run for run, s in states.items() if s == "failed"]
    for step in steps:
        output = root / "notebooks" / f"{step.name}.ipynb"
        if step.name in held:
            log.info("%s: not run, %s", step.name, held[step.name])
            outcome[step.name] = "waiting"
            continue
        fp = fingerprint(step, text, code, state)
        unchanged = state.get(step.name) == fp and step.name not in stale
        if not force and unchanged and output.exists():
            log.info("%s: unchanged, skipped", step.name)
            outcome[step.name] = "skipped"
            _log_time(root, step.name, "skipped", 0.0)
            continue
        log.info("%s: running %s", step.name, step.notebook)
        start = time.perf_counter()
        state.pop(step.name, None)
        if force and settings.executor == "local":  # the notebooks train: retrain there
            step = dataclasses.replace(step, parameters={**step.parameters, "retrain": True})
        execute_step(step, output, progress)
        seconds = time.perf_counter() - start
        state[step.name] = fp
        write_json(state_file, state)
        outcome[step.name] = "ran"
        _log_time(root, step.name, "ran", seconds)
        log.info("%s: done in %.1f s -> %s", step.name, seconds, output)
    if failed:
        _raise_for_failed_jobs(failed, held, study, profile_arg, overrides, settings)
    _write_methods(path, overrides, study.study, outcome)
    if study.budget.total_min and "ran" in outcome.values():
        log.info(
            "the study took %.1f min of its %g min budget (wall clock, this command)",
            (time.perf_counter() - started) / 60,
            study.budget.total_min,
        )
    return outcome


def _train_as_jobs(
    study: StudyProfile,
    profile_arg: str,
    overrides: list[str],
    steps: list[Step],
    settings: ClusterSettings,
    force: bool,
    wait: bool,
) -> dict[str, str]:
    """Train the runs the steps need as jobs, before any notebook: ``{run: state}``."""
    by_run = {job.run: job for job in training_jobs(study, profile_arg, overrides)}
    needed = list(dict.fromkeys(run for step in steps for run in step.jobs))
    return run_jobs([by_run[run] for run in needed], settings, retrain=force, wait=wait)


def held_and_stale(steps: list[Step], states: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    """The steps that cannot run yet (a job they need failed or is still queued), with why;
    and the steps whose runs were trained now, with what follows them: their recorded results
    are stale, so they run again."""
    held: dict[str, str] = {}
    stale: set[str] = set()
    for step in steps:  # in order, so a step's needs are decided before it
        waits = [r for r in step.jobs if states.get(r) not in ("done", "trained")]
        waits += [n for n in step.needs if n in held]
        if waits:
            held[step.name] = f"waits for {waits}"
        if any(states.get(r) == "trained" for r in step.jobs) or stale & set(step.needs):
            stale.add(step.name)
    return held, stale


def _raise_for_failed_jobs(
    failed: list[str],
    held: dict[str, str],
    study: StudyProfile,
    profile_arg: str,
    overrides: list[str],
    settings: ClusterSettings,
) -> None:
    """Failed jobs stop the pipeline with their logs and the command that resubmits them."""
    book = JobBook(study.study)
    logs = "\n".join(f"  {run}: {(book.get(run) or {}).get('log')}" for run in failed)
    raise PipelineError(
        f"{len(failed)} training job(s) failed; their logs:\n{logs}\n"
        f"steps not run: {sorted(held)}\n"
        "resubmit (trains only what is missing, resumes partial runs):\n  "
        + resubmit_command(profile_arg, overrides, settings)
    )


def _write_methods(profile: Path, overrides: list[str], study: str, outcome: dict) -> None:
    """The thesis's methods and CLAIM checklist, from the runs the steps used. Like a step, it is
    skipped when nothing ran and its output exists (it imports torch: seconds, on a no-op run)."""
    done = paths.generated_tables_dir(study) / "methods.tex"
    if "ran" not in outcome.values() and done.is_file():
        return
    # Imported here: the methods pull in torch, and a pipeline whose steps are all done answers
    # in about a second without it.
    from skinlib.thesis.write import write_methods  # torch, timm: only when the methods are written

    written = write_methods(profile, overrides)
    log.info("methods and CLAIM checklist -> %s", written["methods.tex"].parent)


def _log_time(root: Path, step: str, status: str, seconds: float) -> None:
    file = root / "pipeline_log.csv"
    root.mkdir(parents=True, exist_ok=True)
    new = not file.exists()
    with file.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["time", "step", "status", "seconds"])
        writer.writerow([time.strftime("%Y-%m-%d %H:%M:%S"), step, status, f"{seconds:.1f}"])
