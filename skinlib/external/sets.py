"""Every trained run against every external set a profile names: one row per (run, set).

The sets are the profile's plain entries (:class:`skinlib.profile.ExternalSet`); each pair is
evaluated by :func:`skinlib.external.evaluate.evaluate_external` (or an earlier evaluation that
is still valid is read back), and :func:`external_for_reading` makes the rows a thesis table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.errors import SkinlibError
from skinlib.external.evaluate import evaluate_external
from skinlib.external.folder import EvaluationFolder
from skinlib.formatting import format_ci
from skinlib.profile import ExternalSet, parse_external_sets
from skinlib.runs import ledger
from skinlib.runs.folder import RunFolder

log = logging.getLogger(__name__)


def _run_dirs(study_or_run_dirs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Run folders: the given ones, or every trained run (a best checkpoint) of a study."""

    if isinstance(study_or_run_dirs, str | Path):
        folder = RunFolder(study_or_run_dirs)
        if folder.is_trained:
            return [folder.path]
        runs = [run.path for run in RunFolder.trained_in(folder.path)]
        if not runs:
            raise SkinlibError(
                f"{folder.path}: no trained runs (with a best checkpoint) found; pass run "
                "folders or a study folder after training"
            )
        return runs
    return [Path(p) for p in study_or_run_dirs]


def _row(run: Path, spec: ExternalSet, report: dict, metrics: pd.DataFrame) -> dict:
    """One table row: headline metrics with intervals and the melanoma-vs-rest numbers."""
    ext = report.get("external", {})
    row = {
        "run": run.name,
        "set": spec.name,
        "format": spec.format,
        "images": report["images"],
        "classes_present": len(ext.get("present_classes", [])),
        "missing_classes": " ".join(ext.get("missing_classes", [])),
        "calibrated": bool(report.get("calibrated")),  # metrics.csv is from these probabilities
    }
    for _, m in metrics[metrics["metric"].isin(["balanced_accuracy", "macro_auc"])].iterrows():
        row |= {
            m["metric"]: m["value"],
            f"{m['metric']}_low": m["low"],
            f"{m['metric']}_high": m["high"],
        }
    pvr = ext.get("positive_vs_rest", {})
    for key in ("auc", "sensitivity", "specificity"):
        for suffix in ("", "_low", "_high"):
            row[f"positive_{key}{suffix}"] = pvr.get(key + suffix, np.nan)
    row["threshold"] = pvr.get("threshold", np.nan)
    row["caveat"] = ext.get("caveat", "")
    return row


def _still_valid(out: EvaluationFolder, run: Path, spec: ExternalSet) -> bool:
    """An earlier evaluation of the same data (``out``),
    newer than everything of the run it used (the checkpoint, and the temperature and
    thresholds that notebooks 04-05 write later)."""

    report = out.file(out.REPORT)
    if not report.is_file():
        return False
    folder = RunFolder(run)
    used = [folder.checkpoint("best"), folder.calibration_file(), folder.thresholds_file()]
    newest = max(p.stat().st_mtime for p in used if p.is_file())
    saved = out.report()
    return (
        report.stat().st_mtime >= newest
        and saved.get("data") == str(spec.path())
        and saved.get("format") == spec.format
    )


def evaluate_external_sets(
    study_or_run_dirs: str | Path | Iterable[str | Path],
    settings,
    out_root: str | Path | None = None,
    reuse: bool = True,
) -> pd.DataFrame:
    """Every run against every external set of ``settings.external``: one row per pair.

    Args:
        study_or_run_dirs: a study folder (every run in it with ``checkpoints/best.pt``), one run
            folder, or a list of run folders.
        settings: the profile's :class:`~skinlib.profile.EvaluationSettings` (``external``,
            ``n_boot``).
        out_root: where each evaluation writes (``<out_root>/<run>/<set>/``); default
            ``<run>/external/<set>/``.
        reuse: keep an earlier evaluation of the same data whose report is newer than the run's
            checkpoint instead of predicting again.

    Returns:
        Columns ``run, set, format, images, classes_present, missing_classes``, ``calibrated``
        (the run's temperature was applied before the metrics), balanced
        accuracy and macro AUC with ``_low``/``_high``, ``positive_auc``, ``positive_sensitivity``,
        ``positive_specificity`` (at ``threshold``) with intervals, and the ``caveat`` sentence.
    """

    sets = parse_external_sets(settings.external)
    rows = []
    for run in _run_dirs(study_or_run_dirs):
        for spec in sets:
            out = EvaluationFolder(
                Path(out_root) / run.name / spec.name
                if out_root
                else RunFolder(run).external_dir(spec.name)
            )
            if reuse and _still_valid(out, run, spec):
                report = out.report()
                RunFolder(run).record_test_look(ledger.external(spec.name), bool(report.get("tta")))
            else:
                log.info("evaluating %s on %s (%s)", run.name, spec.name, spec.path())
                report = evaluate_external(
                    run,
                    spec.path(),
                    spec.format,
                    out.path,
                    drop_unmapped=spec.drop_unmapped,
                    n_boot=settings.n_boot,
                    skip_missing=spec.skip_missing,
                    set_name=spec.name,
                )
            rows.append(_row(run, spec, report, out.metrics()))
    return pd.DataFrame(rows)


def auc_label(results: pd.DataFrame) -> str:
    """The AUC column's name as its rows were computed: ``evaluate_external`` scores the
    probabilities after the run's temperature where one was fitted, so the AUC is raw only for
    runs without one (rows without the ``calibrated`` flag are not known to be raw)."""
    calibrated = (
        results["calibrated"] if "calibrated" in results else pd.Series([True] * len(results))
    )
    if calibrated.all():
        return "AUC (calibrated)"
    if not calibrated.any():
        return "AUC (raw)"
    return "AUC (calibrated where a temperature was fitted)"


def external_for_reading(results: pd.DataFrame) -> pd.DataFrame:
    """:func:`evaluate_external_sets` rows as a thesis table: intervals in their cells."""

    def ci(name: str, digits: int = 3) -> list[str]:
        return [
            format_ci(r[name], r[f"{name}_low"], r[f"{name}_high"], digits)
            for _, r in results.iterrows()
        ]

    return pd.DataFrame(
        {
            "model": results["run"],
            "external set": results["set"],
            "images": results["images"],
            "bal. acc.": ci("balanced_accuracy"),
            auc_label(results): ci("macro_auc"),
            "mel AUC": ci("positive_auc"),
            "mel sensitivity": ci("positive_sensitivity", 2),
        }
    )
