"""What the runs of a study recorded, read back for the generated methods.

A :class:`RunRecord` holds one complete run folder's ``config.yaml``, ``meta.json``, ``split.csv``
and what notebooks 04 and 05 added; a :class:`StudyRecord` also holds the study's test-look
ledger (:mod:`skinlib.runs.ledger`). :mod:`skinlib.thesis.phrasing` puts the values into words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skinlib import paths
from skinlib.config import Config
from skinlib.errors import SkinlibError
from skinlib.profile import StudyProfile
from skinlib.runs import ledger
from skinlib.runs.folder import ENSEMBLE_RUN, RunFolder

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
    fingerprint: str = ""  # its configuration, as the test-look ledger names it
    thresholds_chosen_on: str | None = None  # the split 05 chose the thresholds on
    conformal_fitted_on: str | None = None  # the split 08 calibrated the stored sets on
    posthoc_split: str = "val"  # where post-hoc calibration fits (RunFolder.posthoc_split)


def read_run(run_dir: str | Path) -> RunRecord | None:
    """The record of a complete run folder, or None when it is missing or unfinished."""
    folder = RunFolder(run_dir)
    if not folder.is_complete():
        return None
    config = folder.config()
    return RunRecord(
        name=folder.name,
        config=config,
        meta=folder.meta(),
        split=folder.split_table(),
        calibration=folder.calibration(),
        thresholds=folder.operating_points(),
        tta=folder.predictions_file("test", tta=True).is_file(),
        fingerprint=ledger.config_fingerprint(config),
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
    # the tables the notebooks wrote (xai_scores, ...), each with the columns of its CSV
    tables: dict[str, frozenset[str]] = field(default_factory=dict)
    test_looks: list[ledger.Look] | None = None  # the test-look ledger; None: the study has none
    ensemble_fingerprint: str = ""  # the ensemble's configuration, where it can be read

    def wrote(self, table: str) -> bool:
        """A notebook wrote ``thesis/generated/<study>/<table>.csv``: its step ran."""
        return table in self.tables

    def intervals(self, table: str) -> frozenset[str]:
        """The columns ``x`` of a written table that come with ``x_low`` and ``x_high``: the
        values it gives an interval for (none where the table was not written)."""
        columns = self.tables.get(table, frozenset())
        return frozenset(c for c in columns if f"{c}_low" in columns and f"{c}_high" in columns)

    @property
    def reported_configurations(self) -> frozenset[str]:
        """The configurations the study reports: its architectures, imbalance arms and ensemble
        (a TTA row is its run's configuration, evaluated another way)."""
        runs = [*self.architectures, *self.strategies.values()]
        return frozenset([r.fingerprint for r in runs] + [self.ensemble_fingerprint]) - {""}


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
    ensemble = RunFolder.of(profile.study, ENSEMBLE_RUN)
    return StudyRecord(
        profile,
        archs,
        strategies,
        missing,
        ensemble=ensemble.ensemble(),
        tables=written_tables(profile.study),
        test_looks=ledger.read_looks(paths.study_dir(profile.study)),
        ensemble_fingerprint=_fingerprint(ensemble) if ensemble.is_ensemble else "",
    )


def _fingerprint(folder: RunFolder) -> str:
    """The folder's configuration, or "" where a member's config cannot be read (then the
    ensemble is not counted among the reported configurations)."""
    try:
        return folder.fingerprint()
    except (SkinlibError, OSError, ValueError):
        return ""


def written_tables(study: str) -> dict[str, frozenset[str]]:
    """The tables a study's notebooks wrote (``<name>.csv`` beside the thesis tables) and their
    columns: what a sentence about a step rests on, since a step skipped by ``pipeline --only``
    writes none, and a table written before a column existed lacks it."""
    folder = paths.generated_tables_dir(study)
    if not folder.is_dir():
        return {}
    return {p.stem: _csv_columns(p) for p in sorted(folder.glob("*.csv"))}


def _csv_columns(path: Path) -> frozenset[str]:
    """The header of a CSV (none for an empty file)."""
    try:
        return frozenset(map(str, pd.read_csv(path, nrows=0).columns))
    except pd.errors.EmptyDataError:
        return frozenset()
