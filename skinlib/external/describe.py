"""What an external test set can and cannot say about a model.

An external set rarely has the model's classes: PH2 has nevi and melanomas only, so a 7-class
model's balanced accuracy there averages 2 recalls and its predictions of the other 5 classes
count only as errors. :func:`describe_external` therefore reports the set's class counts, the
classes it lacks, the multi-class metrics over the classes it has, and the question every set
can answer the same way: melanoma (the run's operating-point classes) against the rest, by AUC
and at the threshold stored with the run (``thresholds.json``, chosen on internal validation).
A sentence says what the numbers can be compared with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from skinlib.data.formats import FORMATS
from skinlib.evaluation.bootstrap import bootstrap_ci
from skinlib.evaluation.thresholds import positive_score, positive_truth
from skinlib.runs.folder import RunFolder

log = logging.getLogger(__name__)

DEFAULT_POSITIVE = ("mel",)


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
    spec = FORMATS.get(format)
    name = spec.display_name if spec else format
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
    return f"{text} {spec.note}" if spec and spec.note else text


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
