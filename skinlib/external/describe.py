"""What an external test set can and cannot say about a model, and the sets a profile names.

An external set rarely has the model's classes: PH2 has nevi and melanomas only, so a 7-class
model's balanced accuracy there averages 2 recalls and its predictions of the other 5 classes
count only as errors. :func:`describe_external` therefore reports the set's class counts, the
classes it lacks, the multi-class metrics over the classes it has, and the question every set
can answer the same way: melanoma (the run's operating-point classes) against the rest, by AUC
and at the threshold stored with the run (``thresholds.json``, chosen on internal validation).
A sentence says what the numbers can be compared with.

:func:`evaluate_external_sets` runs every set of a profile's ``evaluation.external`` list against
trained runs and returns one row per (run, set), for notebooks and the thesis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from skinlib import paths
from skinlib.data.adapters import FORMATS
from skinlib.errors import ConfigError, SkinlibError
from skinlib.evaluation.metrics import bootstrap_ci
from skinlib.evaluation.thresholds import positive_score, positive_truth
from skinlib.formatting import format_ci
from skinlib.runs import ledger

# skinlib.runs.folder and skinlib.inference.scoring are imported inside the functions that use them:
# evaluation imports this module (describe_external), and a profile naming external sets parses
# them here without loading torch, so ``skinlib status`` stays fast.
if TYPE_CHECKING:
    from skinlib.runs.folder import EvaluationFolder

log = logging.getLogger(__name__)
# Imports of torch, scikit-learn and the run folder stay inside the functions that use them:
# loading a profile parses its external sets here, and `skinlib status` must start in a blink.

SET_NAMES = {
    "ham10000": "HAM10000",
    "isic2018": "ISIC 2018 Task 3",
    "isic2019": "ISIC 2019",
    "isic2020": "ISIC 2020",
    "ph2": "PH2",
    "folder": "this set",
}
# What each source is, beyond its classes (why a difference may not be the model's fault).
SET_NOTES = {
    "isic2018": (
        "ISIC 2018 Task 3 is HAM10000's official test set, drawn mostly from the sources of the "
        "training images: it measures new lesions more than new clinics or devices."
    ),
    "ph2": (
        "PH2's nevi include 80 atypical nevi, harder negatives than most of HAM10000's, and all "
        "200 images come from one hospital and one device."
    ),
}
DEFAULT_POSITIVE = ("mel",)


@dataclass(frozen=True)
class ExternalSet:
    """One external test set of a profile (``evaluation.external``)."""

    name: str  # names the set in tables and its folder under <run>/external/
    format: str  # a dataset format: isic2018, ph2, isic2019, isic2020, ham10000, folder
    root: str  # dataset folder or label file; a relative path is taken from the project root
    drop_unmapped: bool = False  # drop images of classes the model lacks (ISIC 2019's scc)
    skip_missing: bool = False  # skip listed images whose file is missing (Dataverse ISIC 2018)

    def path(self) -> Path:
        root = Path(self.root).expanduser()
        return root if root.is_absolute() else paths.PROJECT_ROOT / root


def parse_external_sets(entries: Iterable[dict | ExternalSet] | None) -> list[ExternalSet]:
    """Profile entries (``{name, format, root, ...}``) as :class:`ExternalSet`, checked.

    Raises:
        ConfigError: an entry that is not a mapping, lacks a key, has an unknown key or format,
            or repeats a name.
    """
    known = {f.name for f in fields(ExternalSet)}
    out: list[ExternalSet] = []
    for i, entry in enumerate(entries or []):
        if isinstance(entry, ExternalSet):
            out.append(entry)
            continue
        where = f"evaluation.external[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping {{name, format, root}}, got {entry!r}")
        missing = sorted({"name", "format", "root"} - set(entry))
        unknown = sorted(set(entry) - known)
        if missing or unknown:
            raise ConfigError(
                f"{where}: missing key(s) {missing}, unknown key(s) {unknown}; "
                f"expected {sorted(known)}"
            )
        if entry["format"] not in FORMATS:
            raise ConfigError(
                f"{where}: unknown format {entry['format']!r}; choose one of {list(FORMATS)}"
            )
        out.append(ExternalSet(**{**entry, "name": str(entry["name"]), "root": str(entry["root"])}))
    names = [s.name for s in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"evaluation.external: set name(s) {repeated} used twice")
    return out


def class_counts(labels: np.ndarray, classes: Sequence[str]) -> dict[str, int]:
    """Images per class of the model, in the model's class order (0 for absent classes)."""
    counts = np.bincount(np.asarray(labels, int), minlength=len(classes))
    return {c: int(n) for c, n in zip(classes, counts, strict=True)}


def present_class_metrics(labels: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> dict:
    """Multi-class numbers restricted to the classes the set has.

    ``macro_f1_present`` averages F1 over those classes only (the headline macro F1 also counts
    classes the model predicted but the set lacks); ``predicted_absent`` is the share of images
    assigned to a class the set does not have.
    """
    from sklearn.metrics import f1_score

    y, pred = np.asarray(labels, int), np.asarray(proba).argmax(1)
    present = np.flatnonzero(np.bincount(y, minlength=len(classes)))
    absent = np.setdiff1d(np.arange(len(classes)), present)
    f1 = f1_score(y, pred, labels=present, average="macro", zero_division=0) if len(y) else np.nan
    return {
        "present_classes": [classes[i] for i in present],
        "missing_classes": [classes[i] for i in absent],
        "macro_f1_present": float(f1),
        "predicted_absent": float(np.isin(pred, absent).mean()) if len(y) else np.nan,
    }


def positive_vs_rest(
    labels: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    groups: Sequence | None,
    positive: Sequence[str] = DEFAULT_POSITIVE,
    threshold: float | None = None,
    n_boot: int = 1000,
) -> dict:
    """AUC of the positive set (e.g. melanoma) against the rest, and sensitivity and specificity
    at ``threshold``, each with a 95% interval resampling ``groups`` (lesions).

    The score is the summed probability of the positive classes, as for the stored operating
    points (:func:`skinlib.evaluation.thresholds.positive_score`). Values are NaN when the set lacks
    positives or negatives.
    """
    truth = positive_truth(labels, classes, positive).astype(int)
    score = positive_score(proba, classes, positive)
    out: dict = {"positive": list(positive), "positives": int(truth.sum()), "images": len(truth)}
    if truth.all() or not truth.any():
        return out | {"auc": np.nan, "auc_low": np.nan, "auc_high": np.nan}
    ci = bootstrap_ci(truth, score, groups, metrics=["macro_auc"], n_boot=n_boot)
    out |= {"auc": ci["value"][0], "auc_low": ci["low"][0], "auc_high": ci["high"][0]}
    if threshold is not None:
        flagged = (score >= threshold).astype(float)  # argmax of (1 - f, f) is the decision
        ci = bootstrap_ci(truth, flagged, groups, ["sensitivity", "specificity"], n_boot=n_boot)
        out["threshold"] = float(threshold)
        for _, row in ci.iterrows():
            m = row["metric"]
            out |= {m: row["value"], f"{m}_low": row["low"], f"{m}_high": row["high"]}
    return out


def caveat(
    format: str,
    counts: dict[str, int],
    positive: Sequence[str],
    lesion_groups: bool,
    threshold: bool = True,
) -> str:
    """A sentence on what the numbers of this set can and cannot be compared with.

    Args:
        counts: images per class of the model (:func:`class_counts`).
        positive: the operating-point classes (melanoma).
        lesion_groups: the set records lesion ids (intervals resample lesions).
        threshold: the run stores an operating point (``thresholds.json``).
    """
    name = SET_NAMES.get(format, format)
    present = [c for c, n in counts.items() if n]
    pos = "+".join(positive)
    binary_view = f"the {pos}-vs-rest AUC" + (
        " and the operating point at the stored threshold are" if threshold else " is"
    )
    if not set(positive) & set(present) and pos not in present:
        binary_view = (
            f"it has no {pos} images, so only the specificity at the stored threshold is"
            if threshold
            else f"it has no {pos} images, so no {pos}-vs-rest number is"
        )
    if len(present) < len(counts):
        text = (
            f"{name} has only {', '.join(present)} ({len(present)} of the model's {len(counts)} "
            f"classes): balanced accuracy and the macro averages run over those {len(present)} "
            "classes and predictions of the others count only as errors, so they are not "
            f"comparable with the internal test; {binary_view}."
        )
    else:
        text = (
            f"{name} has all {len(counts)} of the model's classes, so its metrics compare in kind "
            "with the internal test's, though its images differ in source, device and population."
        )
    if not lesion_groups:
        text += (
            f" {name} records no lesion ids here, so intervals resample images: too narrow if "
            "a lesion appears more than once."
        )
    return f"{text} {SET_NOTES[format]}" if format in SET_NOTES else text


def describe_external(
    preds,
    proba: np.ndarray,
    run_dir: str | Path,
    format: str,
    n_boot: int = 1000,
    tta: bool = False,
) -> dict:
    """The ``external`` block of an external evaluation's ``report.json``.

    Args:
        preds: the set's :class:`~skinlib.evaluation.predictions.Predictions` (labels in the run's classes).
        proba: (N, C) calibrated probabilities (the run's temperature applied).
        run_dir: the run; its ``thresholds.json`` (first point) gives the positive classes and
            the threshold, else melanoma without a threshold.
        tta: the predictions average TTA views: use the run's TTA operating point.
    """
    from skinlib.runs.folder import RunFolder

    classes = list(preds.classes)
    proba = np.asarray(proba)
    if proba.ndim == 1 or proba.shape[1] == 1:
        proba = np.column_stack([1 - proba.reshape(-1), proba.reshape(-1)])
    points = RunFolder(run_dir).operating_points(tta)
    point = points[0] if points else None
    positive = list(point.positive) if point else list(DEFAULT_POSITIVE)
    counts = class_counts(preds.labels, classes)
    lesion_groups = not np.array_equal(
        np.asarray(preds.group, str), np.asarray(preds.image_id, str)
    )
    out = {
        "counts": counts,
        **present_class_metrics(preds.labels, proba, classes),
        "groups": "lesion" if lesion_groups else "image",
    }
    try:
        out["positive_vs_rest"] = positive_vs_rest(
            preds.labels,
            proba,
            classes,
            preds.group,
            positive,
            point.threshold if point else None,
            n_boot,
        )
    except ValueError as err:  # the model has none of the positive classes
        log.warning("no %s-vs-rest numbers: %s", "+".join(positive), err)
    out["caveat"] = caveat(format, counts, positive, lesion_groups, point is not None)
    return out


def _run_dirs(study_or_run_dirs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Run folders: the given ones, or every trained run (a best checkpoint) of a study."""
    from skinlib.runs.folder import RunFolder

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
    """An earlier evaluation of the same data (``out``, an :class:`~skinlib.runs.folder.EvaluationFolder`),
    newer than everything of the run it used (the checkpoint, and the temperature and
    thresholds that notebooks 04-05 write later)."""
    from skinlib.runs.folder import RunFolder

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
    from skinlib.inference.scoring import evaluate_external
    from skinlib.runs.folder import EvaluationFolder, RunFolder

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
