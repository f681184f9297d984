"""Compute and software: the hardware, the package versions and the commit the runs recorded."""

from __future__ import annotations

from skinlib.thesis.citations import SOFTWARE, citation
from skinlib.thesis.phrasing import (
    disagreement,
    per_run,
    recorded,
)
from skinlib.thesis.records import RunRecord, StudyRecord
from skinlib.thesis.sections.base import Section, non_empty, short_sha


def compute_section(study: StudyRecord) -> Section:
    runs = study.architectures + list(study.strategies.values())
    hardware = per_run(runs, _hardware_words)
    minutes = sum(recorded(r, "train_seconds", default=0) or 0 for r in runs) / 60
    each = "; ".join(
        f"`{r.name}` {(recorded(r, 'train_seconds', default=0) or 0) / 60:.1f}" for r in runs
    )
    software = []
    for key, (name, cite) in SOFTWARE.items():
        software.append(f"{name}{citation(cite)} {per_run(runs, lambda r, k=key: _version(r, k))}")
    sentences = non_empty(
        f"Runs were trained on {hardware}.",
        f"Training took {minutes:.1f} min in all ({each} min).",
        f"Software: Python {per_run(runs, lambda r: _version(r, 'python'))}, "
        + ", ".join(software)
        + "; notebooks were executed by papermill"
        + citation("papermill")
        + ".",
        *(
            disagreement(runs, lambda r, k=key: _version(r, k), f"the version of {name}")
            for key, (name, _) in {"python": ("Python", ""), **SOFTWARE}.items()
        ),
        f"Code: skinlib at commit {per_run(runs, _commit)}.",
        disagreement(runs, _commit, "the code version"),
    )
    return Section("Hardware and software", "sec:methods-compute", [sentences])


def _hardware_words(run: RunRecord) -> str:
    hw = recorded(run, "hardware", default={}) or {}
    if str(hw.get("device", "")).startswith("cuda"):
        gpus = hw.get("gpu_count", 1)
        return f"{gpus} x {hw.get('gpu', 'GPU')}"
    cpus = hw.get("cpu_count")
    return f"a CPU ({cpus} cores, {hw.get('platform', 'unknown platform')})"


def _version(run: RunRecord, package: str) -> str:
    return str(recorded(run, "versions", package, default=None) or "not recorded")


def _commit(run: RunRecord) -> str:
    git = recorded(run, "git", default={}) or {}
    commit = short_sha(git.get("commit"))
    return commit + (" with uncommitted changes" if git.get("dirty") else "")
