"""What the runs of a study recorded, read back, and whether they agree.

A :class:`RunRecord` holds one complete run folder's ``config.yaml``, ``meta.json``, ``split.csv``
and what notebooks 04 and 05 added; :func:`per_run` and :func:`disagreement` turn a recorded value
into text that states it once when the runs share it and per run when they do not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from skinlib import paths
from skinlib.config import Config
from skinlib.profile import StudyProfile
from skinlib.runs import ENSEMBLE_RUN, RunFolder

# --- what a run folder recorded ------------------------------------------------------------------


@dataclass
class RunRecord:
    """One complete run as its folder recorded it."""

    name: str
    config: Config
    meta: dict  # meta.json
    split: pd.DataFrame  # split.csv (image_id, group, label, split, ...)
    calibration: dict | None = None  # calibration.json, written by 04
    thresholds: list | None = None  # thresholds.json's operating points, written by 05
    tta: bool = (
        False  # predictions_test_tta.csv exists: 07 evaluated it with test-time augmentation
    )
    thresholds_chosen_on: str | None = None  # the split 05 chose the thresholds on
    conformal_fitted_on: str | None = None  # the split 08 calibrated the stored sets on
    posthoc_split: str = "val"  # where post-hoc calibration fits (RunFolder.posthoc_split)


def read_run(run_dir: str | Path) -> RunRecord | None:
    """The record of a complete run folder, or None when it is missing or unfinished."""
    folder = RunFolder(run_dir)
    if not folder.is_complete():
        return None
    return RunRecord(
        name=folder.name,
        config=folder.config(),
        meta=folder.meta(),
        split=folder.split_table(),
        calibration=folder.calibration(),
        thresholds=folder.operating_points(),
        tta=folder.predictions_file("test", tta=True).is_file(),
        thresholds_chosen_on=folder.thresholds_chosen_on(),
        conformal_fitted_on=conformal.fitted_on if (conformal := folder.conformal()) else None,
        posthoc_split=folder.posthoc_split(),
    )


@dataclass
class StudyRecord:
    """The profile and the runs the study actually used."""

    profile: StudyProfile
    architectures: list[RunRecord]  # the compared architectures, in the profile's order
    strategies: dict[str, RunRecord] = field(default_factory=dict)  # imbalance arm -> run
    missing: list[str] = field(default_factory=list)  # runs the profile names but none complete
    ensemble: dict | None = None  # ensemble.json of the ensemble run (07)
    tables: frozenset[str] = (
        frozenset()
    )  # names of the tables the notebooks wrote (xai_scores, ...)

    def wrote(self, table: str) -> bool:
        """A notebook wrote ``thesis/generated/<study>/<table>.csv``: its step ran."""
        return table in self.tables


def read_study(profile: StudyProfile) -> StudyRecord:
    """Read every run of a profile's study from ``experiments/<study>/``."""
    missing: list[str] = []

    def get(run: str) -> RunRecord | None:
        record = read_run(RunFolder.of(profile.study, run).path)
        if record is None:
            missing.append(run)
        return record

    archs = [r for r in (get(a) for a in profile.architectures) if r is not None]
    strategies = {
        name: r
        for name in profile.imbalance.strategies
        if (r := get(f"imbalance_{name}")) is not None
    }
    return StudyRecord(
        profile,
        archs,
        strategies,
        missing,
        ensemble=RunFolder.of(profile.study, ENSEMBLE_RUN).ensemble(),
        tables=written_tables(profile.study),
    )


def written_tables(study: str) -> frozenset[str]:
    """The tables a study's notebooks wrote (``<name>.csv`` beside the thesis tables): what a
    sentence about a step rests on, since a step skipped by ``pipeline --only`` writes none."""
    folder = paths.generated_tables_dir(study)
    return frozenset(p.stem for p in folder.glob("*.csv")) if folder.is_dir() else frozenset()


# --- values the runs share, or not -------------------------------------------------------------


def fmt(value: Any) -> str:
    """A recorded value as text: 1,200; 0.002; true; `ce`."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,}" if value.is_integer() and abs(value) >= 1000 else f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def name_list(runs: Sequence[str]) -> str:
    quoted = [f"`{r}`" for r in runs]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def by_value(runs: Sequence[RunRecord], get: Callable[[RunRecord], Any]) -> dict[str, list[str]]:
    """``{value as text: [run names]}`` in the order the values first appear."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(fmt(get(run)), []).append(run.name)
    return groups


def per_run(runs: Sequence[RunRecord], get: Callable[[RunRecord], Any], unit: str = "") -> str:
    """One value when the runs share it, else each value with its runs.

    >>> per_run([], lambda r: 1)
    'not recorded'
    """
    groups = by_value(runs, get)
    if not groups:
        return "not recorded"
    if len(groups) == 1:
        return next(iter(groups)) + unit
    return "; ".join(f"{v}{unit} for {name_list(names)}" for v, names in groups.items())


def disagreement(runs: Sequence[RunRecord], get: Callable[[RunRecord], Any], what: str) -> str:
    """A sentence for something every run should share: stated once, or the disagreement."""
    groups = by_value(runs, get)
    if len(groups) <= 1:
        return ""
    listed = "; ".join(f"{v} ({name_list(names)})" for v, names in groups.items())
    return (
        f"The runs disagree on {what}: {listed}; results that compare them inherit this difference."
    )


def recorded(run: RunRecord, *keys: str, default: Any = None) -> Any:
    node: Any = run.meta
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


IDENTITY_KEYS = {"study", "run", "model.arch"}  # differ between runs by construction


def config_differences(base: Config, run: Config) -> dict[str, tuple[Any, Any]]:
    """``{section.key: (base value, run value)}`` where a run's config departs from ``base``."""
    a, b = flatten(base.to_dict()), flatten(run.to_dict())
    return {k: (a.get(k), b[k]) for k in b if k not in IDENTITY_KEYS and a.get(k) != b[k]}
