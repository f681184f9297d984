"""The study as a pipeline: papermill runs the numbered notebooks in order with a profile's
parameters, skipping every step whose notebook, parameters, code and inputs have not changed.

Executed notebooks go to ``experiments/<study>/notebooks/``; each step's fingerprint and time
are kept in ``experiments/<study>/pipeline_state.json`` and ``pipeline_log.csv``.
"""

from __future__ import annotations

import csv
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
from skinlib.profile import StudyProfile, load_study_profile, resolve_profile_path

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


def build_steps(profile: StudyProfile, profile_arg: str, overrides: list[str]) -> list[Step]:
    """The study's steps in execution order; 03_train runs once per architecture."""
    base = {"profile": profile_arg, "overrides": list(overrides)}
    trains = [
        Step(f"03_train_{arch}", "03_train.ipynb", {**base, "arch": arch})
        for arch in profile.architectures
    ]
    train_names = [s.name for s in trains]
    return [
        Step("01_eda", "01_eda.ipynb", base),
        Step("02_imbalance", "02_imbalance.ipynb", base),
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
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    # Long loops print a tqdm line at most every 30 s into the saved notebook, not thousands.
    os.environ.setdefault("TQDM_MININTERVAL", "30")
    try:
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


def run_pipeline(
    profile: str | Path,
    overrides: list[str] | None = None,
    only: list[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, str]:
    """Run (or skip) every step; returns ``{step: "ran" | "skipped"}``."""
    overrides = list(overrides or [])
    path = resolve_profile_path(profile)
    study = load_study_profile(path, overrides)
    try:
        profile_arg = str(path.resolve().relative_to(paths.PROJECT_ROOT))
    except ValueError:
        profile_arg = str(path.resolve())
    steps = select_steps(build_steps(study, profile_arg, overrides), only)
    root = paths.study_dir(study.study)
    state_file = root / "pipeline_state.json"
    state = read_json(state_file) if state_file.exists() else {}
    code, profile_text = code_hash(), path.read_text()
    outcome: dict[str, str] = {}
    for step in steps:
        output = root / "notebooks" / f"{step.name}.ipynb"
        fp = fingerprint(step, profile_text, code, state)
        if not force and state.get(step.name) == fp and output.exists():
            log.info("%s: unchanged, skipped", step.name)
            outcome[step.name] = "skipped"
            _log_time(root, step.name, "skipped", 0.0)
            continue
        log.info("%s: running %s", step.name, step.notebook)
        start = time.perf_counter()
        state.pop(step.name, None)
        if force:  # --force also retrains runs that a complete run folder would satisfy
            step = Step(step.name, step.notebook, {**step.parameters, "retrain": True}, step.needs)
        execute_step(step, output, progress)
        seconds = time.perf_counter() - start
        state[step.name] = fp
        write_json(state_file, state)
        outcome[step.name] = "ran"
        _log_time(root, step.name, "ran", seconds)
        log.info("%s: done in %.1f s -> %s", step.name, seconds, output)
    return outcome


def _log_time(root: Path, step: str, status: str, seconds: float) -> None:
    file = root / "pipeline_log.csv"
    root.mkdir(parents=True, exist_ok=True)
    new = not file.exists()
    with file.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["time", "step", "status", "seconds"])
        writer.writerow([time.strftime("%Y-%m-%d %H:%M:%S"), step, status, f"{seconds:.1f}"])
